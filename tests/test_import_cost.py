"""What ``import fastpinn`` costs: every ``fastpinn`` command pays it before doing anything."""

from __future__ import annotations

import subprocess
import sys

import torch

from fastpinn.compile_policy import outside_compiled_graphs


def test_import_fastpinn_does_not_import_dynamo():
    """torch._dynamo takes ~2.3 s to import on a 2-core CPU; torch alone does not import it, nor may fastpinn
    (a ``@torch.compiler.disable`` at module level did, for every CLI command)."""
    code = ("import sys, torch; before = 'torch._dynamo' in sys.modules; import fastpinn, fastpinn.cli; "
            "print(before, 'torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["False", "False"], out.stdout + out.stderr


def test_outside_compiled_graphs_runs_eagerly_under_compile():
    """The function still runs outside torch.compile's graph (eagerly, ``is_compiling()`` False inside it)."""
    from torch._dynamo.testing import CompileCounter

    seen: list[bool] = []

    @outside_compiled_graphs
    def inner(x: torch.Tensor) -> torch.Tensor:
        seen.append(torch.compiler.is_compiling())
        return torch.sin(x)

    def outer(x: torch.Tensor) -> torch.Tensor:
        return (inner(x) * 2.0).sum()

    counter = CompileCounter()
    x = torch.linspace(0.0, 1.0, 5)
    compiled = torch.compile(outer, backend=counter)
    assert torch.equal(compiled(x), outer(x)) and torch.equal(compiled(x), outer(x))
    assert seen == [False] * 4  # eager inside, whether called from the compiled function or not
    assert counter.frame_count == 1 and counter.op_count == 2  # the graph holds the mul and the sum only
    assert inner.__name__ == "inner"
