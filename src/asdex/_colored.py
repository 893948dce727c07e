"""The `ColoredPattern` type: a sparsity pattern with its coloring and decompression plan."""

from __future__ import annotations

import hashlib
import warnings
from typing import Literal

import numpy as np
from jax.sharding import Mesh

from ._display import braille, side_by_side
from ._pattern import SparsityPattern
from ._sharding import ProductSharding, product_sharding
from .coloring import (
    AbstractColoringResult,
    AcyclicColoringResult,
    BicoloringResult,
    ColumnColoringResult,
    RowColoringResult,
    StarColoringResult,
)

Mode = Literal["fwd", "rev", "bidirectional", "star", "acyclic"]

_RESULTS = (
    ColumnColoringResult,
    RowColoringResult,
    BicoloringResult,
    StarColoringResult,
    AcyclicColoringResult,
)

# What one product is called, and what the display calls the coloring.
_PRODUCT = {"fwd": "JVP", "rev": "VJP", "star": "HVP", "acyclic": "HVP"}
_KIND = {
    "fwd": "JVP",
    "rev": "VJP",
    "bidirectional": "JVP+VJP",
    "star": "HVP, star",
    "acyclic": "HVP, acyclic",
}


def refuse_local(coloring, caller: str, argument: str = "coloring") -> None:
    """Operators and solvers evaluate at many points: a local pattern does not
    hold there."""
    pattern = getattr(coloring, "pattern", coloring)
    if getattr(pattern, "local", False):
        raise ValueError(
            f"`{caller}({argument}=...)` is a local pattern (`local=True`), which "
            "holds at the one point it was detected at; operators and solvers "
            "evaluate at other points, where it can miss nonzeros. Detect the "
            "global pattern (`local=False`) for them."
        )


def check_coloring(
    coloring,
    caller: str,
    *,
    hessian: bool | None,
    shape: tuple[int, int] | None = None,
    local_ok: bool = False,
) -> ColoredPattern:
    """The one check of a coloring that a user passes in (`coloring=`): a
    `ColoredPattern`, of a Jacobian or a Hessian as `hessian` says (`None`:
    either), of `shape`, and (unless `local_ok`) global."""
    kinds = {None: ("jacobian", "hessian"), True: ("hessian",), False: ("jacobian",)}
    kinds = kinds[hessian]
    kind = kinds[0]
    if not isinstance(coloring, ColoredPattern):
        hint = ""
        if isinstance(coloring, SparsityPattern) and hessian is not None:
            hint = (
                f" For a pattern, use `asdex.{kind}_from_pattern`, or color it: "
                f"`asdex.ColoredPattern(asdex.coloring.color_{kind}(pattern))`."
            )
        source = " or ".join(f"`asdex.{k}_coloring`" for k in kinds)
        raise TypeError(
            f"`{caller}(coloring=...)` must be an `asdex.ColoredPattern` (from "
            f"{source}), not {type(coloring).__name__}.{hint}"
        )
    if not local_ok:
        refuse_local(coloring, caller)
    if hessian is not None and coloring.result.symmetric != hessian:
        got, wanted = "a Jacobian", "a Hessian (mode 'star' or 'acyclic')"
        if not hessian:
            got, wanted = (
                "a Hessian",
                "a Jacobian (mode 'fwd', 'rev' or 'bidirectional')",
            )
        raise ValueError(
            f"`{caller}(coloring=...)` has mode {coloring.mode!r}, {got} coloring, "
            f"but this needs one of {wanted}: build it with "
            f"`asdex.{kind}_coloring`."
        )
    if shape is not None and coloring.shape != tuple(shape):
        raise ValueError(
            f"`{caller}(coloring=...)` is of a {coloring.shape[0]}×"
            f"{coloring.shape[1]} pattern, but the function has a {shape[0]}×"
            f"{shape[1]} {kind.capitalize()}. Was the coloring detected for other "
            "shapes?"
        )
    return coloring


