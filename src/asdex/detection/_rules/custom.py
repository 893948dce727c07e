"""`custom_jvp` and `custom_vjp`: the pattern follows the custom derivative rule.

The primal of a custom rule may differ from its derivative. A straight-through
estimator computes `round(x)` but declares the identity as its JVP, so its Jacobian
is the identity, not zero. We therefore trace the rule itself:

- `custom_jvp`: trace `jax.jvp` of the call. Tangent inputs carry the operands'
  dependency sets (the tangent of a value has the same dependencies as the value),
  primal inputs carry none; the tangent outputs' sets are the answer.
- `custom_vjp`: trace `jax.vjp` of the call and run the cotangent map on one
  local id per output element. The input cotangents' sets are the transposed local
  pattern, which we compose with the operands' sets.
- `custom_lin`: what `jax.linearize` (or a JVP trace) leaves of a `custom_vjp`
  call: the linear map `t ↦ L(res) t` whose transpose is the rule's `bwd(res, ·)`.
  Its pattern is again the transposed local pattern of `bwd`, composed with the
  tangents' sets, plus what `L(res)` reads of the residuals.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.extend import core as jex_core

from .._abstract import Abstract, is_differentiable_dtype
from .._deps import Deps, transpose, vstack
from .._interpreter import (
    Interpreter,
    all_to_all,
    bind_equation,
    outputs_like,
    register,
)
from ._util import element_ids


def _eqn_function(eqn):
    """The equation as a Python function of its non-literal operands."""
    literals = {
        k: v.val for k, v in enumerate(eqn.invars) if isinstance(v, jex_core.Literal)
    }

    def fun(*operands):
        it = iter(operands)
        args = [
            literals[k] if k in literals else next(it) for k in range(len(eqn.invars))
        ]
        return bind_equation(eqn, args)

    return fun


def _operands(eqn, invals):
    return [
        v for var, v in zip(eqn.invars, invals) if not isinstance(var, jex_core.Literal)
    ]


def _sds(v: Abstract):
    return jax.ShapeDtypeStruct(v.shape, v.dtype)


def _split(vals, diff):
    return [v for v, d in zip(vals, diff) if d], [
        v for v, d in zip(vals, diff) if not d
    ]


def _merge(diff_vals, other_vals, diff):
    a, b = iter(diff_vals), iter(other_vals)
    return [next(a) if d else next(b) for d in diff]


def _jvp_jaxpr(eqn, operands):
    fun = _eqn_function(eqn)
    diff = [is_differentiable_dtype(v.dtype) for v in operands]

    def jvp(diff_primals, other, tangents):
        def f(*dp):
            return fun(*_merge(dp, other, diff))

        return jax.jvp(f, tuple(diff_primals), tuple(tangents))[1]

    dp, other = _split([_sds(v) for v in operands], diff)
    return jax.make_jaxpr(jvp)(dp, other, dp), diff


def _rule_name(eqn) -> str:
    fun = eqn.params.get("jvp_jaxpr_fun") or eqn.params.get("jvp_jaxpr_thunk")
    info = getattr(fun, "debug_info", None)
    return getattr(info, "func_name", None) or repr(fun)


@register("custom_jvp_call", "custom_jvp_call_jaxpr")
def custom_jvp_call(interp: Interpreter, eqn, invals):
    # A rule that calls its own function on the tangent (`jvp(f)(x, t) = f(t)`, as
    # for linear functions like Lineax's `_asarray`) would unfold forever. Inside its
    # own rule the call is evaluated, not differentiated, so its primal is the map.
    name = _rule_name(eqn)
    expanding = interp.cached("expanding custom rules", set)
    if name in expanding:
        closed = eqn.params.get("call_jaxpr") or eqn.params["fun_jaxpr"]
        return interp.run_closed(closed, invals)
    expanding.add(name)
    try:
        return _custom_jvp_call(interp, eqn, invals)
    finally:
        expanding.discard(name)


def _custom_jvp_call(interp: Interpreter, eqn, invals):
    operands = _operands(eqn, invals)
    try:
        closed, diff = interp.cached(
            ("jvp", id(eqn)), lambda: _jvp_jaxpr(eqn, operands)
        )
    except Exception:  # noqa: BLE001 - fall back to the sound dense answer
        interp.warn_unknown(f"{eqn.primitive.name} (its JVP rule could not be traced)")
        return all_to_all(interp, eqn, invals)
    diff_ops, other_ops = _split(operands, diff)
    primals = [Abstract(v.shape, v.dtype, None, v.value) for v in diff_ops]
    others = [Abstract(v.shape, v.dtype, None, v.value) for v in other_ops]
    tangents = [Abstract(v.shape, v.dtype, v.deps) for v in diff_ops]
    outs = interp.run_closed(closed, primals + others + tangents)
    outs = outputs_like(eqn, [o.deps for o in outs])
    return _with_primal_values(interp, eqn, invals, outs)


def _with_primal_values(interp: Interpreter, eqn, invals, outs):
    """Integer outputs (a permutation, an index) carry no tangent, but their values
    or intervals decide later gathers: take them from the primal computation."""
    if all(
        is_differentiable_dtype(o.dtype) or not interp.is_needed(var)
        for o, var in zip(outs, eqn.outvars)
    ):
        # Walking the primal can cost as much as the rule itself (a solver's loop
        # returning a step count): only when an integer output is read later.
        return outs
    closed = eqn.params.get("call_jaxpr") or eqn.params.get("fun_jaxpr")
    if closed is None:
        return outs
    primal = interp.run_closed(closed, invals)
    return [o if is_differentiable_dtype(o.dtype) else p for o, p in zip(outs, primal)]


def _vjp_jaxpr(eqn, operands):
    fun = _eqn_function(eqn)
    diff = [is_differentiable_dtype(v.dtype) for v in operands]
    out_avals = [v.aval for v in eqn.outvars]

    def vjp(diff_primals, other, cts):
        def f(*dp):
            return fun(*_merge(dp, other, diff))

        _, pullback = jax.vjp(f, *diff_primals)
        return pullback(list(cts))

    dp, other = _split([_sds(v) for v in operands], diff)
    cts = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in out_avals]
    return jax.make_jaxpr(vjp)(dp, other, cts), diff


@register("custom_vjp_call", "custom_vjp_call_jaxpr")
def custom_vjp_call(interp: Interpreter, eqn, invals):
    operands = _operands(eqn, invals)
    try:
        closed, diff = interp.cached(
            ("vjp", id(eqn)), lambda: _vjp_jaxpr(eqn, operands)
        )
    except Exception:  # noqa: BLE001 - fall back to the sound dense answer
        interp.warn_unknown(f"{eqn.primitive.name} (its VJP rule could not be traced)")
        return all_to_all(interp, eqn, invals)
    diff_ops, other_ops = _split(operands, diff)
    out_sizes = [int(np.prod(v.aval.shape, dtype=np.int64)) for v in eqn.outvars]
    m_local = int(sum(out_sizes))
    # Local problem: which output elements does each input cotangent element read?
    local = Interpreter(m_local, parent=interp)
    cts, offset = [], 0
    for var, size in zip(eqn.outvars, out_sizes):
        deps = Deps.identity(size, offset, m_local)
        cts.append(Abstract(var.aval.shape, var.aval.dtype, deps))
        offset += size
    primals = [Abstract(v.shape, v.dtype, None, v.value) for v in diff_ops]
    others = [Abstract(v.shape, v.dtype, None, v.value) for v in other_ops]
    in_cts = local.run_closed(closed, primals + others + cts)
    # Stack the operands' local rows; transpose to "output element -> operand elements".
    ids, stacked = element_ids(diff_ops)
    if stacked is None:
        return outputs_like(eqn, [None] * len(eqn.outvars))
    rows = []
    for ct, v in zip(in_cts, diff_ops):
        rows.append(ct.deps if ct.deps is not None else Deps.empty(v.size, m_local))
    local_t = transpose(vstack(rows), m_local, stacked.size)
    # `local_t` rows index outputs, its entries index operand elements in stacked order
    # over *all* differentiable operands; map those to rows of `stacked`.
    all_ids = np.concatenate([i.reshape(-1) for i in ids])
    mapped = all_ids[local_t.indices.astype(np.int64)]
    deps_all = stacked.compose(local_t.indptr, mapped)
    outs, start = [], 0
    for size in out_sizes:
        outs.append(deps_all.gather(np.arange(start, start + size)))
        start += size
    return _with_primal_values(interp, eqn, invals, outputs_like(eqn, outs))


def _lin_jaxpr(eqn, res, tangents):
    """The jaxpr of `(res, cts) -> nonzero tangent cotangents` of a `custom_lin`."""
    bwd = eqn.params["bwd"]
    in_zeros = eqn.params["in_zeros"]
    out_avals = eqn.params["out_avals"]

    def transpose_map(res, cts):
        cts_in = list(bwd.call_wrapped(*res, *cts))
        nonzero = [c for c, z in zip(cts_in, in_zeros) if not z]
        # A rule may return `None` (or a symbolic zero) for an input it ignores.
        return [
            c if isinstance(c, jax.Array) else jnp.zeros(t.shape, t.dtype)
            for c, t in zip(nonzero, tangents)
        ]

    cts = [jax.ShapeDtypeStruct(a.shape, a.dtype) for a in out_avals]
    return jax.make_jaxpr(transpose_map)([_sds(v) for v in res], cts)


def _union(a: Deps, b: Deps) -> Deps:
    """Row by row union of two `Deps` of the same size."""
    size = a.size
    pairs = np.stack([np.arange(size), size + np.arange(size)], axis=1)
    return vstack([a, b]).compose(
        np.arange(0, 2 * size + 1, 2, dtype=np.int64), pairs.reshape(-1)
    )


@register("custom_lin")
def custom_lin(interp: Interpreter, eqn, invals):
    """`t ↦ L(res) t`, whose transpose `bwd(res, ·)` the `custom_vjp` rule defines.

    `out_k = Σ_i L_ki(res) t_i` depends on the tangent elements `t_i` with `L_ki`
    structurally nonzero (the transpose of `bwd`'s local pattern, as for
    `custom_vjp_call`), and on the residual elements those `L_ki` read. Running
    `bwd` with residuals carrying their sets and cotangents carrying none gives,
    for each `i`, the residual elements read by any `L_ki`; a superset for each
    `k`, so sound.
    """
    num_res = eqn.params["num_res"]
    res, tangents = invals[:num_res], invals[num_res:]
    try:
        closed = interp.cached(("lin", id(eqn)), lambda: _lin_jaxpr(eqn, res, tangents))
    except Exception:  # noqa: BLE001 - fall back to the sound dense answer
        interp.warn_unknown("custom_lin (its VJP rule could not be traced)")
        return all_to_all(interp, eqn, invals)
    out_avals = [var.aval for var in eqn.outvars]
    out_sizes = [int(np.prod(a.shape, dtype=np.int64)) for a in out_avals]
    m_local = int(sum(out_sizes))
    total = int(sum(t.size for t in tangents))
    # Local problem: which output elements does each tangent cotangent read?
    local = Interpreter(m_local, parent=interp)
    cts, offset = [], 0
    for a, size in zip(out_avals, out_sizes):
        cts.append(Abstract(a.shape, a.dtype, Deps.identity(size, offset, m_local)))
        offset += size
    constant_res = [Abstract(v.shape, v.dtype, None, v.value) for v in res]
    in_cts = local.run_closed(closed, constant_res + cts)
    rows = [
        ct.deps if ct.deps is not None else Deps.empty(t.size, m_local)
        for ct, t in zip(in_cts, tangents)
    ]
    if not rows:
        return outputs_like(eqn, [None] * len(eqn.outvars))
    # Output element -> tangent elements, in the stacked order of `tangents`.
    local_t = transpose(vstack(rows), m_local, total)
    ids, stacked = element_ids(tangents)
    all_ids = np.concatenate([i.reshape(-1) for i in ids])
    deps = None
    if stacked is not None:
        mapped = all_ids[local_t.indices.astype(np.int64)]
        deps = stacked.compose(local_t.indptr, mapped)
    # What the map reads of the residuals, per tangent element, then per output.
    if any(v.deps is not None for v in res):
        blank = [Abstract(a.shape, a.dtype, None) for a in out_avals]
        via_res = interp.run_closed(closed, list(res) + blank)
        res_rows = [
            ct.deps if ct.deps is not None else Deps.empty(t.size, interp.n_inputs)
            for ct, t in zip(via_res, tangents)
        ]
        from_res = vstack(res_rows).compose(
            local_t.indptr, local_t.indices.astype(np.int64)
        )
        deps = from_res if deps is None else _union(deps, from_res)
    if deps is None:
        return outputs_like(eqn, [None] * len(eqn.outvars))
    outs, start = [], 0
    for size in out_sizes:
        outs.append(deps.gather(np.arange(start, start + size)))
        start += size
    return outputs_like(eqn, outs)
