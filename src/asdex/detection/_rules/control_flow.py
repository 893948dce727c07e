"""Calls, `cond`, `while` and `scan`.

Loops are unrolled exactly while that is affordable and their control is known
(a `fori_loop` with constant bounds, a `scan`): detection then sees each iteration's
own indices and constants. Otherwise they iterate to a fixed point, joining the
abstract states; dependency sets only grow, so that terminates and is sound.
"""

from __future__ import annotations

import itertools

import numpy as np

from .._abstract import Abstract, join
from .._deps import Deps, row_slice, vstack
from .._interpreter import register, union_of_all
from ._util import MAX_ENUMERATED_CASES

# Exact unrolling stops after this many iterations; the rest is a fixed point.
MAX_UNROLLED_ITERATIONS = 20_000
# A fixed point that has not settled after this many rounds is widened to the top.
MAX_FIXED_POINT_ROUNDS = 2_000


@register("debug_callback", "debug_print", "inspect_sharding")
def effect_only(interp, eqn, invals):
    return []


@register("jit", "pjit", "closed_call", "composite")
def call_closed(interp, eqn, invals):
    closed = eqn.params.get("jaxpr") or eqn.params["call_jaxpr"]
    cases = _value_cases(invals)
    if cases is not None:
        return _join_all([interp.run_closed(closed, case) for case in cases])
    return interp.run_closed(closed, invals)


def _value_cases(invals: list[Abstract]) -> list[list[Abstract]] | None:
    """Every combination of values that small integer intervals allow, or `None`.

    Intervals forget how values are related: in `jnp.floor_divide(i, 2)` (a `jit`
    of `div`, `sign`, `rem` and `select_n`), the sign test and the remainder test
    are never both true for `i >= 0`, but their intervals cannot tell. Walking the
    call once per combination of its inputs' values, with everything known, and
    joining the results gives the exact hull instead.
    """
    unknown = [k for k, v in enumerate(invals) if not v.known]
    if not unknown or any(
        invals[k].interval is None or invals[k].deps is not None for k in unknown
    ):
        return None
    count = 1.0
    for k in unknown:
        lo, hi = invals[k].interval
        with np.errstate(over="ignore"):  # wide intervals: inf cases, not a warning
            count *= float(np.prod(hi.astype(np.float64) - lo + 1))
        if count > MAX_ENUMERATED_CASES:
            return None
    choices = []
    for k in unknown:
        v = invals[k]
        lo, hi = (b.reshape(-1) for b in v.interval)
        per_element = [range(int(a), int(b) + 1) for a, b in zip(lo, hi)]
        choices.append(
            [
                Abstract.constant(np.array(c, dtype=v.dtype).reshape(v.shape))
                for c in itertools.product(*per_element)
            ]
        )
    cases = []
    for combo in itertools.product(*choices):
        case = list(invals)
        for k, value in zip(unknown, combo):
            case[k] = value
        cases.append(case)
    return cases


@register("core_call", "remat", "checkpoint", "remat2")
def call_open(interp, eqn, invals):
    jaxpr = eqn.params.get("jaxpr") or eqn.params["call_jaxpr"]
    if hasattr(jaxpr, "consts"):
        return interp.run_closed(jaxpr, invals)
    return interp.run(jaxpr, [], invals)


@register("cond")
def cond(interp, eqn, invals):
    index, *operands = invals
    branches = eqn.params["branches"]
    # lax.switch clamps its index into range; only the branches it reaches count.
    bounds = index.bounds()
    lo, hi = (0, len(branches) - 1) if bounds is None else map(int, bounds)
    lo, hi = (int(np.clip(k, 0, len(branches) - 1)) for k in (lo, hi))
    return _join_all([interp.run_closed(b, operands) for b in branches[lo : hi + 1]])


def _join_all(results: list[list[Abstract]]) -> list[Abstract]:
    """Join the outputs of several walks, output by output."""
    joined = []
    for vals in zip(*results):
        out = vals[0]
        for v in vals[1:]:
            out = join(out, v)
        joined.append(out)
    return joined


