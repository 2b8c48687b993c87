"""The published numbers of Deguchi & Asai (2023), shown beside our results by ``fastpinn reproduce``.

Source: S. Deguchi and M. Asai, "Dynamic & norm-based weights to normalize imbalance in back-propagated
gradients of physics-informed neural networks", J. Phys. Commun. 7 (2023) 075005,
doi:10.1088/2399-6528/ace416 (open access, CC BY 4.0), Tables 1-4.

Every value is the mean relative L2 error of 10 independent runs (i.i.d. initialisations) with its
standard error, as printed; stored here in absolute units (the tables print Burgers and Poisson in units
of 1e-3, Allen-Cahn in 1e-2). Times are wall seconds of the whole run in TensorFlow on one NVIDIA RTX
A6000, with the printed increase over PINN. Protocol of all four tables: Adam, lr 1e-3, tau = 10, no
bias correction. Table 4 prints its Burgers column as "x1e-2", but its p = 2 rows equal Table 1's
DN-PINN rows (12.70 and 7.49 x1e-3): the unit is 1e-3, a typo in the header, and it is read so here.
Table 4 publishes no times. Fig. 12 is a figure: no numbers.

Layout: ``PAPER[table][key]`` is a :class:`PaperEntry`; ``key`` is the configuration key used by
:mod:`fastpinn.experiments` (``"pinn"``, ``"dn-b0.99"``; Table 4: ``"poisson/dn-b0.9-p1"``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

__all__ = ["PaperEntry", "PAPER", "SOURCE", "UNITS", "AUTHORS_SAVE_EVERY", "lookup", "agrees"]

SOURCE = "Deguchi & Asai, J. Phys. Commun. 7 (2023) 075005, doi:10.1088/2399-6528/ace416, Tables 1-4"

#: The unit each table prints its errors in (``value_printed * unit`` = relative L2 error).
UNITS = {"burgers": 1e-3, "poisson": 1e-3, "allen_cahn": 1e-2}

#: Epochs between the authors' saves. Their TensorFlow scripts (DN_PINN repository, 02_Poisson/*/train.py
#: and the Burgers ones) evaluate the rel. L2 error on the 201x201 grid after every epoch (counted from 1,
#: after the step) and, at every epoch that is a multiple of 250, save the weights as "best" when that error
#: is below the best saved so far; infer.py loads those best weights. The paper's error of one run is so
#: the minimum of the rel. L2 over the epochs 250, 500, ... <= E.
AUTHORS_SAVE_EVERY = 250


@dataclass(frozen=True)
class PaperEntry:
    """One row of a published table: rel. L2 mean and standard error over 10 runs (absolute), training
    time (s) and its increase over PINN (%). ``None``: not published."""

    rel_l2_mean: Optional[float] = None
    rel_l2_sem: Optional[float] = None
    time_s: Optional[float] = None
    overhead_pct: Optional[float] = None


_UNKNOWN = PaperEntry()


def _rows(problem: str, rows: dict[str, tuple[float, float, float, Optional[float]]]) -> dict[str, PaperEntry]:
    u = UNITS[problem]
    return {k: PaperEntry(m * u, s * u, t, pct) for k, (m, s, t, pct) in rows.items()}


# (mean, s.e.) as printed, time (s), increase over PINN (%) as printed.
PAPER: dict[str, dict[str, PaperEntry]] = {
    "table1": _rows("burgers", {  # 1-D Burgers, 30,000 epochs, full batch
        "pinn": (9.26, 1.36, 526.55, None),
        "ma-b0.9": (7.68, 0.74, 701.31, 33.0), "id-b0.9": (10.26, 2.62, 705.08, 34.0),
        "dn-b0.9": (12.70, 2.25, 703.61, 34.0),
        "ma-b0.99": (8.58, 1.79, 704.95, 34.0), "id-b0.99": (7.12, 1.28, 704.98, 34.0),
        "dn-b0.99": (7.49, 1.12, 703.45, 34.0),
    }),
    "table2": _rows("poisson", {  # 2-D Poisson (omega = 4 pi), 30,000 epochs, full batch
        "pinn": (232.29, 19.18, 245.30, None),
        "ma-b0.9": (2.05, 0.11, 297.25, 21.0), "id-b0.9": (1.47, 0.11, 300.04, 22.0),
        "dn-b0.9": (1.41, 0.11, 298.10, 22.0),
        "ma-b0.99": (2.06, 0.19, 299.77, 22.0), "id-b0.99": (1.13, 0.11, 298.66, 22.0),
        "dn-b0.99": (1.11, 0.11, 297.92, 21.0),
    }),
    "table3": _rows("allen_cahn", {  # 1-D Allen-Cahn, 50,000 epochs, batch 4,096; only lambda_IC dynamic
        "pinn": (22.79, 7.35, 8121.97, None),
        "ma-b0.9": (3.30, 0.19, 8245.85, 2.0), "id-b0.9": (2.08, 0.23, 8246.31, 2.0),
        "dn-b0.9": (1.60, 0.19, 8245.83, 2.0),
        "ma-b0.99": (2.60, 0.11, 8246.16, 2.0), "id-b0.99": (1.50, 0.17, 8245.36, 2.0),
        "dn-b0.99": (1.58, 0.17, 8246.36, 2.0),
    }),
    # Table 4: DN-PINN with L^p norms, p = 1, 2, inf, at beta = 0.9 and 0.99 on the three problems.
    "table4": {
        f"{problem}/dn-b{beta:g}-p{p}": PaperEntry(m * UNITS[problem], s * UNITS[problem])
        for problem, col in (
            ("burgers", {(0.9, "1"): (17.58, 7.83), (0.9, "2"): (12.70, 2.25), (0.9, "inf"): (11.78, 2.72),
                         (0.99, "1"): (7.65, 0.90), (0.99, "2"): (7.49, 1.12), (0.99, "inf"): (8.60, 1.30)}),
            ("poisson", {(0.9, "1"): (1.17, 0.13), (0.9, "2"): (1.41, 0.11), (0.9, "inf"): (1.16, 0.06),
                         (0.99, "1"): (1.09, 0.08), (0.99, "2"): (1.11, 0.11), (0.99, "inf"): (1.19, 0.13)}),
            ("allen_cahn", {(0.9, "1"): (1.55, 0.08), (0.9, "2"): (1.60, 0.19), (0.9, "inf"): (1.70, 0.19),
                            (0.99, "1"): (1.28, 0.08), (0.99, "2"): (1.58, 0.17), (0.99, "inf"): (1.78, 0.15)}),
        )
        for (beta, p), (m, s) in col.items()
    },
    "fig12": {},  # a figure: no published numbers
}


def lookup(table: str, key: str) -> PaperEntry:
    """The paper's entry for configuration ``key`` of ``table`` (all ``None`` where not published)."""
    return PAPER.get(table, {}).get(key, _UNKNOWN)


def agrees(mean: Optional[float], sem: Optional[float], paper: PaperEntry, factor: float = 1.0) -> Optional[bool]:
    """Whether our mean and the paper's differ by at most ``factor`` times their combined standard error:
    ``|mean - mean_paper| <= factor * sqrt(sem^2 + sem_paper^2)``; ``None`` when either side is missing
    (one seed has no s.e.: only the paper's counts then)."""
    if mean is None or paper.rel_l2_mean is None or not math.isfinite(mean):
        return None
    ours = sem if sem is not None and math.isfinite(sem) else 0.0
    combined = math.hypot(ours, paper.rel_l2_sem or 0.0)
    return abs(mean - paper.rel_l2_mean) <= factor * combined
