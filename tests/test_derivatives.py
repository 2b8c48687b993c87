"""The derivative engine: jet, func and autograd against an independent nested-autograd oracle."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import Tensor, nn

from fastpinn.derivatives import Fields, choose_method, derivatives, parse_request
from fastpinn.ops.mlp_taylor import taylor_available
from fastpinn.ops.mlp_jet import JetPlan
from fastpinn.network import MLP

F64 = torch.float64
TOL = dict(rtol=1e-10, atol=1e-10)
METHODS = ("jet", "func", "autograd")
COORDS = {1: ("x",), 2: ("t", "x"), 3: ("t", "x", "y")}


def _all_requests(d: int, max_order: int = 2) -> list[tuple[str, ...]]:
    """Value, every first derivative and every second derivative (diagonal and mixed) as tuples."""
    coords = COORDS[d]
    out: list[tuple[str, ...]] = [()]
    for order in range(1, max_order + 1):
        out += [tuple(coords[i] for i in idx) for idx in itertools.combinations_with_replacement(range(d), order)]
    return out


def _name(request: tuple[str, ...]) -> str:
    return "u" if not request else "u_" + "".join(request)


def _nested_grad(u_component: Tensor, x: Tensor, coords: tuple[str, ...], request: tuple[str, ...]) -> Tensor:
    """d^k u / dx_{r1}...dx_{rk} at every point by repeated autograd.grad of the sum over points."""
    g = u_component
    for name in request:
        if not g.requires_grad:  # an affine net's first derivative no longer depends on x
            return torch.zeros_like(g)
        (grad,) = torch.autograd.grad(g.sum(), x, create_graph=True, allow_unused=True, materialize_grads=True)
        g = grad[..., coords.index(name)]
    return g


def oracle(net: MLP, theta: Tensor, x: Tensor, coords, requests) -> dict[tuple[str, ...], Tensor]:
    """Member by member, output component by component: the plainest possible nested autograd."""
    members = [None] if theta.dim() == 1 else list(range(theta.shape[0]))
    per_member = []
    for s in members:
        theta_s = theta if s is None else theta[s]
        x_s = x if (s is None or x.dim() == 2) else x[s]
        x_s = x_s.detach().clone().requires_grad_(True)
        u = net.forward_with(theta_s, x_s)
        per_member.append(
            {r: torch.stack([_nested_grad(u[:, k], x_s, coords, r) for k in range(u.shape[1])], dim=-1) for r in requests}
        )
    if theta.dim() == 1:
        return per_member[0]
    return {r: torch.stack([m[r] for m in per_member]) for r in requests}


def _points(mode: str, n: int, d: int, members: int, lower, upper, seed: int = 0) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    shape = (members, n, d) if mode == "per_member" else (n, d)
    unit = torch.rand(*shape, generator=gen, dtype=F64)
    return torch.tensor(lower, dtype=F64) + unit * (torch.tensor(upper, dtype=F64) - torch.tensor(lower, dtype=F64))


# (depth, width, d, out): depth 1, 2 and 4; odd widths; d = 1, 2, 3; scalar and vector outputs.
NETS = [(1, 3, 2, 2), (2, 5, 1, 1), (2, 7, 3, 3), (4, 5, 2, 1), (4, 3, 3, 2), (2, 3, 2, 3)]
MODES = ("single", "shared", "per_member")


def _make(depth, width, d, out, mode, seed=1):
    lower, upper = [-1.0, 0.0, 0.5][:d], [2.0, 1.0, 3.0][:d]  # non-trivial input scaling
    members = 3
    net = MLP(d, out, depth, width, lower, upper, ensemble=None if mode == "single" else members, seed=seed, dtype=F64)
    # Non-zero biases so every term of the jet recursion is exercised.
    with torch.no_grad():
        net.theta.add_(0.3 * torch.randn(net.theta.shape, generator=torch.Generator().manual_seed(seed + 7), dtype=F64))
    x = _points(mode, 6, d, members, lower, upper, seed)
    return net, x


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("depth,width,d,out", NETS)
@pytest.mark.parametrize("method", METHODS)
def test_matches_nested_autograd(method, depth, width, d, out, mode):
    net, x = _make(depth, width, d, out, mode)
    coords, requests = COORDS[d], _all_requests(d)
    expected = oracle(net, net.theta, x, coords, requests)
    got = derivatives(net, x, coords=coords, requests=requests, method=method)
    lead = (x.shape[0],) if mode == "per_member" else ((3,) if mode == "shared" else ())
    for r in requests:
        assert got[r].shape == (*lead, x.shape[-2], out), (r, got[r].shape)
        assert got[r].dtype == F64
        torch.testing.assert_close(got[r], expected[r], **TOL, msg=lambda m, r=r: f"{method} {_name(r)}: {m}")
        if len(coords[0]) == 1:  # string spelling of the same request
            assert got[_name(r)] is got[r]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("depth,width,d,out", [NETS[0], NETS[2], NETS[4]])
def test_theta_gradients_agree(depth, width, d, out, mode):
    net, x = _make(depth, width, d, out, mode, seed=3)
    coords, requests = COORDS[d], _all_requests(d)
    weights = {r: 0.5 + i for i, r in enumerate(requests)}

    def loss(values) -> Tensor:  # a residual-like loss mixing products of fields
        total = sum(weights[r] * values[r].square().mean() for r in requests)
        return total + (values[()] * values[requests[-1]]).mean()

    (expected,) = torch.autograd.grad(loss(oracle(net, net.theta, x, coords, requests)), net.theta)
    for method in METHODS:
        f = derivatives(net, x, coords=coords, requests=requests, method=method)
        (grad,) = torch.autograd.grad(loss(f), net.theta)
        torch.testing.assert_close(grad, expected, **TOL, msg=lambda m: f"{method}: {m}")
    assert x.grad is None and not x.requires_grad  # the caller's points were left alone


@pytest.mark.parametrize("requests", [("u", "u_t", "u_x", "u_xx"), ("u_xx", "u_yy"), ("u_y",), ("u",), ("u_tx",), ("u_yt", "u_x", "u")])
@pytest.mark.parametrize("method", METHODS)
def test_subsets_of_requests(method, requests):
    net, x = _make(3, 5, 3, 2, "single", seed=4)
    coords = ("t", "x", "y")
    expected = oracle(net, net.theta, x, coords, [tuple(r[2:]) for r in requests])
    f = derivatives(net, x, coords=coords, requests=requests, method=method)
    assert len(f) == len(requests)
    for r in requests:
        torch.testing.assert_close(f[r], expected[tuple(r[2:])], **TOL)


def test_jet_plan_propagates_only_needed_directions():
    coords = ("t", "x")
    burgers = JetPlan([parse_request(r, coords) for r in ("u", "u_t", "u_x", "u_xx")])
    assert burgers.dirs == [0, 1] and burgers.pairs == [(1, 1)] and burgers.first_out == [0, 1]
    poisson = JetPlan([parse_request(r, ("x", "y")) for r in ("u", "u_xx", "u_yy")])
    assert poisson.dirs == [0, 1] and poisson.pairs == [(0, 0), (1, 1)] and poisson.first_out == []
    one = JetPlan([parse_request(r, ("t", "x", "y")) for r in ("u", "u_x")])
    assert one.dirs == [1] and one.pairs == []


@pytest.mark.parametrize("method", ["func", "autograd"])
@pytest.mark.parametrize("mode", MODES)
def test_third_order(method, mode):
    net, x = _make(3, 5, 2, 2, mode, seed=5)
    coords, requests = COORDS[2], [("x", "x", "x"), ("t", "x", "x"), ("t",), ()]
    expected = oracle(net, net.theta, x, coords, requests)
    f = derivatives(net, x, coords=coords, requests=["u_xxx", "u_xtx", "u_t", "u"], method=method)
    for r in requests:
        torch.testing.assert_close(f[r], expected[r], **TOL)


def test_jet_third_order_not_implemented():
    net, x = _make(2, 3, 2, 1, "single")
    with pytest.raises(NotImplementedError, match="order 2"):
        derivatives(net, x, requests=("u_xxx",), method="jet")


# ----------------------------------------------------------------------------------------------
# Analytic checks
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", METHODS)
def test_affine_network_is_exact(method):
    """depth 1: u = W (x * scale + shift) + b, so u_c = W[:, c] scale_c and every second derivative is 0."""
    net = MLP(2, 3, depth=1, width=4, lower=[0.0, -2.0], upper=[1.0, 2.0], dtype=F64)
    x = torch.rand(5, 2, dtype=F64)
    (w, b), = net.layers()
    f = derivatives(net, x, requests=("u", "u_t", "u_x", "u_tt", "u_tx", "u_xx"), method=method)
    scale = net.input_scale
    torch.testing.assert_close(f.u, (x * scale + net.input_shift) @ w.T + b, rtol=0, atol=1e-15)
    torch.testing.assert_close(f.u_t, (w[:, 0] * scale[0]).expand(5, 3), rtol=0, atol=0)
    torch.testing.assert_close(f.u_x, (w[:, 1] * scale[1]).expand(5, 3), rtol=0, atol=0)
    for name in ("u_tt", "u_tx", "u_xx"):
        assert f[name].shape == (5, 3) and not f[name].any()


@pytest.mark.parametrize("method", METHODS)
def test_one_hidden_layer_by_hand(method):
    """depth 2: u = W2 tanh(W1 h + b1) + b2 with h = x * scale + shift."""
    net = MLP(2, 2, depth=2, width=5, lower=[0.0, -1.0], upper=[2.0, 1.0], seed=3, dtype=F64)
    x = torch.rand(7, 2, dtype=F64)
    (w1, b1), (w2, b2) = net.layers()
    a = torch.tanh((x * net.input_scale + net.input_shift) @ w1.T + b1)
    s = 1 - a**2
    dz = [w1[:, c] * net.input_scale[c] for c in range(2)]  # d(pre-activation)/dx_c
    f = derivatives(net, x, requests=("u", "u_t", "u_x", "u_tx", "u_xx"), method=method)
    torch.testing.assert_close(f.u, a @ w2.T + b2, **TOL)
    torch.testing.assert_close(f.u_t, (s * dz[0]) @ w2.T, **TOL)
    torch.testing.assert_close(f.u_x, (s * dz[1]) @ w2.T, **TOL)
    torch.testing.assert_close(f.u_tx, (-2 * a * s * dz[0] * dz[1]) @ w2.T, **TOL)
    torch.testing.assert_close(f.u_xx, (-2 * a * s * dz[1] ** 2) @ w2.T, **TOL)


class SinExp(nn.Module):
    """u(t, x) = (sin(x) exp(t), x^2 t): every derivative is known in closed form."""

    def forward(self, points: Tensor) -> Tensor:
        t, x = points[..., 0], points[..., 1]
        return torch.stack([torch.sin(x) * torch.exp(t), x * x * t], dim=-1)


@pytest.mark.parametrize("method", ["func", "autograd", "auto"])
def test_known_function_is_exact(method):
    x = torch.rand(9, 2, dtype=F64) * 2 - 1
    t, xx = x[:, 0], x[:, 1]
    f = derivatives(SinExp(), x, requests=("u", "u_t", "u_x", "u_xx", "u_tx", "u_tt", "u_xxx", "u_txx"), method=method)
    e, sn, cs = torch.exp(t), torch.sin(xx), torch.cos(xx)
    zero = torch.zeros_like(t)
    exact = {
        "u": (sn * e, xx * xx * t),
        "u_t": (sn * e, xx * xx),
        "u_x": (cs * e, 2 * xx * t),
        "u_xx": (-sn * e, 2 * t),
        "u_tx": (cs * e, 2 * xx),
        "u_tt": (sn * e, zero),
        "u_xxx": (-cs * e, zero),
        "u_txx": (-sn * e, 2 + zero),
    }
    for name, columns in exact.items():
        torch.testing.assert_close(f[name], torch.stack(columns, dim=-1), rtol=1e-14, atol=1e-14, msg=name)


# ----------------------------------------------------------------------------------------------
# Other networks, functional use, shapes, dtypes
# ----------------------------------------------------------------------------------------------


def _sequential() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(2, 6), nn.Tanh(), nn.Linear(6, 5), nn.Softplus(), nn.Linear(5, 2)).to(F64)


def test_func_on_plain_sequential():
    net = _sequential()
    x = torch.rand(8, 2, dtype=F64)
    requests = _all_requests(2)
    assert choose_method(net) == "autograd" and choose_method(MLP(2, 1, 2, 3)) in ("fused", "jet")  # cost model (method_costs)
    xg = x.clone().requires_grad_(True)
    u = net(xg)
    expected = {r: torch.stack([_nested_grad(u[:, k], xg, ("t", "x"), r) for k in range(2)], dim=-1) for r in requests}
    fields = {m: derivatives(net, x, requests=requests, method=m) for m in ("func", "autograd", "auto")}
    for f in fields.values():
        for r in requests:
            torch.testing.assert_close(f[r], expected[r], **TOL)
    # Gradients reach the module's own parameters, equal across methods.
    params = list(net.parameters())
    loss = lambda f: sum((f[r] ** 2).sum() for r in requests)  # noqa: E731
    grads_func = torch.autograd.grad(loss(fields["func"]), params)
    grads_autograd = torch.autograd.grad(loss(fields["autograd"]), params)
    for a, b in zip(grads_func, grads_autograd):
        torch.testing.assert_close(a, b, **TOL)
    with pytest.raises(ValueError, match="needs a fastpinn.network.MLP"):
        derivatives(net, x, method="jet")


@pytest.mark.parametrize("method", ["func", "autograd"])
def test_module_with_explicit_parameters(method):
    net = _sequential()
    x = torch.rand(4, 2, dtype=F64)
    params = {name: 1.5 * p.detach() for name, p in net.named_parameters()}
    f = derivatives(net, x, requests=("u", "u_x", "u_tx"), method=method, theta=params)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(1.5)
    g = derivatives(net, x, requests=("u", "u_x", "u_tx"), method=method)
    for name in ("u", "u_x", "u_tx"):
        torch.testing.assert_close(f[name], g[name], **TOL)
    with pytest.raises(ValueError, match="mapping of parameter names"):
        derivatives(net, x, method=method, theta=torch.zeros(3, dtype=F64))


@pytest.mark.parametrize("method", METHODS)
def test_functional_theta_under_torch_func_grad(method):
    """theta passed explicitly: the engine composes with torch.func.grad (e.g. inside a compiled step)."""
    net, x = _make(3, 5, 2, 1, "shared", seed=6)
    requests = ("u", "u_t", "u_x", "u_xx")

    def loss(theta: Tensor) -> Tensor:
        f = derivatives(net, x, requests=requests, method=method, theta=theta)
        return (f.u_t + f.u * f.u_x - 0.1 * f.u_xx).square().mean()

    (expected,) = torch.autograd.grad(loss(net.theta), net.theta)
    theta = net.theta.detach().clone()
    if method == "autograd":  # nested autograd.grad cannot run inside torch.func transforms
        (got,) = torch.autograd.grad(loss(theta.requires_grad_(True)), theta)
    else:
        got = torch.func.grad(loss)(theta)
    torch.testing.assert_close(got, expected, **TOL)


@pytest.mark.parametrize("method", METHODS)
def test_points_that_require_grad_get_gradients(method):
    net, x = _make(3, 5, 2, 1, "single", seed=8)
    reference = None
    for m in ("autograd", method):
        xg = x.clone().requires_grad_(True)
        f = derivatives(net, xg, requests=("u", "u_x", "u_tx"), method=m)
        (gx,) = torch.autograd.grad((f.u * f.u_tx + f.u_x).sum(), xg)
        reference = gx if reference is None else reference
    torch.testing.assert_close(gx, reference, **TOL)


@pytest.mark.parametrize("method", METHODS)
def test_leading_point_dims_dtype_and_no_grad(method):
    net = MLP(2, 2, 3, 4, dtype=torch.float32)
    x = torch.rand(3, 4, 2)
    f = derivatives(net, x, requests=("u", "u_x", "u_tt"), method=method)
    flat = derivatives(net, x.reshape(12, 2), requests=("u", "u_x", "u_tt"), method=method)
    for name in ("u", "u_x", "u_tt"):
        assert f[name].shape == (3, 4, 2) and f[name].dtype == torch.float32
        torch.testing.assert_close(f[name].reshape(12, 2), flat[name])
    with torch.no_grad():
        g = derivatives(net, x, requests=("u_tt",), method=method)
    torch.testing.assert_close(g.u_tt, f.u_tt)


# ----------------------------------------------------------------------------------------------
# Request spec and Fields
# ----------------------------------------------------------------------------------------------


def test_fields_lookup():
    net, x = _make(2, 3, 2, 1, "single")
    f = derivatives(net, x, requests=("u", "u_xt", ("x", "x")), method="jet")
    assert isinstance(f, Fields) and f.coords == ("t", "x") and f.x is x
    assert f["u_tx"] is f["u_xt"] is f[("x", "t")] is f.u_tx is f.u_xt
    assert f.u is f["u"] is f[()]
    assert list(f) == ["u", "u_tx", "u_xx"] and len(f) == 3
    assert "u_xt" in f and "u_t" not in f and "nonsense" not in f
    with pytest.raises(KeyError, match="was not requested"):
        f["u_t"]
    with pytest.raises(AttributeError):
        f.u_t
    assert "u_tx" in repr(f)


def test_long_coordinate_names_use_tuples():
    net = MLP(2, 1, 2, 3, dtype=F64)
    x = torch.rand(5, 2, dtype=F64)
    coords = ("x1", "x2")
    f = derivatives(net, x, coords=coords, requests=("u", ("x1",), ("x2", "x1"), ("x2", "x2")), method="jet")
    g = derivatives(net, x, coords=("a", "b"), requests=("u", "u_a", "u_ab", "u_bb"), method="autograd")
    assert list(f) == [(), ("x1",), ("x1", "x2"), ("x2", "x2")]
    torch.testing.assert_close(f[("x1", "x2")], g.u_ab, **TOL)
    torch.testing.assert_close(f[("x2", "x2")], g.u_bb, **TOL)
    with pytest.raises(ValueError, match=r"'u_x1'.*single character.*allowed forms"):
        derivatives(net, x, coords=coords, requests=("u_x1",))


@pytest.mark.parametrize("bad", ["v_x", "u_", "u_z", "ux", ("x", "q"), 5, ("x", 1)])
def test_bad_requests_raise(bad):
    net, x = _make(2, 3, 2, 1, "single")
    with pytest.raises(ValueError, match=r"bad derivative request .*allowed forms: 'u' \(the value\)") as info:
        derivatives(net, x, requests=("u", bad))
    assert repr(bad) in str(info.value)


def test_bad_arguments_raise():
    net, x = _make(2, 3, 2, 1, "single")
    with pytest.raises(ValueError, match="distinct"):
        derivatives(net, x, coords=("x", "x"))
    with pytest.raises(ValueError, match="identifier"):
        derivatives(net, x, coords=("t", "2x"))
    with pytest.raises(ValueError, match="one column per coordinate"):
        derivatives(net, x, coords=("t", "x", "y"))
    with pytest.raises(ValueError, match="method must be one of"):
        derivatives(net, x, method="magic")
    with pytest.raises(ValueError, match="at least one"):
        derivatives(net, x, requests=())
    with pytest.raises(ValueError, match="theta for this MLP"):
        derivatives(net, x, theta=torch.zeros(7, dtype=F64))
    ensemble, _ = _make(2, 3, 2, 1, "shared")
    with pytest.raises(ValueError, match="ensemble of 3 members"):
        derivatives(ensemble, torch.rand(2, 6, 2, dtype=F64))


def test_single_request_string():
    net, x = _make(2, 3, 1, 1, "single")
    f = derivatives(net, x, coords=("x",), requests="u_xx")
    assert list(f) == ["u_xx"] and f.u_xx.shape == (6, 1)


# ------------------------------------------------------------------------------- fastest_method
def _burgers_like(method: str, net: MLP, x: Tensor, theta: Tensor) -> Tensor:
    f = derivatives(net, x, coords=("t", "x"), requests=("u", "u_t", "u_x", "u_xx"), method=method, theta=theta)
    return (f["u_t"] + f["u"] * f["u_x"] - 0.01 * f["u_xx"]).square().mean()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fastest_method_times_every_method_and_picks_the_fastest(dtype):
    from fastpinn.derivatives import fastest_method

    net = MLP(2, 1, depth=3, width=8, seed=0, dtype=dtype)
    x = torch.rand(64, 2, dtype=dtype, generator=torch.Generator().manual_seed(0))
    choice = fastest_method(lambda m: _burgers_like(m, net, x, net.theta), net.theta, repeats=2)
    from fastpinn.ops import _ext

    fused = {"fused"} if _ext.available() else set()  # "fused" needs the compiled extension (else not applicable)
    # "taylor" (pure derivatives: u_t, u_x, u_xx are) needs a library built with the mlp_taylor op
    taylor = {"taylor"} if taylor_available() else set()
    assert set(choice.seconds) == {"jet", "func", "autograd"} | fused | taylor
    assert set(choice.rejected) == {"fused", "taylor"} - fused - taylor
    assert all(t > 0 for t in choice.seconds.values())
    assert choice.seconds[choice.method] == min(choice.seconds.values())


def test_fastest_method_rejects_a_method_that_disagrees():
    from fastpinn.derivatives import fastest_method

    net = MLP(2, 1, depth=2, width=6, seed=1, dtype=torch.float64)
    x = torch.rand(32, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))

    def loss(method: str) -> Tensor:
        value = _burgers_like(method, net, x, net.theta)
        # A relative error of 1e-6 is rounding in float32 but a bug in float64 (tolerance sqrt(eps) = 1.5e-8).
        return value * (1 + 1e-6) if method == "func" else value

    with pytest.warns(RuntimeWarning, match="'func' disagrees"):
        choice = fastest_method(loss, net.theta, repeats=1)
    assert "func" in choice.rejected and "func" not in choice.seconds and choice.method != "func"


def test_fastest_method_skips_methods_that_do_not_apply():
    from fastpinn.derivatives import fastest_method

    net = MLP(1, 1, depth=2, width=6, seed=2, dtype=torch.float64)
    x = torch.rand(16, 1, dtype=torch.float64)

    def loss(method: str) -> Tensor:  # third order: forward jets stop at second order
        return derivatives(net, x, coords=("x",), requests=("u_xxx",), method=method).u_xxx.square().mean()

    choice = fastest_method(loss, net.theta, repeats=1)
    assert "not applicable" in choice.rejected["jet"] and choice.method in ("func", "autograd", "taylor")
    with pytest.raises(ValueError, match="candidates"):
        fastest_method(loss, net.theta, candidates=("auto",))
    with pytest.raises(ValueError, match="no derivative method applies"):
        fastest_method(loss, net.theta, candidates=("jet",))
