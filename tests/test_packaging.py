"""An editable install keeps working when scripts run from the folder that holds a clone named ``fastpinn``.

That folder's ``fastpinn/`` (the clone, no ``__init__.py``) is a namespace package to Python. setuptools'
editable install of a package with a remapped subpackage (``fastpinn.kernels`` -> ``kernels/``) was an import
hook appended to ``sys.meta_path``, which runs after the ordinary path search and so never saw ``import
fastpinn``: "cannot import name 'Problem' from 'fastpinn' (unknown location)". With ``fastpinn/kernels`` a link
to ``kernels/`` the layout is simple, and the install is a ``sys.path`` entry to the checkout: a regular package
on ``sys.path`` wins over a namespace folder found earlier.

The fast tests check the layout and the import order with a simulated path entry; the slow one does a real
``pip install -e`` into a throwaway virtual environment.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "from fastpinn import Problem\nimport fastpinn, fastpinn.kernels\nprint(fastpinn.__file__)\n" \
         "print(fastpinn.kernels.__file__)\n"


def _env_without_pythonpath() -> dict:
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH")}


def test_package_kernels_is_the_top_level_kernels_folder():
    link = ROOT / "fastpinn" / "kernels"
    assert link.is_dir() and link.resolve() == (ROOT / "kernels").resolve()
    if shutil.which("git") and (ROOT / ".git").exists():
        listed = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-s", "fastpinn/kernels"], capture_output=True,
                                text=True).stdout.split()
        assert listed and listed[0] == "120000", listed  # committed as a symbolic link, not a local convenience


def test_setup_declares_a_simple_layout(tmp_path):
    # What setuptools reads: the root is the source directory of every package, fastpinn.kernels included.
    code = textwrap.dedent(f"""
        import os, sys
        os.chdir({str(ROOT)!r}); sys.argv = ["setup.py"]
        from distutils.core import run_setup
        d = run_setup("setup.py", stop_after="init")
        print(d.package_dir, sorted(d.packages))
        try:
            from setuptools.command.editable_wheel import _simple_layout
        except ImportError:
            sys.exit(0)
        assert _simple_layout(d.packages, d.package_dir, os.getcwd())
        """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "{'': '.'}" in proc.stdout and "'fastpinn.kernels'" in proc.stdout
    # and a regular build copies the kernels as files into the package
    build = tmp_path / "lib"
    proc = subprocess.run([sys.executable, "setup.py", "-q", "egg_info", "--egg-base", str(tmp_path), "build_py",
                           "--build-lib", str(build)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    built = build / "fastpinn" / "kernels" / "mlp_jet.py"
    assert built.is_file() and not built.is_symlink()


def test_a_path_entry_wins_over_a_clone_folder_in_the_current_directory(tmp_path):
    # The folder that holds a clone: its fastpinn/ is not a package (no __init__.py), just as a clone's root.
    clone = tmp_path / "fastpinn"
    (clone / "kernels").mkdir(parents=True)
    (clone / "setup.py").write_text("")
    code = f"import sys; sys.path.append({str(ROOT)!r})\n" + SCRIPT  # what the install's .pth line does
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env=_env_without_pythonpath())
    assert proc.returncode == 0, proc.stderr
    package, kernels = proc.stdout.split()
    assert Path(package) == ROOT / "fastpinn" / "__init__.py"
    assert Path(kernels) == ROOT / "fastpinn" / "kernels" / "__init__.py"


@pytest.mark.slow
def test_editable_install_from_the_folder_holding_the_clone(tmp_path):
    """A real ``pip install -e`` of a clone named fastpinn into a throwaway venv (builds the C++ extension:
    minutes), then a script run from the folder that holds the clone."""
    if not shutil.which("git") or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to clone")
    clone = tmp_path / "fastpinn"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True, timeout=300)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    # the throwaway venv sees this interpreter's packages (torch, pip, setuptools) through a path entry
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    import sysconfig

    Path(site, "outer.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in _env_without_pythonpath().items() if k != "VIRTUAL_ENV"}
    proc = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                           "--no-build-isolation", "--no-deps", "-e", str(clone)], capture_output=True, text=True,
                          env=env, timeout=1800)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (tmp_path / "script.py").write_text(SCRIPT)
    proc = subprocess.run([str(python), "script.py"], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    package, kernels = proc.stdout.split()
    assert Path(package) == clone / "fastpinn" / "__init__.py"
    assert Path(kernels) == clone / "fastpinn" / "kernels" / "__init__.py"
