"""Sparse direct solves on the host, called from JAX: scipy's SuperLU for general
(and complex) matrices, and for real symmetric definite ones LAPACK's banded
Cholesky where the band is compact after reordering, QDLDL's LDLᵀ elsewhere.

The JAX side passes only the nonzero values and the right-hand sides through
`jax.pure_callback`; the pattern is static and closed over by the callback, so
its index arrays are neither transferred nor compiled into the program.

Factorisations are kept in a small host-side cache keyed by the exact matrix (the
static key and a copy of the values, compared with `np.array_equal`). This makes
repeated solves with one matrix factorise it once: a solve and the transposed
solve of its reverse-mode derivative, the tangent solves of forward mode, and
every step of a chord method. A hit is decided by the values themselves, never by
identity or a hash alone, so the cache cannot return a wrong factor; a miss only
costs the factorisation that a cache-less solver would have done anyway.
"""

# jaxtyping's shape strings (" nnz", "m n") are not Python expressions.
# ruff: noqa: F722

from __future__ import annotations

import math
import threading
import warnings
from collections.abc import Callable, Hashable
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from jaxtyping import Array, Inexact, Int

from .._caches import on_clear
from .._pattern import SparsityPattern
from ._amg import AMGConfig, AMGFactor, NotConverged, amg_failed_before
from ._banded import BandedCholesky, BandedLU, band_widths, cholesky_band
from ._ldl import CheckedLDLFactor, LDLFactor, check_pivots
from ._minnorm import MinNormFactor
from ._pattern_data import pattern_data
from ._small_structure import solve_in_xla

# What to factorise, given the values of a matrix A stored on its pattern:
# - "lu": A itself, by SuperLU with partial pivoting; columns ordered by minimum
#   degree on A + Aᵀ when A's pattern is symmetric, else by COLAMD. A real A whose
#   values are symmetric is first tried as L D Lᵀ, checked by the residual.
# - "symmetric": A itself, known symmetric (definite for stability); real
#   matrices by banded Cholesky after a reverse Cuthill–McKee ordering when the
#   band is compact and A positive definite (see `_banded.py`), else by QDLDL's
#   LDLᵀ (see `_ldl.py`); complex ones by SuperLU in symmetric mode (minimum
#   degree on A + Aᵀ, diagonal pivots).
# - "gram_cols": AᵀA (the normal equations of a tall A), by QDLDL (SuperLU for
#   complex A), with no banded path: AᵀA is formed afresh on each call.
# - "gram_rows": AAᵀ (of a wide A), likewise.
# - "minnorm": the minimum-norm least-squares solution `A⁺ b` (or `(Aᵀ)⁺ b`),
#   robust to rank deficiency (see `_minnorm.py`); the solution has A's input
#   size (output size when transposed), not the right-hand side's.
# - an `AMGConfig`: A itself, by multigrid-preconditioned CG or GMRES (see
#   `_amg.py`), with a direct factorisation of kind `config.fallback` if given.
Kind = Literal["lu", "symmetric", "gram_cols", "gram_rows", "minnorm"] | AMGConfig

_SYMMETRIC_OPTIONS = dict(
    permc_spec="MMD_AT_PLUS_A",
    diag_pivot_thresh=0.0,
    options=dict(SymmetricMode=True),
)


class _Entry:
    __slots__ = ("key", "values", "factor")

    def __init__(self, key, values, factor):
        self.key = key
        self.values = values
        self.factor = factor


