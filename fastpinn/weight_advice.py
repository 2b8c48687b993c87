"""The words of the weight watcher's reports: what to try (the remedies a scheme declares), which members, which
share of the weights. Kept apart from :mod:`fastpinn.weight_watch`, which decides *when* to report."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any

import numpy as np
import torch

from .weight_progress import START_EPOCHS

#: The EMA decay advised to a scheme with a faster one: ``fastpinn train``'s DN default, the authors' Burgers setting.
SLOW_BETA = 0.99

__all__ = ["SLOW_BETA", "weight_share", "remedies", "declared_parameters", "members_note", "share_text",
           "left_behind_text", "skip_cause"]


def weight_share(rel: Any, observed: np.ndarray) -> Any:
    """``rel`` ``[..., K]`` (each weight over its start; an array or a tensor) over the largest such of the terms
    that are not observations (``observed`` ``[K]``): the weight a term gets next to the rest, which PINN keeps
    at 1 (Adam's steps do not change when every weight is scaled alike, so a share, not a weight, is what a
    scheme changes). ``rel`` itself where every term or none is an observation."""
    if observed.all() or not observed.any():
        return rel
    if isinstance(rel, np.ndarray):
        return rel / rel[..., ~observed].max(-1, keepdims=True)
    return rel / rel[..., torch.as_tensor(~observed, device=rel.device)].amax(-1, keepdim=True)


def remedies(scheme: Any, *wanted: str) -> str:
    """``"try A, B, or --scheme pinn"``: the remedies ``wanted`` (``"smoother"``: a larger EMA beta; ``"min"``,
    ``"max"``: weight bounds; ``"warmup"``) as options of ``scheme``, leaving out what it already has (a collapse
    under ``dn+clamp`` was told to add ``--weight-min 0.01``, the bound it sat at; one under the default β = 0.99
    to use ``--beta 0.99``) and what it does not declare (LRA has ``--alpha``, no ``--beta``)."""
    declared = declared_parameters(scheme)
    tips = []
    for what in wanted:
        if what == "smoother":
            beta = getattr(scheme, "beta", None)
            if not isinstance(beta, (int, float)) or beta >= SLOW_BETA:
                continue
            if "beta" in declared:
                tips.append(f"--beta {SLOW_BETA:g}")
            elif "alpha" in declared:  # the paper's parameter: beta = alpha (GradNormW) or 1 - alpha (LRA)
                tips.append(f"--alpha {SLOW_BETA:g}" if abs(float(scheme.alpha) - beta) < 1e-12 else f"--alpha {1 - SLOW_BETA:g}")
        elif what in ("min", "max") and f"weight_{what}" in declared:
            bound = getattr(scheme, f"weight_{what}")
            if bound is None:
                tips.append("a lower bound --weight-min (e.g. 0.01)" if what == "min" else
                            "an upper bound --weight-max (e.g. 100)")
            else:
                tips.append(f"a higher --weight-min than {bound:g}" if what == "min" else
                            f"a lower --weight-max than {bound:g}")
        elif what == "warmup" and "weight_warmup" in declared:
            n = int(getattr(scheme, "weight_warmup") or 0)
            tips.append("a warm-up --weight-warmup N" if n == 0 else f"a longer warm-up than --weight-warmup {n}")
    return "try " + ", ".join(tips + ["or --scheme pinn"]) if tips else "try --scheme pinn"


def declared_parameters(scheme: Any) -> set[str]:
    """The parameter names a scheme declares (its dataclass fields)."""
    return {f.name for f in fields(scheme)} if is_dataclass(scheme) else set()


def members_note(members: Any, S: int) -> str:
    """`` (seeds 0, 2 of 3)`` for an ensemble, nothing for one network."""
    members = list(members)
    if S == 1:
        return ""
    return f" (member{'s' if len(members) > 1 else ''} {', '.join(map(str, members))} of {S})"


def share_text(ratio: float) -> str:
    """``"35.2% of"`` a start value, or ``"139x"`` one (not "1.39e+04% of")."""
    return f"{ratio:.3g}x" if ratio >= 10 else f"{100 * ratio:.3g}% of"


def left_behind_text(ref: str, other: str, epoch: int, since: int, ref_fell: float, other_fell: float,
                     weight: float, ratio: float, note: str, scheme: Any) -> str:
    """The message of a ``left_behind`` report: the reference term ``ref`` whose loss fell ``ref_fell``x from its
    first level by ``epoch`` (behind since ``since``) while ``other``, weighted ``weight`` (``ratio`` x the
    reference's), fell ``other_fell``x; ``note`` names the members; the measured remedies ``scheme`` declares."""
    when = f"since epoch {since}: by epoch {epoch}" if since < epoch else f"at epoch {epoch}:"
    return (f"L_{ref} left behind {when} it fell {ref_fell:.3g}x from its start (first {START_EPOCHS} epochs) while "
            f"L_{other}, under λ_{other} = {weight:.2g} ({ratio:.2g}x λ_{ref}), fell {other_fell:.3g}x "
            f"({other_fell / ref_fell:.3g}x further){note}: the very large weights take nearly the whole step and "
            f"'{ref}' is barely minimised (user trial 3's elastic plate, DN β = 0.9: 2.3-4x PINN's error; β = 0.99 or "
            f"--weight-max 100 gave 6-10x better than PINN); {remedies(scheme, 'smoother', 'max', 'warmup')}")


def skip_cause(name: str, fitted: bool, untrained: bool, weight: float, large: float) -> str:
    """Why the weight updates of term ``name`` were skipped, for a ``skipped`` report: its loss was exactly 0
    (``fitted``; ``untrained`` when it was 0 already before the first step; ``weight`` its largest weight, very large
    above ``large``), or a statistic was zero or not finite for another reason."""
    if untrained:
        # The cavity's pressure pin p(0.5, 0.5) = 0 (user trial 3): the input scaling maps the box centre to the
        # origin, tanh is odd and the biases start at zero, so every output there is 0.0 to the last bit.
        return (f"the loss of '{name}' was exactly 0 before any step: the untrained network already satisfies it "
                "(an MLP with zero biases outputs exactly 0 at the centre of its input box, e.g. a pin p = 0 there), "
                "so its gradient was 0; harmless once training moves the network, or move the point off the centre")
    if fitted and weight > large:
        return (f"the loss of '{name}' was exactly 0 (fitted to the last bit, typically under a very large weight: "
                f"λ_{name} reached {weight:.2g}), so its gradient was 0; bound the weight with --weight-max (e.g. 100) "
                "or use --scheme pinn")
    if fitted:
        # a one-point term fitted exactly under a moderate weight (the trial's Robin point at λ = 1.3): nothing to
        # bound, the kept weight is the right one
        return (f"the loss of '{name}' was exactly 0 (fitted to the last bit under a moderate weight: λ_{name} at most "
                f"{weight:.2g}), so its gradient was 0; harmless while the term stays fitted (were its weight very "
                "large, bound it with --weight-max, e.g. 100)")
    return ("a term whose loss does not depend on the network, or a gradient that overflows; check the term's "
            "residual, lower the learning rate or use --scheme pinn")
