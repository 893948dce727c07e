"""Integer value ranges: interval arithmetic for the index computations of a jaxpr.

An index computed from the inputs (an `argmax`, say) is not known, but it is often
confined: `argmax` lies in `[0, axis size)`, and the arithmetic that `jnp` indexing
wraps around it (`lt` + `add` + `select_n` for negative indices, `clamp`, `//`)
keeps it in a range that can be computed. The rules that consume indices
(`dynamic_slice`, `gather`, `scatter`, `select_n`, `cond`) then read only the
positions the index can reach.

Each rule maps the operands' bounds (`Abstract.bounds`: the known value, the
interval, or the dtype's range) to `(lo, hi)` per integer output, or `None` when it
cannot say more than the dtype's range. Sound means: for every input, the value
lies in `[lo, hi]` elementwise. Arithmetic that could wrap around gives `None`.
"""

from __future__ import annotations

import jax
import numpy as np
from jax import lax

from .._abstract import Abstract, dtype_bounds
from .._interpreter import bind_equation, register_range

# Bounds beyond this magnitude are not combined: sums and products of two of them
# stay far inside int64, so the arithmetic below cannot itself overflow.
_SMALL = 2**31


def _out(eqn, k: int = 0):
    return eqn.outvars[k].aval


def _operand_bounds(invals, shape):
    """Each operand's bounds, broadcast to `shape` (scalar literals broadcast)."""
    out = []
    for v in invals:
        b = v.bounds()
        if b is None:
            return None
        out.append(tuple(np.broadcast_to(x, shape) for x in b))
    return out


def _small(*arrays) -> bool:
    return all(a.size == 0 or np.abs(a).max() <= _SMALL for a in arrays)


def _fit(lo, hi, dtype):
    """`(lo, hi)` if the dtype holds it; else the value may have wrapped around."""
    full = dtype_bounds(np.dtype(dtype))
    if full is None or (lo.size and (lo.min() < full[0] or hi.max() > full[1])):
        return None
    return lo, hi


def _arithmetic(fn):
    """An interval rule from `fn(a_bounds, b_bounds, ...) -> (lo, hi)` on small ints."""

    def rule(interp, eqn, invals):
        out = _out(eqn)
        bounds = _operand_bounds(invals, out.shape)
        if bounds is None or not _small(*[x for b in bounds for x in b]):
            return [None]
        lo, hi = fn(*bounds)
        return [_fit(np.asarray(lo), np.asarray(hi), out.dtype)]

    return rule


register_range("add", "add_any")(_arithmetic(lambda a, b: (a[0] + b[0], a[1] + b[1])))
register_range("sub")(_arithmetic(lambda a, b: (a[0] - b[1], a[1] - b[0])))
register_range("neg")(_arithmetic(lambda a: (-a[1], -a[0])))
register_range("max")(
    _arithmetic(lambda a, b: (np.maximum(a[0], b[0]), np.maximum(a[1], b[1])))
)
register_range("min")(
    _arithmetic(lambda a, b: (np.minimum(a[0], b[0]), np.minimum(a[1], b[1])))
)
register_range("sign")(_arithmetic(lambda a: (np.sign(a[0]), np.sign(a[1]))))
register_range("convert_element_type", "copy", "copy_p")(_arithmetic(lambda a: a))


def _corners(op, a, b):
    values = [op(x, y) for x in a for y in b]
    return np.minimum.reduce(values), np.maximum.reduce(values)


register_range("mul")(_arithmetic(lambda a, b: _corners(np.multiply, a, b)))


@register_range("clamp")
def clamp(interp, eqn, invals):
    # clamp(lo, x, hi) = min(max(x, lo), hi), monotone in every operand.
    def fn(mn, x, mx):
        return (
            np.minimum(np.maximum(x[0], mn[0]), mx[0]),
            np.minimum(np.maximum(x[1], mn[1]), mx[1]),
        )

    return _arithmetic(fn)(interp, eqn, invals)