class FactorCache:
    """The most recent SuperLU factorisations, keyed by the exact matrix."""

    def __init__(self, maxsize: int = 1):
        self.maxsize = maxsize
        self.hits = 0
        self.misses = 0
        self._entries: list[_Entry] = []
        self.lock = threading.RLock()

    def get(self, key: Hashable, values: np.ndarray, build: Callable[[], object]):
        with self.lock:
            for i, entry in enumerate(self._entries):
                if (
                    entry.key == key
                    and entry.values.dtype == values.dtype
                    and np.array_equal(entry.values, values)
                ):
                    self._entries.append(self._entries.pop(i))
                    self.hits += 1
                    return entry.factor
            self.misses += 1
            # Evict before factorising so that at most `maxsize` factors (and not
            # one more) are alive at the peak.
            keep = max(self.maxsize - 1, 0)
            del self._entries[: len(self._entries) - keep]
            factor = build()
            if self.maxsize > 0:
                self._entries.append(_Entry(key, values.copy(), factor))
            return factor

    def clear(self) -> None:
        with self.lock:
            self._entries.clear()
            self.hits = self.misses = 0


factor_cache = FactorCache()
on_clear(factor_cache.clear)


def set_factor_cache_size(size: int) -> int:
    """Set how many sparse factorisations the host keeps for reuse.

    The sparse direct solvers keep the factors of the most recent matrices, keyed by
    their exact values, so that solving again with the same matrix (a transposed
    solve for reverse-mode derivatives, the steps of a chord method, solves with
    several right-hand sides) does not factorise again. The default keeps one
    factorisation. `0` disables the cache; more than one helps when solves with a
    few different matrices alternate, at the cost of their memory.

    **Arguments:**

    - `size`: the number of factorisations to keep, at least 0.

    **Returns:**

    The previous size.
    """
    if not isinstance(size, int) or size < 0:
        raise ValueError(
            f"`set_factor_cache_size(size={size!r})` needs a non-negative integer."
        )
    with factor_cache.lock:
        previous, factor_cache.maxsize = factor_cache.maxsize, size
        keep = max(size, 0)
        del factor_cache._entries[: max(len(factor_cache._entries) - keep, 0)]
    return previous


def _matrix(pattern: SparsityPattern, values: np.ndarray) -> sp.csr_array:
    data = pattern_data(pattern)
    return sp.csr_array((values, pattern.cols, data.indptr), shape=pattern.shape)


def _factorise(kind: Kind, pattern: SparsityPattern, values: np.ndarray):
    """The factor for `kind` (anything with SuperLU's `solve(b, trans)`); raises
    `RuntimeError` if the matrix is exactly singular."""
    if isinstance(kind, AMGConfig):
        fallback = kind.fallback
        direct = None
        if fallback is not None:
            direct = lambda: _factorise(fallback, pattern, values)  # noqa: E731
            if amg_failed_before((pattern, kind)):
                return direct()
        return AMGFactor(pattern, values, kind, direct)
    widths = band_widths(pattern) if kind in ("lu", "symmetric") else None
    if widths is not None:
        # No ordering, no symbolic analysis: LAPACK's banded LU (`_banded.py`).
        # Like SuperLU's below, the factor is of Aᵀ (A itself when symmetric).
        kl, ku = widths
        n = pattern.shape[0]
        return BandedLU(n, pattern.cols, pattern.rows, values, ku, kl)
    if kind == "lu":
        # The CSR arrays of A are the CSC arrays of Aᵀ: factorising Aᵀ needs no
        # conversion at all, and Aᵀ's factor solves with A through `trans="T"`.
        m, n = pattern.shape
        at = sp.csc_array(
            (values, pattern.cols, pattern_data(pattern).indptr), shape=(n, m)
        )
        # On a structurally symmetric pattern (grids, meshes), minimum degree on
        # A + Aᵀ leaves far less fill than COLAMD: 0.57x the nonzeros in L + U
        # and 0.7-0.8x the time on the 64² and 256² Bratu Jacobians. Partial
        # pivoting is kept either way, so only the fill changes.
        data = pattern_data(pattern)
        symmetric = data.is_symmetric_pattern
        spec = "MMD_AT_PLUS_A" if symmetric else "COLAMD"
        if (
            symmetric
            and np.isrealobj(values)
            and np.array_equal(values, values[data.transpose_perm])
        ):
            # Symmetric values (A = Aᵀ = `at`), definiteness unknown: try the
            # cheaper L D Lᵀ, checked solve by solve (see `CheckedLDLFactor`).
            return CheckedLDLFactor(at, lambda: _checked_splu(at, spec))
        return _checked_splu(at, spec)
    if kind == "minnorm":
        return MinNormFactor(
            _matrix(pattern, values), float(np.finfo(values.dtype).eps)
        )
    if kind == "symmetric" and np.isrealobj(values):
        band = cholesky_band(pattern)
        if band is not None:
            try:
                return BandedCholesky(band, values)
            except RuntimeError:  # not definite: QDLDL's L D Lᵀ below
                pass
    if kind == "symmetric":
        m, n = pattern.shape
        a = sp.csc_array(
            (values, pattern.cols, pattern_data(pattern).indptr), shape=(n, m)
        )
    else:
        a = _matrix(pattern, values)
        a = sp.csc_array((a.T @ a) if kind == "gram_cols" else (a @ a.T))
        a.sort_indices()
    if np.iscomplexobj(values):
        return spla.splu(a, **_SYMMETRIC_OPTIONS)
    return LDLFactor(a)


