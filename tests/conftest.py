import os

import torch

# The Triton kernels run under the interpreter when there is no GPU; the variable must be set before
# triton is first imported, which is why it lives here and not in a test module.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