def _join_lists(a, b):
    # Loops widen: an interval that changes between rounds is dropped at once.
    return [join(x, y, widen=True) for x, y in zip(a, b)]


def _same(a, b) -> bool:
    return all(x.same_as(y) for x, y in zip(a, b))


def _same_deps(a, b) -> bool:
    return all(
        (x.deps is None and y.deps is None)
        or (x.deps is not None and y.deps is not None and x.deps.equals(y.deps))
        for x, y in zip(a, b)
    )


def _settle(step, old, new):
    """A fixed point reached early, or `None`.

    Once an iteration leaves the dependency sets unchanged, forget the known values
    that changed (a loop counter, say) and check that one more abstract iteration
    changes nothing. Then that state covers every later iteration, so the loop can
    stop. Without this, a 1,000-step `fori_loop` would be walked 1,000 times.
    """
    if not _same_deps(old, new):
        return None
    widened = _join_lists(old, new)
    if _same(_join_lists(widened, step(widened)), widened):
        return widened
    return None


def _top(carry: list[Abstract], extra: list[Abstract]) -> list[Abstract]:
    """Widening: every carry element may depend on everything any of them depends on."""
    everything = union_of_all(carry + extra)
    if everything is None:
        return [Abstract(v.shape, v.dtype) for v in carry]
    return [
        Abstract(v.shape, v.dtype, everything.gather(np.zeros(v.size, dtype=np.int64)))
        for v in carry
    ]


@register("while")
def while_loop(interp, eqn, invals):
    p = eqn.params
    cond_consts = invals[: p["cond_nconsts"]]
    body_consts = invals[p["cond_nconsts"] : p["cond_nconsts"] + p["body_nconsts"]]
    carry = list(invals[p["cond_nconsts"] + p["body_nconsts"] :])
    cond_jaxpr, body_jaxpr = p["cond_jaxpr"], p["body_jaxpr"]

    def step(c):
        return interp.run_closed(body_jaxpr, body_consts + c)

    for _ in range(MAX_UNROLLED_ITERATIONS):
        (go,) = interp.run_closed(cond_jaxpr, cond_consts + carry)
        if not go.known:
            break
        if not bool(go.value):
            return carry
        new_carry = step(carry)
        settled = _settle(step, carry, new_carry)
        if settled is not None:
            return settled
        carry = new_carry
    return _fixed_point(step, carry, body_consts)


def _fixed_point(step, state, extra):
    for _ in range(MAX_FIXED_POINT_ROUNDS):
        new = _join_lists(state, step(state))
        if _same(new, state):
            return state
        state = new
    return _top(state, extra)


def _slice_leading(v: Abstract, i: int) -> Abstract:
    """Element `i` along the leading axis."""
    shape = v.shape[1:]
    n = int(np.prod(shape, dtype=np.int64))
    if v.known:
        return Abstract.constant(v.value[i])
    deps = None if v.deps is None else row_slice(v.deps, i * n, (i + 1) * n)
    return Abstract(shape, v.dtype, deps)


def _summary(v: Abstract) -> Abstract:
    """One abstract slice covering every slice along the leading axis."""
    shape = v.shape[1:]
    n = int(np.prod(shape, dtype=np.int64))
    if v.deps is None:
        return Abstract(shape, v.dtype)
    target = np.tile(np.arange(n), v.shape[0])
    return Abstract(shape, v.dtype, v.deps.group_union(target, n))


def _stack(slices: list[Abstract], shape, dtype) -> Abstract:
    if all(s.known for s in slices):
        return Abstract.constant(np.stack([s.value for s in slices]).astype(dtype))
    if all(s.deps is None for s in slices):
        return Abstract(shape, dtype)
    n_inputs = next(s.deps.n_inputs for s in slices if s.deps is not None)
    parts = [
        s.deps if s.deps is not None else Deps.empty(s.size, n_inputs) for s in slices
    ]
    return Abstract(shape, dtype, vstack(parts))


