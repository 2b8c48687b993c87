"""The published numbers of Deguchi & Asai (2023), shown beside our results by ``fastpinn reproduce``.

Source: S. Deguchi and M. Asai, "Dynamic & norm-based weights to normalize imbalance in back-propagated
gradients of physics-informed neural networks", J. Phys. Commun. 7 (2023) 075005,
doi:10.1088/2399-6528/ace416 (open access), Tables 1-4 and Fig. 12.

STATUS: NOT TRANSCRIBED. The article's tables could not be read from this project's sources: the stored
copies of the IOP article page, the DOAJ / Kyushu University / OUCI records and the authors' repository
README (github.com/ShotaDeguchi/DN_PINN) give the abstract and the code, not the tables. A number is
never guessed: every value below is ``None`` and the tables print "n/a" for it. To fill one in, copy it
from the article's table into the matching entry and keep this comment's source line accurate.

Layout: ``PAPER[table][key]`` is a :class:`PaperEntry`; ``key`` is the configuration key used by
:mod:`fastpinn.experiments` (e.g. ``"pinn"``, ``"dn-b0.99"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

__all__ = ["PaperEntry", "PAPER", "SOURCE", "lookup"]

SOURCE = ("Deguchi & Asai, J. Phys. Commun. 7 (2023) 075005, doi:10.1088/2399-6528/ace416 "
          "(values not transcribed: n/a)")


@dataclass(frozen=True)
class PaperEntry:
    """One row of a published table: rel. L2 mean and standard error over seeds, training time (s), and
    the training-time increase over PINN (%). ``None``: not known."""

    rel_l2_mean: Optional[float] = None
    rel_l2_sem: Optional[float] = None
    time_s: Optional[float] = None
    overhead_pct: Optional[float] = None


_UNKNOWN = PaperEntry()

_MAIN_ROWS = ("pinn", "ma-b0.9", "ma-b0.99", "id-b0.9", "id-b0.99", "dn-b0.9", "dn-b0.99")

PAPER: dict[str, dict[str, PaperEntry]] = {
    # Table 1: viscous Burgers (not transcribed, see the module docstring).
    "table1": {key: _UNKNOWN for key in _MAIN_ROWS},
    # Table 2: Poisson (not transcribed).
    "table2": {key: _UNKNOWN for key in _MAIN_ROWS},
    # Table 3: Allen-Cahn (not transcribed).
    "table3": {key: _UNKNOWN for key in _MAIN_ROWS},
    # Table 4: DN-PINN with L^p norms, p = 1, 2, inf (not transcribed).
    "table4": {key: _UNKNOWN for key in ("dn-p1", "dn-p2", "dn-pinf")},
    # Fig. 12 is a figure; it has no table of numbers.
    "fig12": {},
}


def lookup(table: str, key: str) -> PaperEntry:
    """The paper's entry for configuration ``key`` of ``table`` (all ``None`` where unknown)."""
    return PAPER.get(table, {}).get(key, _UNKNOWN)
