"""The gradient reducers (fastpinn/reducers.py) in one process: the all-reduce reducer over a stand-in for
torch.distributed whose collective doubles the buffer -- as if a second rank held the same points -- with
shares of 1/2, gives the one-process results bit for bit (scaling by 1/2 and 2 is exact), on the blocking
and the overlapped paths. The two-rank gloo runs are in tests/test_distributed.py."""

import pytest
import torch
import torch.distributed as dist

import fastpinn
from fastpinn.collectives import CollectiveError
from fastpinn.reducers import AllReduceReducer, GradientReducer, LocalReducer, make_reducer

SCHEMES = {"dn": lambda: fastpinn.DN(tau=2), "ma": lambda: fastpinn.MA(tau=1), "pinn": fastpinn.PINN,
           "softadapt": fastpinn.SoftAdapt}


class _Done:
    def wait(self) -> None:
        pass


@pytest.fixture
def two_identical_ranks(monkeypatch):
    def all_reduce(buffer, op=None, group=None, async_op=False):
        buffer.mul_(2)
        return _Done() if async_op else None

    monkeypatch.setattr(dist, "all_reduce", all_reduce)


def _run(reducer, scheme):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(1, 6), torch.nn.Tanh(), torch.nn.Linear(6, 6), torch.nn.Tanh(),
                              torch.nn.Linear(6, 1)).double()
    coef = torch.nn.Parameter(torch.tensor([0.5], dtype=torch.float64))
    params = list(net.parameters()) + [coef]
    wb = fastpinn.WeightedBackward(params, scheme, ["a", "b", "c"], reducer=reducer)
    opt = torch.optim.Adam(params, lr=1e-2)
    x = torch.linspace(-1, 1, 23, dtype=torch.float64).unsqueeze(1)
    steps = []
    for _ in range(5):
        u = net(x)
        losses = [((u - coef * torch.sin(3 * x)) ** 2).mean(), ((u - x ** 2) ** 2).mean(), (u ** 4).mean()]
        lam = wb(losses, shard_weights=None if isinstance(reducer, LocalReducer) else [0.5] * 3)
        steps.append([lam.clone(), wb.losses.clone()] + [p.grad.clone() for p in params])
        opt.step()
    return wb, steps


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("overlap,bucket", [(False, 1 << 16), (True, 1 << 16), (True, 1), (True, 40)])
def test_all_reduce_reducer_paths_equal_one_process(two_identical_ranks, scheme, overlap, bucket):
    _, local = _run(LocalReducer(), SCHEMES[scheme]())
    wb, reduced = _run(AllReduceReducer(object(), overlap=overlap, bucket_elements=bucket), SCHEMES[scheme]())
    for a, b in zip(local, reduced):
        for x, y in zip(a, b):
            assert torch.equal(x, y)
    assert wb.overlap is overlap and wb.collectives >= 5 and wb.reduced_elements > 0
    if overlap and bucket == 1 and scheme == "pinn":
        assert wb.collectives == 5 * 7  # one piece per tensor (6 layer tensors + the coefficient)


def test_the_keyword_arguments_build_the_reducer():
    p = [torch.zeros(3, requires_grad=True)]
    wb = fastpinn.WeightedBackward(p, fastpinn.DN(), 2)
    assert isinstance(wb.reducer, LocalReducer) and wb.process_group is None and wb.collectives == 0
    group = object()
    wb = fastpinn.WeightedBackward(p, fastpinn.DN(), 2, process_group=group, overlap=True, bucket_elements=5)
    assert isinstance(wb.reducer, AllReduceReducer) and wb.process_group is group and wb.overlap
    assert wb.reducer.bucket_elements == 5
    assert isinstance(make_reducer(), GradientReducer) and isinstance(make_reducer(group), GradientReducer)


def test_reducer_arguments_are_checked():
    p = [torch.zeros(3, requires_grad=True)]
    with pytest.raises(ValueError, match="pass either reducer= or process_group="):
        fastpinn.WeightedBackward(p, fastpinn.DN(), 2, reducer=LocalReducer(), overlap=True)
    with pytest.raises(ValueError, match="reducer must be a fastpinn.reducers.GradientReducer, got str"):
        fastpinn.WeightedBackward(p, fastpinn.DN(), 2, reducer="gloo")
    with pytest.raises(ValueError, match="overlap=True needs members=1, got members=2"):
        fastpinn.WeightedBackward([torch.zeros(2, 3, requires_grad=True)], fastpinn.DN(), 2, members=2,
                                  reducer=AllReduceReducer(object(), overlap=True))
    shared = AllReduceReducer(object())
    fastpinn.WeightedBackward(p, fastpinn.DN(), 2, reducer=shared)
    with pytest.raises(ValueError, match="already serves a WeightedBackward"):
        fastpinn.WeightedBackward(p, fastpinn.DN(), 2, reducer=shared)
    with pytest.raises(ValueError, match="bucket_elements must be an integer >= 1, got 0"):
        AllReduceReducer(object(), bucket_elements=0)
    with pytest.raises(ValueError, match=r"shard_weights must hold one share per term \(2"):
        AllReduceReducer(object()).shares([0.5], ["a", "b"], torch.zeros(1, 2))


class _Failed:
    def wait(self) -> None:
        raise RuntimeError("Connection closed by peer\nmore detail")


@pytest.mark.parametrize("overlap", [False, True])
def test_a_failed_collective_is_one_line_naming_the_rank(monkeypatch, overlap):
    def all_reduce(buffer, op=None, group=None, async_op=False):
        if async_op:
            return _Failed()
        raise RuntimeError("Connection closed by peer\nmore detail")

    monkeypatch.setattr(dist, "all_reduce", all_reduce)
    monkeypatch.setattr(dist, "get_rank", lambda group=None: 1)
    monkeypatch.setattr(dist, "get_world_size", lambda group=None: 2)
    p = torch.ones(3, dtype=torch.float64, requires_grad=True)
    wb = fastpinn.WeightedBackward([p], fastpinn.DN(), 2, reducer=AllReduceReducer(object(), overlap=overlap))
    with pytest.raises(CollectiveError,
                       match=r"^rank 1 of 2: the gradient all-reduce .* failed: Connection closed by peer\. Another rank"):
        wb([(p ** 2).sum(), p.sum()])
