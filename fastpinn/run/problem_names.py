"""Which problem a run's name refers to: a built-in problem of :data:`fastpinn.problems.BUILTIN`, or a
function in the user's own file (``path/to/file.py:make_problem``), imported afresh and identified by the
SHA-256 of the file's bytes."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Callable

from .. import problems as problem_registry
from ..problem import Problem

__all__ = ["PROBLEMS", "USER_PROBLEM_FORM", "is_user_problem", "user_problem_file", "file_sha256",
           "problem_factory", "problem_takes_seed"]

#: The built-in problems (their registry: :data:`fastpinn.problems.BUILTIN`).
PROBLEMS = problem_registry.NAMES
#: The other form a problem name takes: a function in the user's own file, ``path/to/file.py:make_problem``.
USER_PROBLEM_FORM = "FILE.py:FUNCTION"


def is_user_problem(name: str) -> bool:
    """Whether ``name`` names a function in a Python file (``path/to/file.py:make_problem``)."""
    file, sep, func = str(name).rpartition(":")
    return bool(sep) and file.endswith(".py") and func.isidentifier()


def _load_user_factory(name: str) -> Callable[..., Problem]:
    """The function ``name`` names, imported from its file (a fresh module per call: edits are seen)."""
    import importlib.util

    path, func = user_problem_file(name), str(name).rpartition(":")[2]
    if not path.is_file():
        raise ValueError(f"problem file {str(path)!r} does not exist (problem {name!r}; form {USER_PROBLEM_FORM})")
    spec = importlib.util.spec_from_file_location(f"fastpinn_user_problem_{abs(hash(str(path)))}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - any failure of the user's file is a bad argument, reported once
        raise ValueError(f"problem file {str(path)!r} failed to import ({type(exc).__name__}: {exc})") from exc
    factory = getattr(module, func, None)
    if not callable(factory):
        raise ValueError(f"problem file {str(path)!r} has no function {func!r}")
    return factory


def problem_factory(name: str) -> Callable[..., Problem]:
    """The function that builds problem ``name``: a built-in's, or the user's, imported from its file;
    ``ValueError`` naming the allowed forms for an unknown name or a bad file."""
    if is_user_problem(name):
        return _load_user_factory(name)
    factories = problem_registry.BUILTIN
    if name not in factories:
        raise ValueError(f"problem must be one of {', '.join(PROBLEMS)} or {USER_PROBLEM_FORM} (a function of your "
                         f"own file returning a fastpinn.Problem), got {name!r}")
    return factories[name]


def problem_takes_seed(name: str) -> bool:
    """Whether problem ``name``'s factory takes a ``seed`` argument (every built-in does; a user's function may
    not, and then trains one network, seed 0). ``ValueError`` for an unknown name or a bad file."""
    return "seed" in inspect.signature(problem_factory(name)).parameters


def user_problem_file(name: str) -> Path:
    """The file of a user problem ``path/to/file.py:make_problem`` (:func:`is_user_problem`)."""
    return Path(str(name).rpartition(":")[0])


def file_sha256(path: Path) -> str:
    """The SHA-256 (hex) of a file's bytes: what a run records of its problem file."""
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