@register("scan")
def scan(interp, eqn, invals):
    p = eqn.params
    n_consts, n_carry, length = p["num_consts"], p["num_carry"], p["length"]
    consts = list(invals[:n_consts])
    carry = list(invals[n_consts : n_consts + n_carry])
    xs = list(invals[n_consts + n_carry :])
    body = p["jaxpr"]
    y_avals = [v.aval for v in eqn.outvars[n_carry:]]
    order = range(length - 1, -1, -1) if p["reverse"] else range(length)
    ys: list[list[Abstract] | None] = [None] * length
    # Slices of xs that carry neither deps nor known values are all alike, so once
    # the carry stops changing every later iteration repeats the last one.
    xs_uniform = all(not x.known and x.deps is None for x in xs)
    steps = list(order)
    # Slices that carry values but no deps can be summarised once the carry settles.
    xs_deps_free = all(x.deps is None for x in xs)
    x_summary = [_summary(x) for x in xs]

    def step(c):
        return interp.run_closed(body, consts + c + x_summary)[:n_carry]

    def cover_remaining(state, remaining):
        # `state` covers every later carry, so one abstract step covers their ys.
        y_rest = interp.run_closed(body, consts + state + x_summary)[n_carry:]
        for j in remaining:
            ys[j] = y_rest

    for count, i in enumerate(steps):
        if count >= MAX_UNROLLED_ITERATIONS:
            carry = _fixed_point(step, carry, consts)
            cover_remaining(carry, steps[count:])
            break
        out = interp.run_closed(
            body, consts + carry + [_slice_leading(x, i) for x in xs]
        )
        new_carry, y = out[:n_carry], out[n_carry:]
        ys[i] = y
        if xs_uniform and _same(new_carry, carry):
            for j in steps[count + 1 :]:
                ys[j] = y
            break
        settled = (
            _settle(step, carry, new_carry)
            if xs_deps_free and count + 1 < length
            else None
        )
        if settled is not None:
            carry = settled
            cover_remaining(carry, steps[count + 1 :])
            break
        carry = new_carry
    return carry + [
        _stack([ys[i][k] for i in range(length)], aval.shape, aval.dtype)
        for k, aval in enumerate(y_avals)
    ]


@register("custom_vmap_call")
def custom_vmap_call(interp, eqn, invals):
    # Unbatched, a custom_vmap function is its `call` jaxpr.
    return interp.run_closed(eqn.params["call"], invals)


@register("custom_linear_solve")
def custom_linear_solve(interp, eqn, invals):
    """`x = A⁻¹ b`, with `A` given by a matvec jaxpr and `A⁻¹` by a solve jaxpr.

    Follows JAX's own derivative rule, `ẋ = solve(ḃ − matvec_ẋ(x))`, in which only
    `b` and the matvec's constants are differentiated: run the matvec on an unknown
    `x` to find which constants reach each component, add `b`'s sets, and push the
    result through the solve jaxpr with its own constants held fixed.
    """
    lengths = eqn.params["const_lengths"]
    jaxprs = eqn.params["jaxprs"]
    n_mv, n_vm, n_s = lengths.matvec, lengths.vecmat, lengths.solve
    matvec_consts = list(invals[:n_mv])
    solve_consts = invals[n_mv + n_vm : n_mv + n_vm + n_s]
    b = list(invals[n_mv + n_vm + n_s + lengths.transpose_solve :])
    unknown_x = [Abstract(v.shape, v.dtype) for v in b]
    from_matrix = interp.run_closed(jaxprs.matvec, matvec_consts + unknown_x)
    rhs = [
        join(Abstract(v.shape, v.dtype, v.deps), Abstract(v.shape, v.dtype, m.deps))
        for v, m in zip(b, from_matrix)
    ]
    fixed = [Abstract(v.shape, v.dtype, None, v.value) for v in solve_consts]
    return interp.run_closed(jaxprs.solve, fixed + rhs)
