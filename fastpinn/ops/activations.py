"""The hidden-layer activations the compiled MLP ops implement: the one Python table of them.

The ops take the activation by name (``str activation`` in their schemas; csrc/activation.h says why a name and
not a number), the name that :data:`fastpinn.network.ACTIVATIONS` and the command line use. Which names each op's
kernels implement is declared here for Python and in csrc (``kJetActivations``, ``kTaylorActivations``) for C++;
tests/test_op_activations.py checks that the two agree. The Triton CUDA kernel of ``mlp_jet`` is tanh only
(fastpinn/kernels/mlp_jet.py).
"""

from __future__ import annotations

__all__ = ["OP_ACTIVATIONS", "JET_ACTIVATIONS", "TAYLOR_ACTIVATIONS", "check_activation"]

#: The activations each op family's C++ kernels implement, by the op's name (``fastpinn::<name>_forward``).
OP_ACTIVATIONS: dict[str, tuple[str, ...]] = {
    "mlp_jet": ("tanh", "sin", "silu", "softplus"),
    "mlp_taylor": ("tanh", "sin"),
}
#: ``fastpinn::mlp_jet_*`` (derivative method ``"fused"``).
JET_ACTIVATIONS = OP_ACTIVATIONS["mlp_jet"]
#: ``fastpinn::mlp_taylor_*`` (derivative method ``"taylor"``): the activations with a Taylor recursion.
TAYLOR_ACTIVATIONS = OP_ACTIVATIONS["mlp_taylor"]


def check_activation(op: str, activation: object) -> str:
    """``activation`` if ``op``'s kernels implement it, else the one-line ``ValueError`` the compiled op raises
    (the ops sit below ``fastpinn.validation``: this is its ``check_choice`` message)."""
    allowed = OP_ACTIVATIONS[op]
    if activation not in allowed:
        raise ValueError(f"activation must be one of {', '.join(allowed)}, got {activation!r}")
    return activation  # type: ignore[return-value]