@register_range("abs")
def abs_(interp, eqn, invals):
    def fn(a):
        lo = np.where(a[0] >= 0, a[0], np.where(a[1] <= 0, -a[1], 0))
        return lo, np.maximum(np.abs(a[0]), np.abs(a[1]))

    return _arithmetic(fn)(interp, eqn, invals)


@register_range("integer_pow")
def integer_pow(interp, eqn, invals):
    y = eqn.params["y"]
    if y == 0:
        return [(1, 1)]
    if y < 0:
        return [None]
    out = _out(eqn)
    bounds = _operand_bounds(invals, out.shape)
    if bounds is None:
        return [None]
    (lo, hi) = bounds[0]
    biggest = np.maximum(np.abs(lo), np.abs(hi)).astype(np.float64)
    if biggest.size and biggest.max() ** y >= 2.0**62:
        return [None]
    a, b = lo**y, hi**y
    if y % 2:
        return [_fit(a, b, out.dtype)]
    # An even power is smallest at zero when the interval straddles it.
    straddles = (lo <= 0) & (hi >= 0)
    return [_fit(np.where(straddles, 0, np.minimum(a, b)), np.maximum(a, b), out.dtype)]


def _truncated_quotient(a, b):
    q = np.abs(a) // np.abs(b)
    return np.where((a < 0) != (b < 0), -q, q)


@register_range("div")
def div(interp, eqn, invals):
    # With a divisor of constant sign, `trunc(a / b)` is monotone in each argument
    # over the box, so its extremes are at the corners.
    def fn(a, b):
        return _corners(_truncated_quotient, a, b)

    out = _out(eqn)
    bounds = _operand_bounds(invals, out.shape)
    if bounds is None or not _divisor_has_sign(bounds[1]):
        return [None]
    return _arithmetic(fn)(interp, eqn, invals)


def _divisor_has_sign(b) -> bool:
    return bool(np.all((b[0] > 0) | (b[1] < 0)))


@register_range("rem")
def rem(interp, eqn, invals):
    # `lax.rem` takes the dividend's sign, and |a rem b| < |b|.
    def fn(a, b):
        m = np.maximum(np.abs(b[0]), np.abs(b[1])) - 1
        least = np.minimum(np.abs(b[0]), np.abs(b[1]))
        lo = np.where(a[0] >= 0, 0, np.maximum(a[0], -m))
        hi = np.where(a[1] <= 0, 0, np.minimum(a[1], m))
        # A dividend already smaller than every divisor is its own remainder.
        own = (a[0] >= 0) & (a[1] < least)
        return np.where(own, a[0], lo), np.where(own, a[1], hi)

    out = _out(eqn)
    bounds = _operand_bounds(invals, out.shape)
    if bounds is None or not _divisor_has_sign(bounds[1]):
        return [None]
    return _arithmetic(fn)(interp, eqn, invals)


def _boolean(fn):
    """A comparison: `fn(a, b) -> (always, never)` decides where it is constant."""

    def rule(interp, eqn, invals):
        out = _out(eqn)
        bounds = _operand_bounds(invals, out.shape)
        if bounds is None:
            return [None]
        always, never = fn(*bounds)
        return [(np.where(always, 1, 0), np.where(never, 0, 1))]

    return rule


register_range("lt")(_boolean(lambda a, b: (a[1] < b[0], a[0] >= b[1])))
register_range("le")(_boolean(lambda a, b: (a[1] <= b[0], a[0] > b[1])))
register_range("gt")(_boolean(lambda a, b: (a[0] > b[1], a[1] <= b[0])))
register_range("ge")(_boolean(lambda a, b: (a[0] >= b[1], a[1] < b[0])))
register_range("eq")(
    _boolean(
        lambda a, b: (
            (a[0] == a[1]) & (b[0] == b[1]) & (a[0] == b[0]),
            (a[1] < b[0]) | (b[1] < a[0]),
        )
    )
)
register_range("ne")(
    _boolean(
        lambda a, b: (
            (a[1] < b[0]) | (b[1] < a[0]),
            (a[0] == a[1]) & (b[0] == b[1]) & (a[0] == b[0]),
        )
    )
)


