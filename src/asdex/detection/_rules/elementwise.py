"""Elementwise primitives: each output element depends on the same element of each operand.

Operands of rank 0 (scalar literals such as the `2.0` in `x * 2.0`) broadcast.
"""

from __future__ import annotations

import numpy as np

from .._abstract import Abstract
from .._deps import Deps, union_aligned
from .._interpreter import outputs_like, register
from ._util import element_ids, union_sources

# Unary primitives with a derivative that is nonzero somewhere: the pattern is diagonal.
_UNARY = """
neg sin cos tan asin acos atan sinh cosh tanh asinh acosh atanh exp exp2 log log1p
expm1 sqrt rsqrt cbrt logistic abs erf erfc erf_inv lgamma digamma bessel_i0e
bessel_i1e real imag conj square reduce_precision copy copy_p convert_element_type
device_put sharding_constraint mesh_cast reshard nondifferentiable_backward name
pvary layout_constraint random_clone nonbatchable nontraceable
""".split()

# N-ary primitives whose derivative may involve every operand.
_NARY = """
add sub add_any max min atan2 pow rem complex clamp igamma igammac igamma_grad_a
random_gamma_grad regularized_incomplete_beta zeta polygamma nextafter random_gamma
""".split()

# Primitives whose JAX derivative is identically zero (or whose outputs are integers):
# sign/floor/ceil/round are piecewise constant, stop_gradient cuts the derivative.
_ZERO_DERIVATIVE = """
sign floor ceil round stop_gradient is_finite eq ne lt le gt ge and or not xor
shift_left shift_right_logical shift_right_arithmetic population_count clz iota
argmax argmin random_bits random_seed random_wrap random_unwrap random_fold_in
random_split threefry2x32 rng_bit_generator bitcast_convert_type unvmap_any
unvmap_all unvmap_max zeros_like platform_index eq_to le_to lt_to mulhi rng_uniform
empty empty2 axis_index unreachable
""".split()


def elementwise(interp, eqn, invals, masks=None):
    """Union over operands; `masks[k]` (bool, output shape) drops operand `k` where False."""
    out_shape = tuple(eqn.outvars[0].aval.shape)
    # Operands with dependencies all of the output's shape (no broadcasting): a
    # row-by-row union, which is the rows themselves for a single such operand.
    if all(v.deps is None or v.shape == out_shape for v in invals):
        return outputs_like(eqn, [_union_of_operands(invals, masks)])
    ids, stacked = element_ids(invals)
    sources = []
    for k, i in enumerate(ids):
        src = np.broadcast_to(i, out_shape)
        if masks is not None and masks[k] is not None:
            src = np.where(masks[k], src, -1)
        sources.append(src)
    return outputs_like(eqn, [union_sources(stacked, sources)])


def _union_of_operands(invals, masks) -> Deps | None:
    """Row `r` is the union of every operand's row `r`: operands of the output's
    shape, where `masks[k]` does not drop operand `k`."""
    parts = []
    for k, v in enumerate(invals):
        if v.deps is None:
            continue
        mask = None if masks is None else masks[k]
        if mask is None:
            parts.append(v.deps)
        elif np.any(mask):
            rows = np.arange(v.size, dtype=np.int64)
            parts.append(v.deps.gather(np.where(np.ravel(mask), rows, -1)))
    return union_aligned(parts) if parts else None


@register(*_UNARY, *_NARY)
def nary(interp, eqn, invals):
    return elementwise(interp, eqn, invals)


@register(*_ZERO_DERIVATIVE)
def zero_derivative(interp, eqn, invals):
    return outputs_like(eqn, [None] * len(eqn.outvars))


@register("integer_pow")
def integer_pow(interp, eqn, invals):
    if eqn.params["y"] == 0:
        return zero_derivative(interp, eqn, invals)
    return elementwise(interp, eqn, invals)


def _nonzero_mask(v: Abstract, shape) -> np.ndarray | None:
    """Where a known operand is nonzero; `None` if unknown (may be nonzero anywhere)."""
    if not v.known:
        return None
    nonzero = v.value != 0
    return None if nonzero.all() else np.broadcast_to(nonzero, shape)


@register("mul")
def mul(interp, eqn, invals):
    # d(a*b)/da = b: an operand contributes nothing where the other is a known zero.
    a, b = invals
    if not (a.known or b.known):
        return elementwise(interp, eqn, invals)
    shape = tuple(eqn.outvars[0].aval.shape)
    return elementwise(
        interp, eqn, invals, masks=[_nonzero_mask(b, shape), _nonzero_mask(a, shape)]
    )


@register("div")
def div(interp, eqn, invals):
    # d(a/b)/db = -a/b²: the divisor contributes nothing where the dividend is known 0.
    a, b = invals
    if not a.known:
        return elementwise(interp, eqn, invals)
    shape = tuple(eqn.outvars[0].aval.shape)
    return elementwise(interp, eqn, invals, masks=[None, _nonzero_mask(a, shape)])


@register("select_n")
def select_n(interp, eqn, invals):
    # The predicate is discrete and contributes no derivative.
    pred, *cases = invals
    out_shape = tuple(eqn.outvars[0].aval.shape)
    if pred.known:
        which = np.broadcast_to(pred.value.astype(np.int64), out_shape)
        ids, stacked = element_ids(cases)
        stacked_ids = np.stack([np.broadcast_to(i, out_shape) for i in ids], axis=0)
        source = np.take_along_axis(stacked_ids, which[None], axis=0)[0]
        return outputs_like(eqn, [None if stacked is None else stacked.gather(source)])
    bounds = pred.bounds()
    if bounds is None:
        return elementwise(interp, eqn, [pred.with_deps(None), *cases])
    # Case `k` can be picked only where the predicate's interval holds `k`.
    lo, hi = (np.broadcast_to(b, out_shape) for b in bounds)
    masks = [(lo <= k) & (k <= hi) for k in range(len(cases))]
    # A predicate outside every case is undefined in XLA: keep all cases there.
    undefined = ~np.any(masks, axis=0)
    masks = [None] + [m | undefined for m in masks]
    return elementwise(interp, eqn, [pred.with_deps(None), *cases], masks=masks)


@register("select_if_vmap")
def select_if_vmap(interp, eqn, invals):
    # Equinox's `select_if_vmap(pred, x, y)` survives in a jaxpr only while `pred` is
    # unbatched (its batching rule turns a batched one into `select_n`), and then its
    # implementation returns `x` unconditionally.
    return outputs_like(eqn, [invals[1].deps])


@register("optimization_barrier", "announce_jaxpr")
def optimization_barrier(interp, eqn, invals):
    return list(invals)
