"""The update schedule has one implementation (fastpinn.schedule.UpdateSchedule): the Weighter's epochs, the
host gate's and the device gate's steps, and a WeightedBackward's actual updates all follow it."""

import pytest
import torch

import fastpinn
from fastpinn.schedule import DeviceGate, HostGate, UpdateSchedule, make_gate
from fastpinn.weighter import UPDATE_SCHEDULES, Weighter, first_update_for

CASES = [(tau, bc, spe) for tau in (1, 2, 3, 7, 10) for bc in (False, True) for spe in (1, 3)]


def _gate_updates(gate, steps):
    out = []
    for step in range(steps):
        decision = gate.decide()
        out.append(bool(decision))
        gate.advance()
    return out


@pytest.mark.parametrize("schedule", UPDATE_SCHEDULES)
@pytest.mark.parametrize("tau,bias_correction,steps_per_epoch", CASES)
def test_weighter_and_both_gates_agree_on_the_first_100_steps(schedule, tau, bias_correction, steps_per_epoch):
    scheme = fastpinn.DN(tau=tau, bias_correction=bias_correction)
    first = first_update_for(schedule, scheme)
    if schedule == "authors" and not bias_correction:
        assert first == tau - 1  # 1-based epochs tau, 2 tau, ...
    _check_agreement(scheme, first, steps_per_epoch)


@pytest.mark.parametrize("tau,first,steps_per_epoch",
                         [(t, f, s) for t in (1, 3, 10) for f in (0, 1, 4, 12) for s in (1, 2)])
def test_any_first_update_agrees_on_the_first_100_steps(tau, first, steps_per_epoch):
    _check_agreement(fastpinn.DN(tau=tau), first, steps_per_epoch)


def _check_agreement(scheme, first, steps_per_epoch):
    tau = scheme.tau
    w = Weighter(scheme, 2, first_update=first)
    # the schedule as documented: epochs first, first + tau, ...
    expected_epochs = [e for e in range(100) if e >= first and (e - first) % tau == 0]
    assert [e for e in range(100) if w.should_update(e)] == expected_epochs
    # in steps: the first mini-batch of each updating epoch
    expected = [s % steps_per_epoch == 0 and w.should_update(s // steps_per_epoch) for s in range(100)]
    steps = w.schedule.in_steps(steps_per_epoch)
    assert [steps.is_update(s) for s in range(100)] == expected
    assert _gate_updates(HostGate(steps.period, steps.first_step), 100) == expected
    assert _gate_updates(DeviceGate(steps.period, steps.first_step), 100) == expected
    # a WeightedBackward builds its gate from its weighter's schedule
    p = [torch.zeros(3, requires_grad=True)]
    wb = fastpinn.WeightedBackward(p, scheme, 2, steps_per_epoch=steps_per_epoch, first_update=first)
    assert (wb.gate.period, wb.gate.first_step) == (steps.period, steps.first_step)
    assert _gate_updates(wb.gate, 100) == expected


def test_a_weighted_backward_updates_on_exactly_the_scheduled_steps():
    torch.manual_seed(0)
    p = torch.randn(4, dtype=torch.float64, requires_grad=True)
    scheme = fastpinn.DN(tau=3)
    wb = fastpinn.WeightedBackward([p], scheme, 2, steps_per_epoch=2, first_update=first_update_for("authors", scheme))
    updated = []
    for step in range(20):
        before = int(wb.weighter.n_updates[0])
        wb([(p ** 2).sum(), (p.sin() ** 2).sum()])
        updated.append(int(wb.weighter.n_updates[0]) > before)
    # epochs 2, 5, 8 -> steps 4, 10, 16
    assert [s for s, u in enumerate(updated) if u] == [4, 10, 16]
    assert [s for s in range(20) if s % 2 == 0 and wb.weighter.should_update(s // 2)] == [4, 10, 16]


def test_schedule_arguments_are_checked():
    with pytest.raises(ValueError, match="period must be an integer >= 1, got 0"):
        UpdateSchedule(0)
    with pytest.raises(ValueError, match="first_step must be an integer >= 0, got -1"):
        HostGate(2, -1)
    with pytest.raises(ValueError, match="gate must be 'host' or 'device', got 'gpu'"):
        make_gate("gpu", UpdateSchedule(1))
    assert not Weighter(fastpinn.PINN(), 2).should_update(0)  # a fixed scheme never updates
