"""The hidden-layer activation in the fused MLP ops' schemas: one encoding (the name, ``str activation``) for
``fastpinn::mlp_jet_*`` and ``fastpinn::mlp_taylor_*``, one table per language (csrc/activation.h with the ops'
kJetActivations / kTaylorActivations; fastpinn/ops/activations.py), and an unknown name refused by every op with a
one-line ValueError naming the field and the allowed values. (That the kernels' results did not change with the
encoding was checked bit for bit against the int-coded build; the kernels' accuracy is tests/test_mlp_jet*.py's
and tests/test_mlp_taylor.py's.)
"""

from __future__ import annotations

import pytest
import torch

from fastpinn.network import ACTIVATIONS, MLP
from fastpinn.ops import _ext
from fastpinn.ops.activations import OP_ACTIVATIONS, check_activation
from fastpinn.ops.mlp_jet import LeafJet, mlp_jet
from fastpinn.ops.mlp_taylor import mlp_taylor

pytestmark = pytest.mark.skipif(not _ext.available(), reason="fastpinn._C is not built")

# Each compiled op, the table entry it follows.
OPS = {"mlp_jet_forward": "mlp_jet", "mlp_jet_backward": "mlp_jet", "mlp_jet_backward_batched": "mlp_jet",
       "mlp_taylor_forward": "mlp_taylor", "mlp_taylor_backward": "mlp_taylor"}
SIZES = [2, 3, 1]


def _call(op: str, activation: str) -> None:
    """``op`` on a 2 -> 3 -> 1 network at 5 points (u, u_x, u_xx: one tile), with ``activation``."""
    _ext.load()
    net = MLP(2, 1, 2, 3, dtype=torch.float64)
    theta, x, scale, shift = net.theta.detach()[None], torch.rand(5, 2, dtype=torch.float64), net.input_scale, \
        net.input_shift
    jet = (SIZES, [0], [0, 0], [0])  # dirs, pairs (flat), first_out
    f = getattr(torch.ops.fastpinn, op)
    if op == "mlp_jet_forward":
        f(theta, x, scale, shift, *jet, False, activation)
    elif op == "mlp_jet_backward":
        f(torch.ones(1, 3, 5, 1, dtype=torch.float64), theta, x, scale, shift, theta.new_empty(0), *jet, True,
          activation)
    elif op == "mlp_jet_backward_batched":
        f(torch.ones(2, 1, 3, 5, 1, dtype=torch.float64), theta, x, scale, shift, theta.new_empty(0), *jet, activation)
    elif op == "mlp_taylor_forward":
        f(theta, x, scale, shift, SIZES, [0], 2, activation)
    else:
        f(torch.ones(1, 3, 5, 1, dtype=torch.float64), theta, x, scale, shift, SIZES, [0], 2, activation, True)


def test_every_fused_op_takes_the_activation_by_name() -> None:
    _ext.load()
    for op in OPS:
        (arg,) = [a for a in getattr(torch.ops.fastpinn, op).default._schema.arguments if a.name == "activation"]
        assert str(arg.type) == "str", (op, arg)


@pytest.mark.parametrize("op", OPS)
def test_an_unknown_activation_is_a_one_line_value_error(op: str) -> None:
    allowed = ", ".join(OP_ACTIVATIONS[OPS[op]])
    with pytest.raises(ValueError) as info:
        _call(op, "relu")
    assert str(info.value) == f"fastpinn::{op}: activation must be one of {allowed}, got 'relu'"


@pytest.mark.parametrize("op", OPS)
def test_the_python_table_is_what_the_kernels_take(op: str) -> None:
    """Every activation the network knows: the op runs it iff the Python table lists it for the op."""
    for name in ACTIVATIONS:
        if name in OP_ACTIVATIONS[OPS[op]]:
            _call(op, name)
        else:
            with pytest.raises(ValueError, match=f"activation must be one of .*, got '{name}'"):
                _call(op, name)


def test_the_python_entries_refuse_as_the_ops_do() -> None:
    net = MLP(2, 1, 2, 3, dtype=torch.float64)
    x = torch.rand(5, 2, dtype=torch.float64)
    args = (net.theta.detach()[None], x, net.input_scale, net.input_shift, SIZES)
    with pytest.raises(ValueError, match=r"^activation must be one of tanh, sin, silu, softplus, got 'gelu'$"):
        mlp_jet(*args, [0], [(0, 0)], [0], activation="gelu")
    with pytest.raises(ValueError, match=r"^activation must be one of tanh, sin, silu, softplus, got 'gelu'$"):
        LeafJet(SIZES, [0], [(0, 0)], [0], activation="gelu")
    with pytest.raises(ValueError, match=r"^activation must be one of tanh, sin, got 'silu'$"):
        mlp_taylor(*args, [0], 2, "silu")
    assert check_activation("mlp_taylor", "sin") == "sin"


def test_compile_caches_are_keyed_by_the_ops_schemas() -> None:
    """torch.compile's on-disk caches key a graph by its nodes, not by the schemas of the custom ops it calls: after
    the rebuild that turned ``activation`` from int into str, a cached graph (tests/test_mlp_jet.py's compiled
    trainer) called the new op with ``activation=0``. Loading the library adds its schemas' digest to the key."""
    _ext.load()
    before = _ext.schema_digest()
    assert f"fastpinn-ops-{before}" in torch.compiler.config.cache_key_tag
    lib = torch.library.Library("fastpinn", "FRAGMENT")
    try:  # one more C++-style op (a CPU kernel) changes the digest
        lib.define("schema_digest_probe(Tensor x) -> Tensor")
        lib.impl("schema_digest_probe", lambda x: x.clone(), "CPU")
        assert _ext.schema_digest() != before
    finally:
        lib._destroy()
    assert _ext.schema_digest() == before
