"""Checking a sparse derivative against dense AD, or against random products."""

from __future__ import annotations

import dataclasses
import functools as ft
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from ._sparse_hessian import SparseHessian
from ._sparse_jacobian import SparseJacobian

# Up to this many entries the check builds the dense derivative.
_DENSE_LIMIT = 2**20


@dataclasses.dataclass(frozen=True)
class CheckReport:
    """The outcome of [`asdex.check_jacobian`][] or [`asdex.check_hessian`][].

    - `method`: `"dense"` (compared with `jax.jacfwd` / `jax.hessian` entry by
      entry) or `"probes"` (compared on random matrix-vector products).
    - `max_error`: the largest absolute difference found.
    - `scale`: the largest absolute value of the reference, for relative errors.
    - `tolerance`: `atol + rtol * scale`.
    - `missing`: with `"dense"`, how many nonzeros of the reference lie outside the
      sparsity pattern (an unsound pattern); `None` with `"probes"`.
    - `passed`: `max_error <= tolerance` (and nothing is missing).
    """

    method: str
    shape: tuple[int, int]
    max_error: float
    scale: float
    tolerance: float
    missing: int | None
    passed: bool

    def __str__(self) -> str:
        m, n = self.shape
        verdict = "passed" if self.passed else "FAILED"
        missing = "" if self.missing is None else f", {self.missing} missing nonzeros"
        return (
            f"{verdict}: {m}×{n}, {self.method}, max error {self.max_error:.3g} "
            f"(tolerance {self.tolerance:.3g}, scale {self.scale:.3g}){missing}"
        )


def _rtol(dtype) -> float:
    return 1e-4 if jnp.finfo(dtype).bits <= 32 else 1e-9


def _setup(derivative, cls, caller, args, kwargs):
    if not isinstance(derivative, cls):
        what = "asdex.jacobian" if cls is SparseJacobian else "asdex.hessian"
        raise TypeError(
            f"`{caller}` checks what `{what}` returns (an "
            f"`asdex.{cls.__name__}`), not {type(derivative).__name__}."
        )
    layout = derivative.layout
    leaves = layout.check_call(args, kwargs)
    primals, others = layout.split_leaves(leaves)
    g = layout.function_of_primals(derivative.fn, others)
    point = layout.ravel_inputs(primals, layout.input_dtype())
    values = derivative.nonzeros(*args, **kwargs)
    return layout, g, point, values


def _report(method, shape, errors, scale, rtol, atol, missing) -> CheckReport:
    max_error = float(np.max(errors, initial=0.0))
    tolerance = atol + rtol * scale
    passed = bool(np.isfinite(max_error) and max_error <= tolerance and not missing)
    return CheckReport(method, shape, max_error, scale, tolerance, missing, passed)


def _dense_compare(pattern, values, reference, shape):
    reference = np.asarray(reference).reshape(shape)
    sparse = np.zeros(shape, dtype=reference.dtype)
    sparse[pattern.rows, pattern.cols] = np.asarray(values)
    inside = pattern.todense()
    missing = int(np.count_nonzero((reference != 0) & ~inside))
    return (
        np.abs(sparse - reference),
        float(np.max(np.abs(reference), initial=0.0)),
        missing,
    )


def _choose(method, shape, caller) -> str:
    if method not in ("auto", "dense", "probes"):
        raise ValueError(
            f"`{caller}(method={method!r})` must be 'auto', 'dense' or 'probes'."
        )
    if method == "auto":
        return "dense" if shape[0] * shape[1] <= _DENSE_LIMIT else "probes"
    return method


def _finish(report: CheckReport, raise_on_failure: bool, caller: str) -> CheckReport:
    if raise_on_failure and not report.passed:
        hint = (
            " The sparsity pattern misses nonzeros of the derivative: if it came "
            "from `*_from_pattern` or `*_from_coloring`, it does not fit `f`."
            if report.missing
            else ""
        )
        raise AssertionError(f"`{caller}`: {report}.{hint}")
    return report


