"""asdex's caches, and one way to clear them all.

What asdex derives once per pattern or coloring (index arrays, decompression
plans, pattern unions) is kept in `functools.lru_cache`s keyed on the hashable
`SparsityPattern` and `ColoredPattern`: `cached(maxsize)` makes one and
registers it. Caches that are not keyed that way (compiled programs by
structure, sparse factorisations by their exact values, multigrid hierarchies)
register their own `clear` with `on_clear`. `asdex.clear_caches()` empties all
of them, and JAX's own compilation caches too.
"""

from __future__ import annotations

import functools as ft
from collections.abc import Callable
from typing import TypeVar

_F = TypeVar("_F", bound=Callable)
_clears: list[Callable[[], None]] = []


def cached(maxsize: int) -> Callable[[_F], _F]:
    """`functools.lru_cache(maxsize)`, cleared by `asdex.clear_caches()`."""

    def decorate(fn: _F) -> _F:
        wrapped = ft.lru_cache(maxsize=maxsize)(fn)
        _clears.append(wrapped.cache_clear)
        return wrapped  # pyright: ignore[reportReturnType]

    return decorate


def on_clear(clear: Callable[[], None]) -> Callable[[], None]:
    """Register `clear` to be called by `asdex.clear_caches()`."""
    _clears.append(clear)
    return clear


def clear_caches() -> None:
    """Empty every cache that asdex keeps, and JAX's compilation caches.

    asdex keeps, for the most recently used patterns and colorings, what it
    derives from them (index arrays on the device, decompression plans), the
    programs that calls from Python compile, and the last sparse factorisations
    and multigrid hierarchies, so that repeated calls and Newton steps reuse
    them. Each cache is bounded; clear them to release their memory at once (for
    example, between large problems in one process), or to time a first call.
    Results never depend on them.

    !!! Example

        ```python
        asdex.clear_caches()
        ```
    """
    import jax

    for clear in _clears:
        clear()
    jax.clear_caches()
