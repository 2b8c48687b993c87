"""Shared constants of the weighting ops: the statistics layout (the EMA op knows no scheme: no scheme codes).

``grad_stats`` returns ``stats[S, K, N_STATS]``; column ``c`` of row ``(s, k)`` describes the per-term
gradient row ``G[s, k, :]`` of length ``P``:

==========  ==============================================================================
SUM_ABS     sum |g|
SUM_SQ      sum g^2
MAX_ABS     max |g|
SUM         sum g
NORM_P      ||g||_p for the runtime p (p = inf: max |g|); computed with max-scaling, so no overflow
M2          sum (g - mean(g))^2  (for the Bessel-corrected sample standard deviation)
NONFINITE   number of NaN/Inf entries (other columns are unspecified when it is non-zero)
==========  ==============================================================================
"""

SUM_ABS = 0
SUM_SQ = 1
MAX_ABS = 2
SUM = 3
NORM_P = 4
M2 = 5
NONFINITE = 6
N_STATS = 7

STAT_NAMES = ("sum_abs", "sum_sq", "max_abs", "sum", "norm_p", "m2", "nonfinite")