def _warn_failure(kind: Kind, pattern: SparsityPattern, error: Exception) -> None:
    label = "multigrid" if isinstance(kind, AMGConfig) else repr(kind)
    warnings.warn(
        f"asdex's sparse {label} solve of a {pattern.shape[0]}×{pattern.shape[1]} "
        f"matrix failed on the host with {type(error).__name__}: {error}. The "
        "solve returns NaN with a failed `lineax.RESULTS` code.",
        RuntimeWarning,
        stacklevel=2,
    )


def _checked_splu(a: sp.csc_array, spec: str):
    """`splu(a)`, raising `RuntimeError` when a pivot is negligible.

    SuperLU only stops at an exactly zero pivot. A matrix that is singular up to
    rounding (collinear columns, a Hessian with a flat direction) factorises
    "successfully" with a pivot of the size of the rounding error, and the solve
    is then garbage of that size's reciprocal. Such a matrix is reported as
    singular instead (see `check_pivots`).
    """
    lu = spla.splu(a, permc_spec=spec)
    check_pivots(lu.U.diagonal(), a.dtype)
    return lu


def _solve_host(
    kind: Kind,
    pattern: SparsityPattern,
    transpose: bool,
    values: np.ndarray,
    rhs: np.ndarray,
    out_size: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Solve with every matrix in `values` against every vector in `rhs`.

    `values` has shape `(*bv, nnz)` and `rhs` `(*bb, size)`, where the batch shapes
    broadcast (`jax.pure_callback`'s `vmap_method="expand_dims"` gives unbatched
    arguments axes of size one). Returns `(x, info)`: solutions `(*batch, size)` and
    codes `(*batch,)`, 0 for success and 1 for a singular or non-finite matrix,
    2 when the factorisation failed otherwise (the reason is warned about, since
    an exception cannot cross `jax.pure_callback` readably), 3 when a multigrid
    solve did not converge (warned about with the residual it reached).
    `out_size` is the solutions' size when it is not the right-hand sides'
    ("minnorm").
    """
    values = np.asarray(values)
    rhs = np.asarray(rhs)
    out_dtype = np.result_type(values.dtype, rhs.dtype)
    batch = np.broadcast_shapes(values.shape[:-1], rhs.shape[:-1])
    size = rhs.shape[-1]
    out = size if out_size is None else out_size
    x = np.empty(batch + (out,), dtype=out_dtype)
    info = np.zeros(batch, dtype=np.int32)
    flat_values = values.reshape(-1, values.shape[-1])
    # Lineax's convention for `lu_solve`: trans=1 solves with the transpose. Our
    # "lu" factor is of Aᵀ, so A itself is solved with SuperLU's trans="T".
    if kind == "lu":
        trans = "N" if transpose else "T"
    elif kind == "minnorm" or isinstance(kind, AMGConfig):
        trans = "T" if transpose else "N"
    else:
        trans = "N"  # symmetric matrices
    key = (kind, pattern)

    def solve(matrix_values: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, int]:
        # `b` has shape (size, k): several right-hand sides share one factor.
        nan = np.full((out, b.shape[1]), np.nan, out_dtype)
        if not np.all(np.isfinite(matrix_values)):
            return nan, 1
        matrix_values = np.ascontiguousarray(matrix_values)
        try:
            factor = factor_cache.get(
                key,
                matrix_values,
                lambda: _factorise(kind, pattern, matrix_values),
            )
        except RuntimeError:  # "Factor is exactly singular", "not quasi-definite"
            return nan, 1
        except Exception as error:  # noqa: BLE001 - anything else, e.g. out of memory
            # An exception raised here would reach the user as a bare
            # "INTERNAL: CpuCallback error"; report a code and say why instead.
            _warn_failure(kind, pattern, error)
            return nan, 2
        try:
            with factor_cache.lock:
                sol = factor.solve(
                    np.asfortranarray(b.astype(matrix_values.dtype)), trans
                )
        except NotConverged as error:
            _warn_failure(kind, pattern, error)
            return nan, 3
        except Exception as error:  # noqa: BLE001 - as above
            _warn_failure(kind, pattern, error)
            return nan, 2
        if not np.all(np.isfinite(sol)):  # a zero pivot that slipped through
            return nan, 1
        return sol, 0

    if size == 0 or out == 0:
        x[...] = 0
        return x, info
    if flat_values.shape[0] == 1:
        # One matrix: factorise once, solve for all right-hand sides together.
        b = np.broadcast_to(rhs, batch + (size,)).reshape(-1, size).T
        sol, code = solve(flat_values[0], b)
        x[...] = sol.T.reshape(batch + (out,))
        info[...] = code
        return x, info
    values_b = np.broadcast_to(values, batch + values.shape[-1:])
    rhs_b = np.broadcast_to(rhs, batch + (size,))
    for index in np.ndindex(*batch):
        sol, code = solve(values_b[index], rhs_b[index][:, None])
        x[index] = sol[:, 0]
        info[index] = code
    return x, info


def superlu_solve(
    kind: Kind,
    pattern: SparsityPattern,
    values: Inexact[Array, " nnz"],
    rhs: Inexact[Array, " size"],
    *,
    transpose: bool = False,
    out_size: int | None = None,
) -> tuple[Inexact[Array, " out"], Int[Array, ""]]:
    """Solve `M x = rhs` on the host, where `M` is built from `values` per `kind`.

    Works under `jit` and `vmap` (batched values and/or right-hand sides; one
    factorisation serves all right-hand sides of an unbatched matrix). It has no
    derivative rule of its own: Lineax differentiates `linear_solve` itself.

    **Returns:** `(x, info)`, with `info` 0 on success, 1 when the matrix is
    singular or not finite, 2 when the host solve failed otherwise, and 3 when a
    multigrid solve did not converge (then `x` is NaN). `out_size` is the size of
    `x` when it differs from `rhs`'s.
    """
    if out_size is None:
        # Tridiagonal and small-block matrices are solved in XLA, with no callback.
        solved = solve_in_xla(kind, pattern, values, rhs, transpose)
        if solved is not None:
            return solved
    with jax.numpy_dtype_promotion("standard"):
        dtype = jnp.result_type(values, rhs)
    size = math.prod(rhs.shape) if out_size is None else out_size
    result_shapes = (
        jax.ShapeDtypeStruct((size,), dtype),
        jax.ShapeDtypeStruct((), jnp.int32),
    )

    def callback(values, rhs):
        x, info = _solve_host(kind, pattern, transpose, values, rhs, out_size)
        return x.astype(dtype, copy=False), info

    return jax.pure_callback(
        callback, result_shapes, values, rhs, vmap_method="expand_dims"
    )
