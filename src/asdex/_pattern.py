"""The `SparsityPattern` type: a boolean (m, n) matrix stored as sorted coordinates."""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from ._display import braille

if TYPE_CHECKING:
    from jax.experimental.sparse import BCOO

_FORMAT_NAME = "asdex.SparsityPattern"
_FORMAT_VERSION = 1


def _index_dtype(shape) -> type:
    """The dtype of a pattern's row and column indices: int32 while they fit."""
    return np.int32 if max(shape, default=0) < 2**31 else np.int64


class SparsityPattern:
    """The structural nonzeros of an `(m, n)` Jacobian or Hessian.

    Entries are stored as coordinate arrays sorted row-major without duplicates.
    A pattern is immutable and hashable, so it can be a static argument of
    `jax.jit` or a static field of an `equinox.Module`.

    Rows index the flattened outputs and columns the flattened inputs: leaves in
    `jax.tree_util` order, each leaf row-major. This is Lineax's layout.

    **Arguments:**

    - `rows`: integer array of row indices.
    - `cols`: integer array of column indices, the same length as `rows`.
    - `shape`: the pair `(m, n)`.

    Duplicate entries are merged and the order of the entries does not matter.

    A *local* pattern ([`asdex.jacobian_sparsity`][] with `local=True`) holds at
    the one point it was detected at, not at others; its `repr` says so and
    [`local`][asdex.SparsityPattern.local] is `True`. Equality and hashing look
    at the entries only.
    """

    __slots__ = ("_rows", "_cols", "_shape", "_hash", "_local", "_indptr")

    def __init__(self, rows, cols, shape: tuple[int, int]):
        shape = _check_shape(shape)
        rows = np.asarray(rows)
        cols = np.asarray(cols)
        if rows.ndim != 1 or cols.ndim != 1 or rows.shape != cols.shape:
            raise ValueError(
                "`SparsityPattern(rows, cols, shape)` needs `rows` and `cols` to be "
                f"one-dimensional and of equal length, got shapes {rows.shape} and "
                f"{cols.shape}."
            )
        for name, idx in (("rows", rows), ("cols", cols)):
            if idx.size and not np.issubdtype(idx.dtype, np.integer):
                raise TypeError(
                    f"`SparsityPattern({name}=...)` must hold integers, got dtype "
                    f"{idx.dtype}."
                )
        m, n = shape
        if rows.size:
            if rows.min() < 0 or rows.max() >= m:
                raise ValueError(
                    f"`SparsityPattern(rows=...)` has an index outside [0, {m})."
                )
            if cols.min() < 0 or cols.max() >= n:
                raise ValueError(
                    f"`SparsityPattern(cols=...)` has an index outside [0, {n})."
                )
        keys = rows.astype(np.int64) * n + cols.astype(np.int64)
        if keys.size > 1 and not np.all(keys[1:] > keys[:-1]):
            # Sorting beats numpy's hash-based `unique` by far on millions of keys.
            keys = np.sort(keys)
            keys = keys[np.concatenate(([True], keys[1:] != keys[:-1]))]
            rows, cols = np.divmod(keys, max(n, 1))
        self._set(rows, cols, shape)

    def _set(self, rows, cols, shape) -> None:
        self._rows = np.ascontiguousarray(rows, dtype=_index_dtype(shape))
        self._cols = np.ascontiguousarray(cols, dtype=_index_dtype(shape))
        self._rows.flags.writeable = False
        self._cols.flags.writeable = False
        self._shape = shape
        self._hash = None
        self._local = False
        self._indptr = None

    @classmethod
    def _canonical(cls, rows, cols, shape) -> SparsityPattern:
        """Build from entries already sorted row-major, unique and in range."""
        pattern = cls.__new__(cls)
        pattern._set(rows, cols, (int(shape[0]), int(shape[1])))
        return pattern

    # ---------------------------------------------------------------- constructors

    @classmethod
    def from_dense(cls, matrix) -> SparsityPattern:
        """The pattern of the nonzeros of a dense two-dimensional array."""
        matrix = np.asarray(matrix)
        if matrix.ndim != 2:
            raise ValueError(
                "`SparsityPattern.from_dense(matrix)` needs a two-dimensional array, "
                f"got shape {matrix.shape}."
            )
        rows, cols = np.nonzero(matrix)
        return cls(rows, cols, matrix.shape)

    @classmethod
    def from_scipy(cls, matrix) -> SparsityPattern:
        """The pattern of the stored entries of a scipy sparse matrix or array.

        Explicitly stored zeros count as entries: they are part of the structure.
        """
        if not sp.issparse(matrix):
            raise TypeError(
                "`SparsityPattern.from_scipy(matrix)` needs a scipy sparse matrix or "
                f"array, got {type(matrix).__name__}."
            )
        coo = sp.coo_array(matrix)
        return cls(coo.row, coo.col, coo.shape)

    @classmethod
    def from_bcoo(cls, matrix: BCOO) -> SparsityPattern:
        """The pattern of the stored entries of a two-dimensional `BCOO` matrix."""
        from jax.experimental import sparse as jsparse

        if not isinstance(matrix, jsparse.BCOO) or matrix.ndim != 2:
            raise TypeError(
                "`SparsityPattern.from_bcoo(matrix)` needs a two-dimensional "
                "`jax.experimental.sparse.BCOO`."
            )
        if matrix.n_batch or matrix.n_dense:
            matrix = matrix.update_layout(n_batch=0, n_dense=0)
        idx = np.asarray(matrix.indices)
        inside = (idx[:, 0] < matrix.shape[0]) & (idx[:, 1] < matrix.shape[1])
        return cls(idx[inside, 0], idx[inside, 1], matrix.shape)

    @classmethod
    def from_any(
        cls, matrix, *, argument: str = "matrix", global_only: bool = False
    ) -> SparsityPattern:
        """The pattern of any two-dimensional matrix: a `SparsityPattern` (returned
        as it is), a scipy sparse matrix or array, a `BCOO`, or a dense numpy or
        JAX array (its nonzeros).

        `argument` names the matrix in errors, as the caller knows it (for
        example "`asdex.spy(obj=...)`"). `global_only` refuses a local pattern
        (`local=True`), for callers that build a derivative valid everywhere.
        """
        import jax
        from jax.experimental import sparse as jsparse

        if isinstance(matrix, SparsityPattern):
            if global_only and matrix.local:
                raise ValueError(
                    f"{argument} is a local pattern (`local=True`), which holds at "
                    "one point only, but a derivative built from a pattern is "
                    "called anywhere. Build it at the point instead, with "
                    "`local=True` (`asdex.jacobian(f, x, local=True)`, "
                    "`asdex.hessian(...)`): that one checks that it is called at "
                    "that point. Or detect the global pattern."
                )
            return matrix
        if sp.issparse(matrix) or isinstance(matrix, jsparse.BCOO):
            if len(matrix.shape) != 2:
                raise ValueError(
                    f"{argument} needs a two-dimensional sparse matrix, got shape "
                    f"{matrix.shape}. For a Jacobian of multi-dimensional arrays, "
                    "use `output_format='scipy_csr'`, or the derivative's "
                    "`coloring.pattern`."
                )
            if sp.issparse(matrix):
                return cls.from_scipy(matrix)
            return cls.from_bcoo(matrix)
        if isinstance(matrix, np.ndarray | jax.Array):
            if np.ndim(matrix) != 2:
                raise ValueError(
                    f"{argument} needs a two-dimensional array, got shape {np.shape(matrix)}."
                )
            return cls.from_dense(np.asarray(matrix))
        raise TypeError(
            f"{argument} must be an `asdex.SparsityPattern`, a scipy sparse matrix, "
            "a two-dimensional `jax.experimental.sparse.BCOO`, or a two-dimensional "
            f"numpy or JAX array; got {type(matrix).__name__}."
        )

    @classmethod
    def from_csr(
        cls, indptr, indices, shape, *, sorted_unique: bool = False
    ) -> SparsityPattern:
        """The pattern of a CSR structure `(indptr, indices)`.

        With `sorted_unique=True` the caller promises that each row's column indices
        are sorted, unique and in range, and no check is made.
        """
        indptr = np.asarray(indptr)
        # Rows in the pattern's own index dtype: at 5·10⁷ nonzeros an int64
        # `repeat` is a 400 MB temporary, narrowed at once.
        rows = np.repeat(
            np.arange(len(indptr) - 1, dtype=_index_dtype(shape)), np.diff(indptr)
        )
        if not sorted_unique:
            return cls(rows, np.asarray(indices), shape)
        pattern = cls._canonical(rows, np.asarray(indices), shape)
        # The given pointers are the pattern's: spare `indptr` its bincount.
        kept = np.array(indptr, dtype=np.int64)
        kept.flags.writeable = False
        pattern._indptr = kept
        return pattern

    # ---------------------------------------------------------------- properties

    @property
    def shape(self) -> tuple[int, int]:
        """The pair `(m, n)`: outputs by inputs."""
        return self._shape

    @property
    def rows(self) -> np.ndarray:
        """Row indices of the nonzeros, sorted row-major."""
        return self._rows

    @property
    def cols(self) -> np.ndarray:
        """Column indices of the nonzeros, sorted row-major."""
        return self._cols

    @property
    def nnz(self) -> int:
        """The number of structural nonzeros."""
        return int(self._rows.size)

    @property
    def density(self) -> float:
        """`nnz / (m * n)`; zero for an empty shape."""
        m, n = self._shape
        return self.nnz / (m * n) if m * n else 0.0

    @property
    def sparsity(self) -> float:
        """`1 - density`."""
        return 1.0 - self.density if self._shape[0] * self._shape[1] else 1.0

    @property
    def local(self) -> bool:
        """Whether the pattern holds at one point only (see `local=True` in
        [`asdex.jacobian_sparsity`][]); `False` for a global pattern, which holds
        at every input."""
        return self._local

    def _as_local(self, local: bool = True) -> SparsityPattern:
        """The same entries, marked as a local pattern (or not)."""
        out = SparsityPattern._canonical(self._rows, self._cols, self._shape)
        out._local = bool(local)
        return out

    @property
    def T(self) -> SparsityPattern:
        """The transposed pattern."""
        # A stable sort by column keeps rows ascending within each column.
        order = np.argsort(self._cols, kind="stable")
        out = SparsityPattern._canonical(
            self._cols[order], self._rows[order], self._shape[::-1]
        )
        out._local = self._local
        return out

    @property
    def indptr(self) -> np.ndarray:
        """CSR row pointers of length `m + 1` (read-only)."""
        # Kept: coloring a Jacobian reads them several times (0.3 s each at 10⁷).
        if self._indptr is None:
            counts = np.bincount(self._rows, minlength=self._shape[0])
            indptr = np.zeros(self._shape[0] + 1, dtype=np.int64)
            np.cumsum(counts, out=indptr[1:])
            indptr.flags.writeable = False
            self._indptr = indptr
        return self._indptr

    def is_symmetric(self) -> bool:
        """Whether the pattern is square and equal to its transpose."""
        return self._shape[0] == self._shape[1] and self == self.T

    # ---------------------------------------------------------------- conversions

    def todense(self) -> np.ndarray:
        """A numpy boolean array of shape `(m, n)`."""
        out = np.zeros(self._shape, dtype=bool)
        out[self._rows, self._cols] = True
        return out

    def to_scipy(self, format: str = "csr") -> sp.sparray:
        """A scipy sparse array with ones on the pattern (`csr`, `csc` or `coo`)."""
        data = np.ones(self.nnz, dtype=np.int8)
        coo = sp.coo_array((data, (self._rows, self._cols)), shape=self._shape)
        if format == "coo":
            return coo
        if format == "csr":
            return coo.tocsr()
        if format == "csc":
            return coo.tocsc()
        raise ValueError(
            f"`SparsityPattern.to_scipy(format={format!r})`: use 'csr', 'csc' or 'coo'."
        )

    def to_bcoo(self, dtype=None) -> BCOO:
        """A `BCOO` matrix with ones on the pattern."""
        import jax.numpy as jnp
        from jax.experimental import sparse as jsparse

        indices = np.stack([self._rows, self._cols], axis=1)
        data = jnp.ones(self.nnz, dtype=dtype or jnp.float32)
        return jsparse.BCOO(
            (data, jnp.asarray(indices)),
            shape=self._shape,
            indices_sorted=True,
            unique_indices=True,
        )

    # ---------------------------------------------------------------- persistence

    def save(self, path: str | os.PathLike) -> None:
        """Write the pattern to a `.npz` file that [`load`][asdex.SparsityPattern.load] reads.

        The file records a format version and a checksum of its contents.
        """
        np.savez_compressed(
            path,
            format=np.array(_FORMAT_NAME),
            version=np.array(_FORMAT_VERSION),
            shape=np.array(self._shape, dtype=np.int64),
            rows=self._rows,
            cols=self._cols,
            checksum=np.array(self._digest()),
            local=np.array(self._local),
        )

    @classmethod
    def load(
        cls, path: str | os.PathLike, *, shape: tuple[int, int] | None = None
    ) -> SparsityPattern:
        """Read a pattern written by [`save`][asdex.SparsityPattern.save].

        **Arguments:**

        - `path`: the file.
        - `shape`: if given, the file's pattern must have this shape.

        **Raises:** `ValueError` if the file is not an asdex pattern, is corrupt (its
        checksum does not match), or has another shape than `shape`.
        """
        try:
            with np.load(path, allow_pickle=False) as data:
                contents = {k: data[k] for k in data.files}
        except Exception as err:  # noqa: BLE001 - zlib, zipfile and numpy all raise
            raise ValueError(
                f"`SparsityPattern.load({str(path)!r})`: not a readable .npz file "
                f"({err})."
            ) from err
        missing = {"format", "version", "shape", "rows", "cols", "checksum"} - set(
            contents
        )
        if missing or str(contents["format"]) != _FORMAT_NAME:
            raise ValueError(
                f"`SparsityPattern.load({str(path)!r})`: the file was not written by "
                "`SparsityPattern.save` (missing or wrong format fields)."
            )
        if int(contents["version"]) != _FORMAT_VERSION:
            raise ValueError(
                f"`SparsityPattern.load({str(path)!r})`: file format version "
                f"{int(contents['version'])} is not supported (this asdex reads "
                f"version {_FORMAT_VERSION})."
            )
        file_shape = tuple(int(s) for s in contents["shape"])
        if shape is not None and file_shape != tuple(shape):
            raise ValueError(
                f"`SparsityPattern.load({str(path)!r}, shape={tuple(shape)})`: the "
                f"file holds a pattern of shape {file_shape}."
            )
        try:
            pattern = cls(contents["rows"], contents["cols"], file_shape)
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"`SparsityPattern.load({str(path)!r})`: the file is corrupt ({err})."
            ) from err
        if pattern._digest() != str(contents["checksum"]):
            raise ValueError(
                f"`SparsityPattern.load({str(path)!r})`: the file is corrupt (its "
                "checksum does not match its contents)."
            )
        # Files written before local patterns existed hold global ones.
        return pattern._as_local(bool(contents.get("local", False)))

    # ---------------------------------------------------------------- dunder

    def _digest(self) -> str:
        h = hashlib.blake2b(digest_size=16)
        h.update(np.asarray(self._shape, dtype=np.int64).tobytes())
        h.update(self._rows.astype(np.int64).tobytes())
        h.update(self._cols.astype(np.int64).tobytes())
        return h.hexdigest()

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(self._digest())
        return self._hash

    def __eq__(self, other) -> bool:
        if not isinstance(other, SparsityPattern):
            return NotImplemented
        if self is other:
            return True
        return (
            self._shape == other._shape
            and np.array_equal(self._rows, other._rows)
            and np.array_equal(self._cols, other._cols)
        )

    def __or__(self, other: SparsityPattern) -> SparsityPattern:
        """The union of two patterns of the same shape (local if either is)."""
        if not isinstance(other, SparsityPattern) or other.shape != self.shape:
            raise ValueError("`|` needs two `SparsityPattern`s of the same shape.")
        union = (self.to_scipy("csr") + other.to_scipy("csr")).tocsr()
        union.sum_duplicates()  # also sorts the indices of each row
        return SparsityPattern.from_csr(
            union.indptr, union.indices, self._shape, sorted_unique=True
        )._as_local(self._local or other._local)

    def __and__(self, other: SparsityPattern) -> SparsityPattern:
        """The entries in both patterns of the same shape (local if either is)."""
        if not isinstance(other, SparsityPattern) or other.shape != self.shape:
            raise ValueError("`&` needs two `SparsityPattern`s of the same shape.")
        n = self._shape[1]
        mine = self._rows.astype(np.int64) * n + self._cols
        theirs = other._rows.astype(np.int64) * n + other._cols
        keys = mine[np.isin(mine, theirs, assume_unique=True)]
        return SparsityPattern._canonical(
            *np.divmod(keys, max(n, 1)), self._shape
        )._as_local(self._local or other._local)

    def __contains__(self, entry) -> bool:
        i, j = entry
        lo, hi = np.searchsorted(self._rows, [i, i + 1])
        return bool(np.any(self._cols[lo:hi] == j))

    def __getstate__(self):
        return {
            "rows": self._rows,
            "cols": self._cols,
            "shape": self._shape,
            "local": self._local,
        }

    def __setstate__(self, state):
        SparsityPattern.__init__(self, state["rows"], state["cols"], state["shape"])
        self._local = bool(state.get("local", False))

    def _header(self) -> str:
        m, n = self._shape
        where = ", local: at one point only" if self._local else ""
        return f"{m}×{n}, nnz={self.nnz}, sparsity={100 * self.sparsity:.1f}%{where}"

    def __repr__(self) -> str:
        return f"SparsityPattern({self._header()})"

    def __str__(self) -> str:
        return f"{self!r}\n{braille(self._rows, self._cols, self._shape)}"


def _check_shape(shape) -> tuple[int, int]:
    try:
        m, n = (int(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(
            f"`SparsityPattern(shape=...)` must be a pair (m, n), got {shape!r}."
        ) from None
    if m < 0 or n < 0:
        raise ValueError(f"`SparsityPattern(shape=...)` must be non-negative: {shape}.")
    return (m, n)
