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

    Every entry is judged against a scale of its own: the largest absolute value
    of the reference in its row and in its column. A product-based method (JVPs,
    VJPs, HVPs, and dense `jax.jacfwd` or `jax.hessian` too) computes an entry
    from products whose rounding errors are relative to those magnitudes, so
    that is the accuracy it can promise; a scale taken from the whole matrix
    would let an entry of a small row be wrong by 100% while the largest entry
    elsewhere is large.

    - `method`: `"dense"` (compared with `jax.jacfwd` / `jax.hessian` entry by
      entry) or `"probes"` (compared on random matrix-vector products, each
      product entry against the sum of its terms' scales, `S @ |v|` for a row
      or `|u| @ S` for a column, `S` holding each nonzero's scale).
    - `max_error`: the largest absolute difference found.
    - `scale`: the scale of the worst entry (the one with the largest ratio of
      error to tolerance).
    - `tolerance`: `atol + rtol * scale` of that entry.
    - `missing`: with `"dense"`, how many nonzeros of the reference lie outside the
      sparsity pattern (an unsound pattern); `None` with `"probes"`.
    - `passed`: every entry's error within its own tolerance (and nothing is
      missing).
    - `worst_error`: the error of the worst entry.
    - `worst`: with `"dense"`, `(row, column)` of the worst entry; `None` with
      `"probes"` or without entries.
    """

    method: str
    shape: tuple[int, int]
    max_error: float
    scale: float
    tolerance: float
    missing: int | None
    passed: bool
    worst_error: float = 0.0
    worst: tuple[int, int] | None = None

    def __str__(self) -> str:
        m, n = self.shape
        verdict = "passed" if self.passed else "FAILED"
        missing = "" if self.missing is None else f", {self.missing} missing nonzeros"
        at = "" if self.worst is None else f" at {self.worst}"
        return (
            f"{verdict}: {m}×{n}, {self.method}, max error {self.max_error:.3g}; "
            f"worst entry{at}: error {self.worst_error:.3g} (tolerance "
            f"{self.tolerance:.3g}, scale {self.scale:.3g}){missing}"
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
    layout, samples = derivative.layout, derivative.samples
    leaves = samples.check_call(args, kwargs)
    primals, others = samples.split_leaves(leaves)
    g = samples.function_of_primals(derivative.fn, others)
    point = layout.ravel_inputs(primals, layout.input_dtype())
    values = derivative.nonzeros(*args, **kwargs)
    return layout, g, point, values


def _report(method, shape, errors, scales, rtol, atol, missing) -> CheckReport:
    """Judge each error against its own tolerance `atol + rtol * scale`."""
    errors = np.asarray(errors, dtype=np.float64).ravel()
    scales = np.asarray(scales, dtype=np.float64).ravel()
    tolerances = atol + rtol * scales
    if errors.size == 0:
        passed = not missing
        return CheckReport(method, shape, 0.0, 0.0, atol, missing, passed)
    max_error = float(np.max(errors))
    # NaN errors (a NaN where the reference is finite, or the reverse) rank first.
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(np.isnan(errors), np.inf, errors / tolerances)
    ratio = np.where(np.isnan(ratio), 0.0, ratio)  # 0 / 0: exact where both vanish
    k = int(np.argmax(ratio))
    within = (errors <= tolerances) & np.isfinite(errors)
    passed = bool(np.all(within) and not missing)
    worst = None
    if method == "dense":
        worst = tuple(int(i) for i in np.unravel_index(k, shape))
    return CheckReport(
        method,
        shape,
        max_error,
        float(scales[k]),
        float(tolerances[k]),
        missing,
        passed,
        float(errors[k]),
        worst,
    )


def _dense_compare(pattern, values, reference, shape):
    """Errors, per-entry scales and missing nonzeros against a dense reference.

    An entry's scale is the largest `|reference|` in its row and in its column.
    """
    reference = np.asarray(reference).reshape(shape)
    sparse = np.zeros(shape, dtype=reference.dtype)
    sparse[pattern.rows, pattern.cols] = np.asarray(values)
    inside = pattern.todense()
    missing = int(np.count_nonzero((reference != 0) & ~inside))
    magnitude = np.abs(reference)
    row = np.max(magnitude, axis=1, initial=0.0)
    col = np.max(magnitude, axis=0, initial=0.0)
    scales = np.maximum(row[:, None], col[None, :])
    return np.abs(sparse - reference), scales, missing


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
    - `rtol`, `atol`: passes if every entry's error is at most `atol + rtol *
      scale`, with `scale` the largest `|reference|` in the entry's row and
      column (see [`asdex.CheckReport`][]); `rtol` defaults to `1e-4` in single
      and `1e-9` in double precision.
    - `num_probes`, `seed`: how many random vectors of each kind, and their seed.
    - `raise_on_failure`: raise an `AssertionError` with the report on failure.

    **Returns:** a [`asdex.CheckReport`][].

    !!! Example

        ```python
        jac_fn = asdex.jacobian(f, x)
        print(asdex.check_jacobian(jac_fn, x))
        # passed: 49×50, dense, max error 0; worst entry at (0, 0): error 0 (...)
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
        errors, scales, missing = _dense_compare(pattern, values, reference, (m, n))
        return _finish(
            _report(method, (m, n), errors, scales, rtol, atol, missing),
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
        # with complex inputs and real outputs is not `jax.jacrev`'s `J v`. Each
        # product entry is judged against the scales of the entries it sums (as
        # `"dense"` judges them): `S @ |v|` for a row, `|u| @ S` for a column.
        scale = _entry_scales(values, rows, cols, m, n)
        errors, scales = [], []

        def compare(exact, vectors, gather, scatter, size):
            # `exact` (products by AD) against the sparse matrix's products.
            def sparse(weights, w):
                terms = weights * w[gather].astype(weights.dtype)
                return jax.ops.segment_sum(terms, scatter, num_segments=size)

            approx = jax.vmap(ft.partial(sparse, values))(vectors)
            bound = jax.vmap(lambda w: sparse(scale, jnp.abs(w)))(vectors)
            errors.append(jnp.abs(exact - approx).ravel())
            scales.append(jnp.maximum(bound, jnp.abs(exact)).ravel())

        if jvps_defined:
            jv = jax.vmap(lambda v: jax.jvp(h, (point,), (v,))[1])(V)
            compare(jv, V, cols, rows, m)
        if vjps_defined:
            _, pullback = jax.vjp(h, point)
            ju = jax.vmap(lambda u: pullback(u)[0])(U)
            compare(ju, U, rows, cols, n)
        return jnp.concatenate(errors), jnp.concatenate(scales)

    errors, scales = probe(point, values, V, U, *_indices(pattern))
    return _finish(
        _report(method, (m, n), errors, scales, rtol, atol, None),
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
        errors, scales, missing = _dense_compare(pattern, values, reference, (n, n))
        return _finish(
            _report(method, (n, n), errors, scales, rtol, atol, missing),
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
        # Each product entry against the scales of the entries it sums, `S @ |v|`.
        scale = _entry_scales(values, rows, cols, n, n)
        scale_hv = jax.vmap(
            lambda v: jax.ops.segment_sum(
                scale * jnp.abs(v[cols]), rows, num_segments=n
            )
        )(V)
        return jnp.abs(hv - sparse_hv), jnp.maximum(scale_hv, jnp.abs(hv))

    errors, scales = probe(point, values, V, *_indices(pattern))
    return _finish(
        _report(method, (n, n), errors, scales, rtol, atol, None),
        raise_on_failure,
        caller,
    )


def _entry_scales(values, rows, cols, m, n):
    """Each nonzero's scale: the largest `|value|` in its row and in its column.

    The probes have no dense reference, so the scales come from the values under
    test; a wrong value large enough to inflate its own scale is still far from
    the reference product.
    """
    magnitude = jnp.abs(values)
    row = jax.ops.segment_max(magnitude, rows, num_segments=m)
    col = jax.ops.segment_max(magnitude, cols, num_segments=n)
    return jnp.maximum(row[rows], col[cols])


def _indices(pattern):
    return jnp.asarray(pattern.rows), jnp.asarray(pattern.cols)