class DenseColoringWarning(UserWarning):
    """The coloring needs as many products as dense differentiation would.

    Raised (as a warning, once per built object) when a Jacobian coloring has at
    least `min(m, n)` colors, or a Hessian coloring at least `n`: the sparse
    derivative then costs as many JVPs, VJPs or HVPs as `jax.jacfwd`,
    `jax.jacrev` or `jax.hessian`, plus the decompression. It is still correct.
    Silence it with `warnings.simplefilter("ignore", asdex.DenseColoringWarning)`.
    """


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


class ColoredPattern:
    """A sparsity pattern together with a coloring of it.

    The coloring says which Jacobian-vector products (JVPs), vector-Jacobian
    products (VJPs) or Hessian-vector products (HVPs) to compute, and how to read
    every nonzero back from their results. It is what [`asdex.jacobian_coloring`][]
    and [`asdex.hessian_coloring`][] return, and what
    [`asdex.jacobian_from_coloring`][] and [`asdex.hessian_from_coloring`][] take.

    Like [`asdex.SparsityPattern`][], a `ColoredPattern` is immutable and hashable,
    so it can be a static field of an `equinox.Module` or a static argument of
    `jax.jit`.

    The `mode` says how the matrix is compressed:

    - `"fwd"`: a partial distance-2 coloring of the Jacobian's columns; one JVP per
      color, `B = J @ S` with `S` of shape `(n, c)`.
    - `"rev"`: a partial distance-2 coloring of the rows; one VJP per color,
      `B = Sᵀ @ J` with `S` of shape `(m, c)`.
    - `"bidirectional"`: a star bicoloring; some JVPs on the columns plus some VJPs
      on the rows. Cheap for patterns with both dense rows and dense columns.
    - `"star"`: a star coloring of a symmetric Hessian pattern (the default); one
      HVP per color, every nonzero read directly from `B = H @ S`.
    - `"acyclic"`: an acyclic coloring of a symmetric Hessian pattern; one HVP per
      color, the nonzeros solved from `B = H @ S` by substitution. It needs fewer
      colors than star coloring (2 instead of 3 on a tridiagonal Hessian), but
      rounding errors accumulate along the coloring's trees.

    **Arguments:**

    - `result`: a coloring result from [`asdex.coloring`][], for example
      `asdex.coloring.color_columns(pattern)`.

    !!! Example

        ```python
        def f(x):
            return (x[1:] - x[:-1]) ** 2

        asdex.jacobian_coloring(f, input_shape=50)
        # ColoredPattern(49×50, nnz=98, sparsity=96.0%, JVP, 2 colors)
        #   2 JVPs (instead of 49 VJPs or 50 JVPs)
        # ⎡⠙⢦⡀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⎤ ⎡⣿⎤
        # ...
        ```
    """

    # `_samples`: the `Samples`, the arguments the pattern was detected from, when
    # `asdex.jacobian_coloring` / `hessian_coloring` made it, so that solvers and
    # operators given the coloring can refuse other constants (see
    # `asdex.ad._layout.check_coloring_samples`). `_point`: for a local pattern,
    # the leaves of the sample arguments it holds at (`None` for leaves that are
    # not arrays), which sparse derivatives built from it check every call
    # against. Neither is part of equality or hash. `_sharding`: the devices the
    # products are spread over (see `shard`), part of equality and hash.
    __slots__ = ("_result", "_hash", "_samples", "_point", "_sharding")

    def __init__(self, result: AbstractColoringResult):
        if not isinstance(result, _RESULTS):
            raise TypeError(
                "`ColoredPattern(result=...)` must be a coloring result from "
                "`asdex.coloring` (for example `asdex.coloring.color_columns("
                f"pattern)`), not {type(result).__name__}."
            )
        self._result = result
        self._hash = None
        self._samples = None
        self._point = None
        self._sharding: ProductSharding | None = None

    # ---------------------------------------------------------------- properties

    @property
    def result(self) -> AbstractColoringResult:
        """The coloring result: colors, seeds and the decompression plan."""
        return self._result

    @property
    def pattern(self) -> SparsityPattern:
        """The colored [`asdex.SparsityPattern`][]."""
        return self._result.pattern

    @property
    def shape(self) -> tuple[int, int]:
        """The pattern's shape `(m, n)`."""
        return self._result.pattern.shape

    @property
    def mode(self) -> Mode:
        """`"fwd"`, `"rev"`, `"bidirectional"`, `"star"` or `"acyclic"`."""
        return self._result.mode  # pyright: ignore[reportReturnType]

    @property
    def num_colors(self) -> int:
        """The number of products (JVPs + VJPs, or HVPs) one evaluation costs."""
        return int(self._result.num_colors)

    @property
    def num_jvps(self) -> int:
        """The number of JVPs one evaluation costs (0 in reverse and Hessian modes)."""
        return int(self._result.num_jvps)

    @property
    def num_vjps(self) -> int:
        """The number of VJPs one evaluation costs (0 in forward and Hessian modes)."""
        return int(self._result.num_vjps)

    @property
    def num_hvps(self) -> int:
        """The number of HVPs one evaluation costs (0 for Jacobians)."""
        return int(self._result.num_hvps)

    @property
    def colors(self) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """The color of every column (`"fwd"`, `"star"`, `"acyclic"`) or row (`"rev"`).

        For `"bidirectional"`, the pair `(col_colors, row_colors)`; a negative
        color means "in no seed".
        """
        r = self._result
        if isinstance(r, BicoloringResult):
            return np.asarray(r.col_colors), np.asarray(r.row_colors)
        return np.asarray(r.colors)  # pyright: ignore[reportAttributeAccessIssue]

    @property
    def is_dense(self) -> bool:
        """Whether the coloring costs as many products as dense differentiation."""
        dense = self._result.dense_products
        return dense > 0 and self.num_colors >= dense

    @property
    def sharding(self) -> ProductSharding | None:
        """The devices the products are spread over (see `shard`), or `None`."""
        return self._sharding

    def shard(self, mesh: Mesh | None, axis: str | tuple[str, ...] | None = None):
        """This coloring, with its products spread over the devices of `mesh`.

        The products (colors) are independent, so each device computes those of
        its own block of colors, from its own linearization of the function (each
        device evaluates the function once). The nonzeros are then read out where
        the products lie, and come back sharded over the same devices, in the
        pattern's order: no device ever holds all the products. An acyclic
        Hessian coloring is the exception: its decompression solves for entries
        across colors, so there every device gathers the products (the default
        star coloring, `mode="star"`, avoids it). On a mesh of explicit axes
        (the default of `jax.make_mesh`) the nonzeros come back replicated. See
        [how to spread the work over several devices](../howto/scaling_out.md).

        Every derivative, operator and solver built from the returned coloring
        runs this way, inside `jax.jit` and `jax.vmap` too (through
        `jax.shard_map`). The function's arguments are used as they are on every
        device, and must not be placed on a mesh themselves (that raises a
        `ValueError`): for batches of independent problems, shard the batch
        instead, with `jax.vmap` over arguments sharded along it and the coloring
        unsharded.

        **Arguments:**

        - `mesh`: a `jax.sharding.Mesh`, such as
          `jax.make_mesh((jax.device_count(),), ("colors",))`; `None` returns the
          coloring unsharded.
        - `axis`: the mesh axis (or tuple of axes) to spread the products over;
          `None` (the default) for all of them.

        **Returns:**

        A `ColoredPattern` equal to this one except for its sharding; its
        `sharding` is an [`asdex.ProductSharding`][].
        """
        sharding = product_sharding(mesh, axis, "ColoredPattern.shard")
        out = ColoredPattern(self._result)
        out._samples = self._samples
        out._point = self._point
        out._sharding = sharding
        return out

    def compressed_patterns(self) -> tuple[SparsityPattern, ...]:
        """The patterns of the compressed matrices: what the products fill in.

        One pattern, of shape `(m, c)` (`"fwd"`), `(c, n)` (`"rev"`) or `(n, c)`
        (Hessians), or two, `(m, c_fwd)` and `(c_rev, n)`, for `"bidirectional"`.
        """
        return self._result.compressed_patterns()

    # ---------------------------------------------------------------- display

    def _summary(self) -> tuple[str, str]:
        m, n = self.shape
        c = self.num_colors
        kind = _KIND[self.mode]
        sharded = ""
        if self._sharding is not None:
            sharded = f", over {_plural(self._sharding.size, 'device')}"
        header = (
            f"ColoredPattern({self.pattern._header()}, {kind}, "
            f"{_plural(c, 'color')}{sharded})"
        )
        product = _PRODUCT.get(self.mode)
        if product is not None:
            cost = _plural(c, product)
        else:
            cost = f"{_plural(self.num_jvps, 'JVP')} + {_plural(self.num_vjps, 'VJP')}"
        if self._result.symmetric:
            dense = _plural(n, "HVP")
        else:
            dense = f"{_plural(m, 'VJP')} or {_plural(n, 'JVP')}"
        return header, f"  {cost} (instead of {dense})"

    def __repr__(self) -> str:
        header, cost = self._summary()
        p = self.pattern
        picture = braille(p.rows, p.cols, p.shape)
        compressed = [
            braille(q.rows, q.cols, q.shape) for q in self.compressed_patterns()
        ]
        picture = side_by_side(picture, compressed[0])
        if len(compressed) == 2:
            picture = side_by_side(picture, compressed[1], arrow="+")
        return f"{header}\n{cost}\n{picture}"

    __str__ = __repr__

    # ---------------------------------------------------------------- identity

    def _digest(self) -> str:
        h = hashlib.blake2b(digest_size=16)
        h.update(self.mode.encode())
        h.update(self.pattern._digest().encode())
        colors = self.colors
        for c in colors if isinstance(colors, tuple) else (colors,):
            h.update(np.ascontiguousarray(c, dtype=np.int64).tobytes())
        return h.hexdigest()

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash((self._digest(), self._sharding))
        return self._hash

    def __eq__(self, other) -> bool:
        if not isinstance(other, ColoredPattern):
            return NotImplemented
        if self is other:
            return True
        if type(self._result) is not type(other._result):
            return False
        if self._sharding != other._sharding:
            return False
        if self.pattern != other.pattern:
            return False
        a, b = self.colors, other.colors
        a = a if isinstance(a, tuple) else (a,)
        b = b if isinstance(b, tuple) else (b,)
        return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))

    def __getstate__(self):
        if self._sharding is not None:
            raise TypeError(
                "A sharded `ColoredPattern` holds devices, which cannot be pickled. "
                "Pickle `coloring.shard(None)` and call `.shard(mesh)` again after "
                "loading it."
            )
        return {"result": self._result}

    def __setstate__(self, state):
        ColoredPattern.__init__(self, state["result"])