def check_jacobian(
    jac_fn: SparseJacobian,
    *args,
    method: Literal["auto", "dense", "probes"] = "auto",
    rtol: float | None = None,
    atol: float = 0.0,
    num_probes: int = 4,
    seed: int = 0,
    raise_on_failure: bool = True,
    **kwargs,
) -> CheckReport:
    """Check a sparse Jacobian against dense JAX at one point.

    With `method="dense"` the Jacobian is compared entry by entry with
    `jax.jacfwd` of the flattened function, which also finds nonzeros outside the
    sparsity pattern. With `method="probes"` it is compared on `num_probes` random
    products `J @ v` (against `jax.jvp`) and `uᵀ @ J` (against `jax.vjp`), which
    needs no dense matrix. `"auto"` is dense up to 2²⁰ entries.

    **Arguments:**

    - `jac_fn`: what [`asdex.jacobian`][] (or a sibling) returned.
    - `*args`, `**kwargs`: the point, as `jac_fn` is called.
    - `method`: `"auto"`, `"dense"` or `"probes"`.
    - `rtol`, `atol`: passes if `max error <= atol + rtol * max|reference|`;
      `rtol` defaults to `1e-4` in single and `1e-9` in double precision.
    - `num_probes`, `seed`: how many random vectors of each kind, and their seed.
    - `raise_on_failure`: raise an `AssertionError` with the report on failure.

    **Returns:** a [`asdex.CheckReport`][].

    !!! Example

        ```python
        jac_fn = asdex.jacobian(f, x)
        print(asdex.check_jacobian(jac_fn, x))
        # passed: 49×50, dense, max error 0 (tolerance 4.8e-07, scale 4.8e+03), ...
        ```
    """
    caller = "asdex.check_jacobian"
    layout, g, point, values = _setup(jac_fn, SparseJacobian, caller, args, kwargs)
    dtype = layout.jacobian_dtype()
    pattern = jac_fn.coloring.pattern
    m, n = pattern.shape
    rtol = _rtol(dtype) if rtol is None else rtol
    # The reference is the Jacobian that JAX defines (see `_complex.py`):
    # holomorphic for complex inputs and outputs, `jax.jacrev`'s for complex
    # inputs and real outputs, `jax.jacfwd`'s otherwise.
    complex_in = jnp.iscomplexobj(point)
    complex_out = any(
        jnp.issubdtype(a.dtype, jnp.complexfloating) for a in layout.out_avals
    )
    out_dtype = dtype if complex_out or not complex_in else jnp.finfo(dtype).dtype
    jvps_defined = complex_out or not complex_in
    vjps_defined = complex_in or not complex_out

    def h(v):
        return layout.ravel_outputs(g(*layout.unravel_inputs(v))[0], out_dtype)

    method = _choose(method, (m, n), caller)
    if method == "dense":
        if complex_in and complex_out:
            dense = ft.partial(jax.jacfwd, holomorphic=True)
        else:
            dense = jax.jacfwd if jvps_defined else jax.jacrev
        reference = jax.jit(dense(h))(point) if m and n else np.zeros((m, n), dtype)
        errors, scale, missing = _dense_compare(pattern, values, reference, (m, n))
        return _finish(
            _report(method, (m, n), errors, scale, rtol, atol, missing),
            raise_on_failure,
            caller,
        )
    rng = np.random.default_rng(seed)
    V = jnp.asarray(rng.standard_normal((num_probes, n)), point.dtype)
    U = jnp.asarray(rng.standard_normal((num_probes, m)), out_dtype)

    @jax.jit
    def probe(point, values, V, U, rows, cols):
        # Only the products that JAX defines for these dtypes: a VJP of a real
        # function with complex outputs keeps only real parts, and a JVP of one
        # with complex inputs and real outputs is not `jax.jacrev`'s `J v`.
        errors, scale = [], []
        if jvps_defined:
            jv = jax.vmap(lambda v: jax.jvp(h, (point,), (v,))[1])(V)
            sparse_jv = jax.vmap(
                lambda v: jax.ops.segment_sum(
                    values * v[cols].astype(values.dtype), rows, num_segments=m
                )
            )(V)
            errors.append(jnp.abs(jv - sparse_jv).ravel())
            scale.append(jnp.abs(jv).ravel())
        if vjps_defined:
            _, pullback = jax.vjp(h, point)
            ju = jax.vmap(lambda u: pullback(u)[0])(U)
            sparse_ju = jax.vmap(
                lambda u: jax.ops.segment_sum(
                    values * u[rows].astype(values.dtype), cols, num_segments=n
                )
            )(U)
            errors.append(jnp.abs(ju - sparse_ju).ravel())
            scale.append(jnp.abs(ju).ravel())
        errors, scale = jnp.concatenate(errors), jnp.concatenate(scale)
        return jnp.max(errors, initial=0.0), jnp.max(scale, initial=0.0)

    error, scale = probe(point, values, V, U, *_indices(pattern))
    return _finish(
        _report(method, (m, n), np.asarray([error]), float(scale), rtol, atol, None),
        raise_on_failure,
        caller,
    )