@register_range("and", "or", "not")
def logical(interp, eqn, invals):
    # On booleans these are monotone (`not` antitone); on integers, `and` of two
    # non-negative values is at most the smaller one. Bitwise results say no more.
    out = _out(eqn)
    bounds = _operand_bounds(invals, out.shape)
    if bounds is None:
        return [None]
    name = eqn.primitive.name
    if out.dtype == np.bool_:
        if name == "not":
            return [(1 - bounds[0][1], 1 - bounds[0][0])]
        op = np.minimum if name == "and" else np.maximum
        return [(op(*[b[0] for b in bounds]), op(*[b[1] for b in bounds]))]
    if name == "and" and all(np.all(b[0] >= 0) for b in bounds):
        return [(0, np.minimum(*[b[1] for b in bounds]))]
    return [None]


@register_range("select_n")
def select_n(interp, eqn, invals):
    # The hull of the cases the predicate can pick, element by element.
    out = _out(eqn)
    bounds = _operand_bounds(invals, out.shape)
    if bounds is None:
        return [None]
    (p_lo, p_hi), *cases = bounds
    lo = np.full(out.shape, np.iinfo(np.int64).max)
    hi = np.full(out.shape, np.iinfo(np.int64).min)
    for k, (c_lo, c_hi) in enumerate(cases):
        possible = (p_lo <= k) & (k <= p_hi)
        lo = np.where(possible, np.minimum(lo, c_lo), lo)
        hi = np.where(possible, np.maximum(hi, c_hi), hi)
    if np.any(lo > hi):
        # A predicate out of range for every case: undefined in XLA, so no claim.
        return [None]
    return [(lo, hi)]


@register_range("argmax", "argmin")
def arg_extremum(interp, eqn, invals):
    (axis,) = eqn.params["axes"]
    return [(0, invals[0].shape[axis] - 1)]


@register_range("reduce_max", "reduce_min", "cummax", "cummin")
def monotone_reduction(interp, eqn, invals):
    return _replay(eqn, invals, data=(0,))


# Primitives that only move elements (or take maxima), with the operand positions
# that hold data rather than indices. Replaying them on the lower and on the upper
# bounds gives the bounds of the result, while the index operands are known.
_MOVERS = {
    "reshape": (0,),
    "squeeze": (0,),
    "expand_dims": (0,),
    "broadcast_in_dim": (0,),
    "transpose": (0,),
    "slice": (0,),
    "rev": (0,),
    "tile": (0,),
    "pad": (0, 1),
    "dynamic_slice": (0,),
    "gather": (0,),
    "dynamic_update_slice": (0, 1),
    "scatter": (0, 2),
}


@register_range(*_MOVERS, "concatenate", "split", "stack", "unstack")
def movers(interp, eqn, invals):
    data = _MOVERS.get(eqn.primitive.name, tuple(range(len(invals))))
    return _replay(eqn, invals, data)


def _replay(eqn, invals: list[Abstract], data) -> list:
    if not any(invals[k].known or invals[k].interval is not None for k in data):
        # Moving values about which nothing is known tells nothing either.
        return [None] * len(eqn.outvars)
    bounds = [v.bounds() for v in invals]
    if any(bounds[k] is None for k in data):
        return [None] * len(eqn.outvars)
    if not all(invals[k].known for k in range(len(invals)) if k not in data):
        # An unknown index may pick any element: the hull of all data elements,
        # unless an out-of-bounds read may return the fill value instead.
        if eqn.params.get("mode") == lax.GatherScatterMode.FILL_OR_DROP and (
            eqn.primitive.name == "gather"
        ):
            return [None]
        lo = min(int(bounds[k][0].min()) for k in data if invals[k].size)
        hi = max(int(bounds[k][1].max()) for k in data if invals[k].size)
        return [(lo, hi)] * len(eqn.outvars)

    def run(which):
        args = [
            bounds[k][which].astype(v.dtype) if k in data else v.value
            for k, v in enumerate(invals)
        ]
        with jax.ensure_compile_time_eval():
            outs = bind_equation(eqn, args)
        return [np.asarray(o).astype(np.int64) for o in outs]

    return list(zip(run(0), run(1)))
