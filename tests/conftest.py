import os

import pytest
import torch

# The Triton kernels run under the interpreter when there is no GPU; the variable must be set before
# triton is first imported, which is why it lives here and not in a test module.
# One thread in the suite: bit-for-bit comparisons between runs must not depend on how busy the machine
# is (fastpinn.threads' "auto" policy would follow the load).
os.environ.setdefault("FASTPINN_THREADS", "1")

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


@pytest.fixture(autouse=True)
def _short_compare_step_timing(monkeypatch):
    """``fastpinn compare``'s paired step timing in short bursts: its default (0.3 s per scheme per round) would
    add seconds to every compare test; tests of the timing itself pass their own ``seconds``."""
    from fastpinn.run import step_timing

    monkeypatch.setattr(step_timing, "STEP_TIMING_SECONDS", 0.01)