def check_hessian(
    hess_fn: SparseHessian,
    *args,
    method: Literal["auto", "dense", "probes"] = "auto",
    rtol: float | None = None,
    atol: float = 0.0,
    num_probes: int = 4,
    seed: int = 0,
    raise_on_failure: bool = True,
    **kwargs,
) -> CheckReport:
    """Check a sparse Hessian against dense JAX at one point.

    With `method="dense"` the Hessian is compared entry by entry with
    `jax.hessian` of the flattened function. With `method="probes"` it is compared
    on `num_probes` random Hessian-vector products (forward-over-reverse). `"auto"`
    is dense up to 2²⁰ entries.

    **Arguments:** as for [`asdex.check_jacobian`][], with `hess_fn` from
    [`asdex.hessian`][] (or a sibling).

    **Returns:** a [`asdex.CheckReport`][].
    """
    caller = "asdex.check_hessian"
    layout, g, point, values = _setup(hess_fn, SparseHessian, caller, args, kwargs)
    dtype = layout.hessian_dtype()
    pattern = hess_fn.coloring.pattern
    n = pattern.shape[0]
    rtol = _rtol(dtype) if rtol is None else rtol

    def h(v):
        out = g(*layout.unravel_inputs(v))[0]
        return jax.tree_util.tree_leaves(out)[0]

    method = _choose(method, (n, n), caller)
    if method == "dense":
        reference = jax.jit(jax.hessian(h))(point) if n else np.zeros((0, 0), dtype)
        errors, scale, missing = _dense_compare(pattern, values, reference, (n, n))
        return _finish(
            _report(method, (n, n), errors, scale, rtol, atol, missing),
            raise_on_failure,
            caller,
        )
    rng = np.random.default_rng(seed)
    V = jnp.asarray(rng.standard_normal((num_probes, n)), dtype)

    @jax.jit
    def probe(point, values, V, rows, cols):
        hv = jax.vmap(lambda v: jax.jvp(jax.grad(h), (point,), (v,))[1])(V)
        sparse_hv = jax.vmap(
            lambda v: jax.ops.segment_sum(values * v[cols], rows, num_segments=n)
        )(V)
        return jnp.max(jnp.abs(hv - sparse_hv), initial=0.0), jnp.max(
            jnp.abs(hv), initial=0.0
        )

    error, scale = probe(point, values, V, *_indices(pattern))
    return _finish(
        _report(method, (n, n), np.asarray([error]), float(scale), rtol, atol, None),
        raise_on_failure,
        caller,
    )


def _indices(pattern):
    return jnp.asarray(pattern.rows), jnp.asarray(pattern.cols)
