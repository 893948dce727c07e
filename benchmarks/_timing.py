"""How every benchmark times: one call, the best of several, and several in turns.

Each call is timed until its result is ready (`jax.block_until_ready` on every
leaf; numpy and scipy results are ready when returned). The best of several calls
is reported, not the mean: on a shared machine the load only ever adds time.
Functions compared with each other are called in turns (`best_in_turns`), so that
a burst of load falls on all of them alike.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable, Mapping

import jax


def ready(out) -> None:
    """Wait until every JAX array in `out` is computed."""
    jax.block_until_ready(jax.tree_util.tree_leaves(out))


def timed(fn: Callable[[], object]) -> tuple[float, object]:
    """`(seconds, fn())`, the result waited for."""
    start = time.perf_counter()
    out = fn()
    ready(out)
    return time.perf_counter() - start, out


def best_of(
    fn: Callable, repeats: int, *, warm: bool = False, vary: bool = False
) -> float:
    """The best of `repeats` timed calls of `fn()`.

    `warm=True` calls it once first (to compile it), untimed. `vary=True` calls
    `fn(k)` with a new `k` each time, for inputs that change from call to call
    (so that no cache of a factorisation, say, is hit): `0` for the warm call,
    and each repeat's index from `1` on.
    """
    return best_in_turns({"fn": fn}, repeats, warm=warm, vary=vary)["fn"]


def best_in_turns(
    fns: Mapping[str, Callable], repeats: int, *, warm: bool = False, vary: bool = False
) -> dict[str, float]:
    """The best of `repeats` timed calls of each function, taking turns (`warm`
    and `vary` as for `best_of`)."""
    if warm:
        for fn in fns.values():
            ready(fn(0) if vary else fn())
    gc.collect()
    best = dict.fromkeys(fns, math.inf)
    for k in range(1, repeats + 1):
        for name, fn in fns.items():
            call = (lambda fn=fn, k=k: fn(k)) if vary else fn
            best[name] = min(best[name], timed(call)[0])
    return best
