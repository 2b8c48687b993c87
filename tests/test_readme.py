"""The README's Python blocks run as written (in order, one namespace), so the documented paths stay true."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_python_blocks_run(capsys):
    blocks = _blocks()
    assert len(blocks) >= 5  # your PDE, your model, your loop, the Weighter, inverse problems and systems
    namespace: dict = {"__name__": "readme"}
    for i, code in enumerate(blocks):
        exec(compile(code, f"README.md python block {i}", "exec"), namespace)  # noqa: S102
    out = capsys.readouterr().out
    assert "{'pde': 'autograd', 'bc': 'autograd'}" in out  # issue 20: auto never picks the slow torch.func
    assert "'nu'" in out and "momentum_x" in out
