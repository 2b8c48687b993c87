"""Checkpoint files: nothing in them runs on load, a flipped bit is refused, older formats are named."""

from __future__ import annotations

import hashlib
import io
import pathlib

import pytest
import torch

import fastpinn
from fastpinn.problems import poisson1d
from fastpinn.trainer import CheckpointError, CorruptCheckpointError, Trainer


def _trainer():
    return Trainer(poisson1d(0, n_pde=12, depth=2, width=4), fastpinn.DN(beta=0.9), backend="torch", eval_every=2)


class _WritesMarker:
    """A pickle payload: unpickling it calls Path.touch(marker)."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def _readers(path):
    from fastpinn.checkpoint import read_checkpoint

    return [lambda: read_checkpoint(str(path)), lambda: Trainer.read_checkpoint(str(path)),
            lambda: _trainer().load_checkpoint(str(path))]


def _assert_refused_without_running(path, marker, match):
    for read in _readers(path):
        with pytest.raises(CheckpointError, match=match):
            read()
        assert not marker.exists()


def test_a_pickle_payload_is_never_run(tmp_path):
    # As the attacker: a checkpoint.pt whose state carries an object that runs code when unpickled.
    marker = tmp_path / "ran"
    state = _trainer().state_dict()
    state["extra"] = {"history": _WritesMarker(marker)}
    path = tmp_path / "evil.pt"
    torch.save(state, path)
    _assert_refused_without_running(path, marker, "holds Python objects other than tensors and plain containers")


def test_a_pickle_payload_inside_a_well_formed_wrapper_is_never_run(tmp_path):
    # The same payload inside this format's wrapper, with a correct checksum: the payload is read
    # weights-only too.
    marker = tmp_path / "ran"
    buf = io.BytesIO()
    torch.save({"x": _WritesMarker(marker)}, buf)
    payload = buf.getvalue()
    path = tmp_path / "evil.pt"
    torch.save({"format": "fastpinn-checkpoint", "version": 2, "sha256": hashlib.sha256(payload).hexdigest(),
                "payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8)}, path)
    _assert_refused_without_running(path, marker, f"checkpoint '{path}' holds Python objects")


def test_a_flipped_byte_is_refused_naming_the_path(tmp_path):
    a = _trainer()
    a.train(4)
    path = tmp_path / "ckpt.pt"
    a.save_checkpoint(str(path))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    for read in _readers(path):
        with pytest.raises(CorruptCheckpointError, match=f"checkpoint '{path}' is truncated or corrupt"):
            read()


def test_an_older_format_is_refused_with_what_to_do(tmp_path):
    state = _trainer().state_dict()
    state["format_version"] = 1  # the layout fastpinn wrote before checksums: torch.save of the state
    state.pop("backward", None)
    path = tmp_path / "old.pt"
    torch.save(state, path)
    with pytest.raises(CorruptCheckpointError, match="older fastpinn.*retrain.*--force"):
        _trainer().load_checkpoint(str(path))


def test_only_plain_content_is_written(tmp_path):
    a = _trainer()
    with pytest.raises(TypeError, match=r"state\['extra'\]\['obj'\] is a .*_WritesMarker"):
        a.save_checkpoint(str(tmp_path / "x.pt"), extra={"obj": _WritesMarker(tmp_path / "m")})
    assert not (tmp_path / "x.pt").exists()


def test_a_checkpoint_round_trips_every_field(tmp_path):
    import numpy as np

    a = _trainer()
    h = a.train(4)
    path = tmp_path / "ckpt.pt"
    a.save_checkpoint(str(path), extra={"history": h.to_dict(), "names": np.array(["pde", "bc"])})
    b = _trainer()
    extra = b.load_checkpoint(str(path))
    assert torch.equal(b.theta, a.theta) and b.epoch == 4 and extra["names"] == ["pde", "bc"]
    back = fastpinn.History.from_dict(extra["history"])
    np.testing.assert_array_equal(back.losses, h.losses)
    assert back.losses.dtype == h.losses.dtype and back.eval_epochs.dtype == np.int64
    ha, hb = a.train(4), b.train(4)
    np.testing.assert_array_equal(ha.losses, hb.losses)
    assert torch.equal(a.theta, b.theta)


def test_the_weighted_backward_saves_its_own_state():
    # One format for the weighted backward: the trainer's checkpoint holds backward.state_dict() as is.
    a = Trainer(poisson1d(0, n_pde=12, depth=2, width=4), fastpinn.DN(tau=2), backend="torch", eval_every=2,
                step_mode="device")
    a.train(3)
    state = a.state_dict()
    assert "weighter" not in state and "update_step" not in state
    assert set(state["backward"]) == set(a.backward.state_dict())
    assert state["backward"]["gate_step"] == 3 * a.steps_per_epoch
    b = Trainer(poisson1d(0, n_pde=12, depth=2, width=4), fastpinn.DN(tau=2), backend="torch", eval_every=2,
                step_mode="device")
    b.load_state_dict(state)
    assert b.backward.gate.step == 3 * b.steps_per_epoch
    assert torch.equal(b.backward.weights(), a.backward.weights())
