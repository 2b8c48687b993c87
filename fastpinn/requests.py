"""Derivative requests and their results: the spec ``"u"``, ``"u_x"``, ``"u_tx"`` or a tuple of coordinate names
parsed into a :data:`~fastpinn.ops.mlp_jet.DerivIndex` (:func:`parse_request`), and :class:`Fields`, the mapping from
requests to ``[..., N, out]`` tensors that every derivative method returns and every residual reads.

Request spec: ``"u"`` is the value; ``"u_"`` followed by coordinate names is a derivative when every coordinate name
is a single character (``"u_x"``, ``"u_xx"``, ``"u_tx"``; mixed derivatives are order-insensitive, ``"u_tx" ==
"u_xt"``); a tuple of coordinate names works for any names (``("x",)``, ``("x", "x")``, ``("t", "x")``; ``()`` is
the value).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Optional, Sequence, Union

from torch import Tensor

from fastpinn.ops.mlp_jet import DerivIndex

__all__ = ["Request", "parse_request", "parse_requests", "check_coords", "Fields"]

Request = Union[str, Sequence[str]]


def _allowed_forms(coords: Sequence[str]) -> str:
    single_char = all(len(c) == 1 for c in coords)
    example = coords[-1]
    tuple_forms = f"a tuple of coordinate names such as ({example!r},) or ({example!r}, {example!r}) (() is the value)"
    if single_char:
        mixed = "".join(coords[:2])
        return (
            f"'u' (the value), 'u_' followed by coordinate names from {tuple(coords)} such as "
            f"'u_{example}', 'u_{example}{example}' or 'u_{mixed}', or {tuple_forms}"
        )
    return (
        f"'u' (the value) or {tuple_forms}, with names from {tuple(coords)}; the string form 'u_...' "
        "needs every coordinate name to be a single character"
    )


#: (request, coords) -> DerivIndex for the requests parsed so far: residuals look fields up by name every step
#: (``f["u_xx"]``), and parsing a string each time cost ~10 us a lookup -- most of a tiny problem's step budget.
_PARSED: dict[tuple[Any, tuple[str, ...]], DerivIndex] = {}


def parse_request(request: Request, coords: Sequence[str]) -> DerivIndex:
    """Turn one request into its canonical :data:`DerivIndex` (sorted coordinate indices).

    Raises:
        ValueError: naming the request and the allowed forms when it is not one of them.
    """
    coords = tuple(coords)
    key = (request, coords)
    try:
        return _PARSED[key]
    except KeyError:
        pass
    except TypeError:  # an unhashable spelling (a list): parsed every time
        return _parse_request(request, coords)
    index = _parse_request(request, coords)
    if len(_PARSED) < 4096:  # spellings are few; the bound only guards against a generated stream of them
        _PARSED[key] = index
    return index


def _parse_request(request: Request, coords: tuple[str, ...]) -> DerivIndex:

    def bad(reason: str) -> ValueError:
        return ValueError(f"bad derivative request {request!r}: {reason}; allowed forms: {_allowed_forms(coords)}")

    if isinstance(request, str):
        if request == "u":
            return ()
        if not request.startswith("u_") or len(request) == 2:
            raise bad("a string request must be 'u' or start with 'u_' followed by coordinate names")
        if not all(len(c) == 1 for c in coords):
            raise bad(f"coordinate names {coords} are not all single characters, so the string is ambiguous")
        unknown = [ch for ch in request[2:] if ch not in coords]
        if unknown:
            raise bad(f"unknown coordinate(s) {unknown}")
        return tuple(sorted(coords.index(ch) for ch in request[2:]))
    if isinstance(request, (tuple, list)) and all(isinstance(c, str) for c in request):
        unknown = [c for c in request if c not in coords]
        if unknown:
            raise bad(f"unknown coordinate(s) {unknown}")
        return tuple(sorted(coords.index(c) for c in request))
    raise bad("not a string or a tuple of coordinate names")


def parse_requests(requests: Union[Request, Sequence[Request]], coords: Sequence[str]) -> list[DerivIndex]:
    """Parse one request (a bare string such as ``"u_xx"`` counts as one) or a sequence of them into
    distinct :data:`DerivIndex` values, in order.

    Raises:
        ValueError: for an empty list or any request :func:`parse_request` refuses.
    """
    coords = check_coords(coords)
    if isinstance(requests, str):
        requests = (requests,)
    elif isinstance(requests, tuple) and requests and all(isinstance(r, str) and r in coords for r in requests):
        # ("x", "x") names one derivative by coordinate names, not two requests
        requests = (requests,)
    requests = list(requests)
    if not requests:
        raise ValueError("requests must name at least one field, e.g. ('u', 'u_x')")
    wanted: list[DerivIndex] = []
    for r in requests:
        index = parse_request(r, coords)
        if index not in wanted:
            wanted.append(index)
    return wanted


def _canonical_name(index: DerivIndex, coords: Sequence[str]) -> Union[str, tuple[str, ...]]:
    """``"u"``/``"u_tx"`` when every coordinate name is one character, else a tuple of names."""
    if all(len(c) == 1 for c in coords):
        return "u" if not index else "u_" + "".join(coords[i] for i in index)
    return tuple(coords[i] for i in index)


def check_coords(coords: Sequence[str]) -> tuple[str, ...]:
    """``coords`` as a tuple of distinct identifier names, or a ValueError naming the problem."""
    if isinstance(coords, str):
        raise ValueError(f"coords must be a sequence of names such as ('t', 'x'), got the string {coords!r}")
    coords = tuple(coords)
    if not coords:
        raise ValueError("coords must name at least one input coordinate")
    for c in coords:
        if not isinstance(c, str) or not c.isidentifier():
            raise ValueError(f"every coordinate name must be an identifier string, got {c!r} in {coords}")
    if len(set(coords)) != len(coords):
        raise ValueError(f"coordinate names must be distinct, got {coords}")
    return coords


class Fields(Mapping):
    """The requested value and derivatives at the points, looked up by any request spelling.

    ``f["u"]``, ``f["u_x"]``, ``f["u_tx"] is f["u_xt"]``, ``f[("x", "x")]`` and ``f.u_xx`` all work.
    Each tensor has shape ``[N, *out]`` (``[S, N, *out]`` for an ensemble), the shape of the
    network's output at the points. Iteration yields canonical names (strings when every coordinate
    name is one character, tuples of names otherwise).

    Attributes:
        coords: the coordinate names, in the order of ``x``'s last dimension.
        x: the points the fields were evaluated at.
        coef: a problem's trainable coefficients by name (inverse problems; empty otherwise): a scalar
            tensor for one network, ``[S, 1]`` for an ensemble (broadcasts against ``[S, N]``).
    """

    def __init__(self, values: dict[DerivIndex, Tensor], coords: tuple[str, ...], x: Tensor,
                 coef: Optional[Mapping[str, Tensor]] = None) -> None:
        self._values = values
        self.coords = coords
        self.x = x
        self.coef: Mapping[str, Tensor] = {} if coef is None else coef

    def index(self, key: Request) -> DerivIndex:
        """The canonical :data:`DerivIndex` of a request spelling."""
        return parse_request(key, self.coords)

    def __getitem__(self, key: Request) -> Tensor:
        index = parse_request(key, self.coords)
        try:
            return self._values[index]
        except KeyError:
            raise KeyError(f"{key!r} was not requested; available: {list(self)}") from None

    def __getattr__(self, name: str) -> Tensor:
        # Only called when normal lookup fails; guard private names so copy/pickle don't recurse.
        if name.startswith("_") or "_values" not in self.__dict__:
            raise AttributeError(name)
        try:
            return self[name]
        except (KeyError, ValueError) as err:
            raise AttributeError(str(err)) from None

    def __contains__(self, key: object) -> bool:
        try:
            return parse_request(key, self.coords) in self._values  # type: ignore[arg-type]
        except ValueError:
            return False

    def __iter__(self) -> Iterator[Union[str, tuple[str, ...]]]:
        return (_canonical_name(i, self.coords) for i in self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        shapes = ", ".join(f"{_canonical_name(i, self.coords)!r}: {tuple(v.shape)}" for i, v in self._values.items())
        return f"Fields(coords={self.coords}, {{{shapes}}})"
