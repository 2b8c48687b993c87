"""Point streams in the unit cube ``[0, 1]^k``: the one source of randomness of every domain sampler.

A domain maps unit-cube points onto its interior or boundary (and rejects what falls outside), so every
sampling method works on every domain. A stream is drawn from repeatedly: a quasi-random stream continues
its sequence across draws, so the points a rejection sampler keeps stay a low-discrepancy set.

Methods: ``"uniform"`` (torch's generator, reproducible from its seed), ``"lhs"`` (Latin hypercube per
draw, fastpinn.sampling's), ``"sobol"`` and ``"halton"`` (scrambled, from ``scipy.stats.qmc``: the optional
extra ``fastpinn[geometry]``; seeded from the torch generator).
"""

from __future__ import annotations

import warnings
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from .. import sampling
from ..validation import check_choice, check_int

__all__ = ["METHODS", "CubeStream"]

METHODS = ("uniform", "lhs", "sobol", "halton")


def _qmc_engine(method: str, k: int, seed: int):
    try:
        from scipy.stats import qmc
    except ImportError:  # scipy is an optional extra
        raise ImportError(f"sampling method {method!r} needs scipy: pip install 'fastpinn[geometry]'") from None
    engine = qmc.Sobol if method == "sobol" else qmc.Halton
    try:
        return engine(k, scramble=True, rng=np.random.default_rng(seed))
    except TypeError:  # scipy < 1.15 names the generator `seed`
        return engine(k, scramble=True, seed=np.random.default_rng(seed))


class CubeStream:
    """Successive draws of points ``[m, k]`` (float64) in ``[0, 1)^k`` by one method.

    Args:
        method: one of :data:`METHODS`.
        k: the cube's dimension (``>= 1``).
        generator: torch generator (``None``: torch's global one); quasi-random engines take their
            scrambling seed from it, so one seed fixes every method's points.
    """

    def __init__(self, method: str, k: int, generator: Optional[torch.Generator] = None) -> None:
        self.method = check_choice("method", method, METHODS)
        self.k = check_int("k", k, minimum=1)
        self.generator = generator
        self._engine = None
        if method in ("sobol", "halton"):
            seed = int(torch.randint(0, 2 ** 31 - 1, (1,), generator=generator))
            self._engine = _qmc_engine(method, k, seed)

    def draw(self, m: int) -> Tensor:
        """The next ``m`` points ``[m, k]``."""
        if self.method == "uniform":
            return torch.rand(m, self.k, generator=self.generator, dtype=torch.float64)
        if self.method == "lhs":
            gen = self.generator if self.generator is not None else torch.default_generator
            return sampling.latin_hypercube(m, [0.0] * self.k, [1.0] * self.k, gen, dtype=torch.float64)
        with warnings.catch_warnings():
            # Sobol' balance is best at powers of two; rejection sampling draws other sizes by design
            warnings.filterwarnings("ignore", message=".*balance properties.*")
            return torch.from_numpy(self._engine.random(m)).to(torch.float64)