def warn_if_dense(coloring: ColoredPattern, caller: str, stacklevel: int = 3) -> None:
    """Warn with [`asdex.DenseColoringWarning`][] when the coloring saves nothing.

    Only where sparsity could have saved something: dense AD needs `min(m, n)`
    products for a Jacobian and `n` for a Hessian, and no coloring of a
    non-empty pattern needs fewer than one. So a scalar input or output, a
    gradient, a 1-element Hessian (dense AD in one product) never warns: there
    the warning could only say that the problem is small.
    """
    if not coloring.is_dense:
        return
    m, n = coloring.shape
    result = coloring.result
    if result.dense_products <= 1:
        return
    if result.symmetric:
        dense = f"`jax.hessian` ({_plural(n, 'HVP')})"
    else:
        dense = (
            f"`jax.jacrev` ({_plural(m, 'VJP')}) or `jax.jacfwd` ({_plural(n, 'JVP')})"
        )
    warnings.warn(
        f"`{caller}`: the coloring needs {_plural(coloring.num_colors, 'product')}, no fewer "
        f"than dense {dense}; the pattern is too dense for sparse differentiation to "
        "pay off. The result is still correct."
        + (
            " A few dense rows and columns (an arrowhead) are cheap with "
            '`mode="bidirectional"`.'
            if isinstance(result, ColumnColoringResult | RowColoringResult)
            else ""
        ),
        DenseColoringWarning,
        stacklevel=stacklevel,
    )
