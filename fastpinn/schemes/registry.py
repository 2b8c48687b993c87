"""The scheme registry: each scheme class registers once with its command-line name and display title.

Everything that lists or builds schemes reads it: :data:`SCHEME_NAMES` (a live view, so a scheme registered
later -- by a user, or a test -- appears wherever the names are read), :func:`scheme_from_name`,
:func:`scheme_from_dict`, the command-line options (:mod:`fastpinn.schemes.options`) and the run layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Callable, Iterator, TypeVar

from .base import Param, Scheme

__all__ = ["register", "unregister", "scheme_class", "scheme_from_name", "scheme_from_dict", "SCHEME_NAMES",
           "parameters_by_key"]

_REGISTRY: dict[str, type[Scheme]] = {}

S = TypeVar("S", bound=type)


def register(name: str, *, title: str) -> Callable[[S], S]:
    """Class decorator: register a :class:`Scheme` subclass under its command-line ``name`` (``"dn"``) with its
    display ``title`` (``"DN-PINN"``). A parameter key another scheme also declares must have the same kind
    (one command-line option serves both)."""

    def decorate(cls: S) -> S:
        if not (isinstance(cls, type) and issubclass(cls, Scheme)):
            raise TypeError(f"register() takes a fastpinn.schemes.Scheme subclass, got {cls!r}")
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"a scheme named {name!r} is already registered ({_REGISTRY[name].__name__})")
        for key, spec in cls.declared().items():
            for other, p in parameters_by_key().get(key, []):
                if p.kind != spec.kind:
                    raise ValueError(f"parameter {key!r} of {cls.__name__} is a {spec.kind}, but scheme "
                                     f"{other!r} declares it as a {p.kind}: give one of them another key")
        cls.name, cls.title = name, title
        _REGISTRY[name] = cls
        return cls

    return decorate


def unregister(name: str) -> None:
    """Remove a registered scheme (for tests and plugins that register temporarily)."""
    _REGISTRY.pop(name, None)


class _Names(Sequence):
    """The registered names, in registration order; compares equal to the tuple of them."""

    def __getitem__(self, i: Any) -> Any:
        return tuple(_REGISTRY)[i]

    def __len__(self) -> int:
        return len(_REGISTRY)

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(_REGISTRY))

    def __contains__(self, name: object) -> bool:
        return name in _REGISTRY

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, (tuple, list, _Names)) else other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))


#: Names accepted by :func:`scheme_from_name` and the CLI's ``--scheme`` (a live view of the registry).
SCHEME_NAMES: Sequence[str] = _Names()


def scheme_class(name: str) -> type[Scheme]:
    """The class registered as ``name``; ``ValueError`` listing the names otherwise."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"scheme must be one of {', '.join(repr(n) for n in _REGISTRY)}, got {name!r}") from None


def scheme_from_name(name: str, **params: Any) -> Scheme:
    """Build a scheme from its command-line name (one of :data:`SCHEME_NAMES`) and parameters, by key (as on
    the command line: ``ma_form``) or field name (``form``); unset ones take the scheme's own defaults.
    A parameter the scheme does not declare is a ``ValueError`` naming the ones it does."""
    return scheme_class(name).from_params(params)


def scheme_from_dict(d: dict[str, Any]) -> Scheme:
    """The inverse of :meth:`Scheme.to_dict`: ``{"scheme": name, key: value, ...}``."""
    d = dict(d)
    return scheme_from_name(d.pop("scheme", None), **d)


def parameters_by_key() -> dict[str, list[tuple[str, Param]]]:
    """Every declared parameter key of the registered schemes: ``key -> [(scheme name, Param), ...]``."""
    out: dict[str, list[tuple[str, Param]]] = {}
    for name, cls in _REGISTRY.items():
        for key, spec in cls.declared().items():
            out.setdefault(key, []).append((name, spec))
    return out
