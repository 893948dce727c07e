"""`SparseFunction`: a function of PyTrees together with its detected colorings."""

# jaxtyping's shape strings are not Python expressions.
# ruff: noqa: F722

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, PyTree, Scalar

from ._colored import ColoredPattern, check_coloring
from ._pattern import SparsityPattern
from ._trace import check_scalar_output, explain_traced_control_flow
from .ad._layout import Structure
from .coloring import (
    AcyclicColoringResult,
    BicoloringResult,
    ColumnColoringResult,
    RowColoringResult,
    StarColoringResult,
)
from .lineax._derivative_operators import (
    Compression,
    SparseHessianOperator,
    SparseJacobianOperator,
    as_tags,
    check_complex_coloring,
    check_symmetric_tags,
    compression,
    hessian_values,
    jacobian_values,
    lineax_holomorphic,
)

_FORMAT_NAME = "asdex.SparseFunction"
_FORMAT_VERSION = 1


def _is_scalar(struct) -> bool:
    leaves = jax.tree.leaves(struct)
    return (
        len(leaves) == 1
        and leaves[0].shape == ()
        and jnp.issubdtype(leaves[0].dtype, jnp.floating)
    )


class SparseFunction(eqx.Module):
    """A function `fn(y, args)` with PyTree inputs and outputs, and its colorings.

    The sparsity patterns of the Jacobian of `fn` with respect to `y` and, for a
    scalar `fn`, of its Hessian are detected and colored once, when the module is
    built. It then produces sparse derivatives at any point, without detecting
    again: [`asdex.SparseJacobianOperator`][asdex.SparseJacobianOperator]s and
    [`asdex.SparseHessianOperator`][asdex.SparseHessianOperator]s for Lineax, and the colorings for
    `asdex.optimistix` solvers.

    It is an `equinox.Module`: its array leaves are those of `fn` (the parameters
    of a model, if `fn` is itself a module) and the colorings' index arrays; the
    colorings are static, with a cached hash. So it can be passed to
    `equinox.filter_jit` (its index arrays then arrive as arguments, not as
    constants), stored in other modules, and used as the `fn` of
    `optimistix.root_find`, `least_squares` or `minimise`: calling it calls `fn`.

    To save it, write the colorings with [`save`][asdex._function.SparseFunction.save] and
    the array leaves with `equinox.tree_serialise_leaves`; to load it, rebuild the
    module from the colorings with [`load`][asdex._function.SparseFunction.load] (no
    detection) and read the leaves back with `equinox.tree_deserialise_leaves`.

    !!! Example

        ```python
        class Decay(eqx.Module):
            amplitude: jax.Array
            rate: jax.Array

        def residuals(model, data):
            t, observed = data
            return model.amplitude[:, None] * jnp.exp(-model.rate[:, None] * t) - observed

        fn = asdex.SparseFunction(residuals, model0, data)
        solver = asdex.optimistix.SparseLevenbergMarquardt(
            rtol=1e-8, atol=1e-8, coloring=fn.jacobian_coloring
        )
        fitted = optx.least_squares(fn, solver, model0, data).value   # a Decay
        J = fn.jacobian_operator(fitted, data)                         # sparse
        ```
    """

    fn_dynamic: Callable
    fn_static: Callable = eqx.field(static=True)
    input_structure: Structure = eqx.field(static=True)
    output_structure: Structure = eqx.field(static=True)
    jacobian_compression: Compression | None
    hessian_compression: Compression | None

    def __init__(
        self,
        fn: Callable[[PyTree[Array], PyTree[Any]], PyTree[Array]],
        y: PyTree[Array | jax.ShapeDtypeStruct],
        args: PyTree[Any] = None,
        *,
        jacobian: bool | None = None,
        hessian: bool | None = None,
        jacobian_coloring: ColoredPattern | None = None,
        hessian_coloring: ColoredPattern | None = None,
        mode: str | None = None,
    ):
        """**Arguments:**

        - `fn`: a function `(y, args) -> out` of PyTrees of arrays (`y` may be an
            `equinox.Module` whose leaves are arrays).
        - `y`: a sample of `y`: arrays or `jax.ShapeDtypeStruct`s; only the
            structure, shapes and dtypes are used.
        - `args`: a sample of `args`. Array leaves are inputs that are not
            differentiated; other leaves are constants, and later calls must pass
            the same ones.
        - `jacobian`: whether to detect and color the Jacobian of `fn` with
            respect to `y`; `None` does so unless `fn` returns a scalar (whose
            Jacobian, the gradient, comes with the Hessian).
        - `hessian`: whether to detect and color the Hessian; `None` does so when
            `fn` returns one real scalar.
        - `jacobian_coloring`, `hessian_coloring`: colorings to use instead of
            detecting them (from an earlier run, or from
            [`load`][asdex._function.SparseFunction.load]).
        - `mode`: the Jacobian's coloring mode, `"fwd"`, `"rev"`, `"bidirectional"`
            or `None` for the cheaper of JVPs and VJPs. Complex `y` is read as
            holomorphic, as Lineax does, and real `y` with complex outputs needs
            JVPs (see [`asdex.SparseJacobianOperator`][]).
        """
        caller = "asdex.SparseFunction"
        if not callable(fn):
            raise TypeError(
                f"`{caller}(fn=...)` must be a function `(y, args) -> out`, got "
                f"{type(fn).__name__}."
            )
        with explain_traced_control_flow(caller, "fn"):
            out_struct = eqx.filter_eval_shape(fn, y, args)
        flat_in = Structure.of_tree(y)
        flat_out = Structure.of(out_struct)
        n, m = flat_in.size, flat_out.size
        scalar = _is_scalar(out_struct)
        if hessian is None:
            hessian = scalar or hessian_coloring is not None
        if jacobian is None:
            jacobian = not scalar
        if hessian and not scalar:
            check_scalar_output(
                jax.tree.leaves(out_struct),
                caller,
                argument="fn",
                advice="A Hessian needs one; pass `hessian=False`.",
            )
        jac_comp = hess_comp = None
        if jacobian or jacobian_coloring is not None:
            if jacobian_coloring is None:
                from ._colorings import jacobian_coloring as detect

                jacobian_coloring = detect(
                    fn, y, args, mode=mode, holomorphic=lineax_holomorphic(y)
                )
            check_coloring(jacobian_coloring, caller, hessian=False, shape=(m, n))
            check_complex_coloring(y, out_struct, jacobian_coloring, caller)
            jac_comp = compression(jacobian_coloring)
        if hessian:
            if hessian_coloring is None:
                from ._colorings import hessian_coloring as detect_hessian

                hessian_coloring = detect_hessian(fn, y, args)
            check_coloring(hessian_coloring, caller, hessian=True, shape=(n, n))
            hess_comp = compression(hessian_coloring)
        self.fn_dynamic, self.fn_static = eqx.partition(fn, eqx.is_array)
        self.input_structure = flat_in
        self.output_structure = flat_out
        self.jacobian_compression = jac_comp
        self.hessian_compression = hess_comp

    # ------------------------------------------------------------------ basics

    @property
    def fn(self) -> Callable:
        """The wrapped function."""
        return eqx.combine(self.fn_dynamic, self.fn_static)

    @property
    def jacobian_coloring(self) -> ColoredPattern | None:
        """The [`asdex.ColoredPattern`][] of the Jacobian (or `None`)."""
        comp = self.jacobian_compression
        return None if comp is None else comp.coloring

    @property
    def hessian_coloring(self) -> ColoredPattern | None:
        """The [`asdex.ColoredPattern`][] of the Hessian (or `None`)."""
        comp = self.hessian_compression
        return None if comp is None else comp.coloring

    def __call__(self, y: PyTree[Array], args: PyTree[Any] = None) -> PyTree[Array]:
        """`fn(y, args)`."""
        return self.fn(y, args)

    def _check(self, y, method: str) -> None:
        got = Structure.of_tree(y)
        if got != self.input_structure:
            raise ValueError(
                f"`SparseFunction.{method}(y=...)`: `y` has structure "
                f"{got.treedef} with leaves {list(got.leaves)}, but the colorings were "
                f"detected for {self.input_structure.treedef} with leaves "
                f"{list(self.input_structure.leaves)}. Build a new `asdex.SparseFunction` "
                "for other shapes."
            )

    def _need(self, comp, what: str, method: str):
        if comp is None:
            raise ValueError(
                f"`SparseFunction.{method}`: this function was built without a {what} "
                f"coloring. Build it with `asdex.SparseFunction(fn, y, args, "
                f"{what}=True)`."
            )
        return comp

    # ------------------------------------------------------------------ operators

    def value_and_jacobian_operator(
        self,
        y: PyTree[Array],
        args: PyTree[Any] = None,
        tags: object | Iterable[object] = (),
    ) -> tuple[PyTree[Array], SparseJacobianOperator]:
        """`(fn(y, args), J)`, with the sparse Jacobian `J` at `y`.

        `fn` is evaluated once, by the same linearisation as the compressed
        products.

        **Arguments:**

        - `y`, `args`: the point; `y` must have the structure, shapes and dtypes of
            the sample the module was built with.
        - `tags`: Lineax tags for the operator (trusted, not checked).

        **Returns:**

        The output of `fn` and an [`asdex.SparseJacobianOperator`][asdex.SparseJacobianOperator].
        """
        self._check(y, "value_and_jacobian_operator")
        comp = self._need(
            self.jacobian_compression, "jacobian", "value_and_jacobian_operator"
        )
        tags = as_tags(tags)
        check_symmetric_tags(tags, comp.coloring, "SparseFunction.jacobian_operator")
        out, _, values = jacobian_values(self.fn, y, args, comp)
        operator = SparseJacobianOperator._from_values(
            values,
            comp,
            jax.eval_shape(lambda: y),
            jax.eval_shape(lambda: out),
            tags,
        )
        return out, operator

    def jacobian_operator(
        self,
        y: PyTree[Array],
        args: PyTree[Any] = None,
        tags: object | Iterable[object] = (),
    ) -> SparseJacobianOperator:
        """The sparse Jacobian of `fn` with respect to `y`, at `(y, args)`.

        **Arguments:** as for
        [`value_and_jacobian_operator`][asdex._function.SparseFunction.value_and_jacobian_operator].

        **Returns:** an [`asdex.SparseJacobianOperator`][asdex.SparseJacobianOperator].
        """
        return self.value_and_jacobian_operator(y, args, tags)[1]

    def value_grad_and_hessian_operator(
        self,
        y: PyTree[Array],
        args: PyTree[Any] = None,
        tags: object | Iterable[object] = (),
    ) -> tuple[Scalar, PyTree[Array], SparseHessianOperator]:
        """`(fn(y, args), ∇fn, H)` for a scalar `fn`, with the sparse Hessian `H`.

        All three come from one forward-over-reverse linearisation.

        **Arguments:**

        - `y`, `args`: the point.
        - `tags`: extra Lineax tags, such as `lineax.positive_semidefinite_tag`;
            `lineax.symmetric_tag` is always added.

        **Returns:**

        The value, the gradient (shaped like `y`) and an
        [`asdex.SparseHessianOperator`][asdex.SparseHessianOperator].
        """
        self._check(y, "value_grad_and_hessian_operator")
        comp = self._need(
            self.hessian_compression, "hessian", "value_grad_and_hessian_operator"
        )
        value, grad, _, values = hessian_values(self.fn, y, args, comp)
        operator = SparseHessianOperator._from_values(
            values, comp, jax.eval_shape(lambda: y), as_tags(tags)
        )
        return value, grad, operator

    def hessian_operator(
        self,
        y: PyTree[Array],
        args: PyTree[Any] = None,
        tags: object | Iterable[object] = (),
    ) -> SparseHessianOperator:
        """The sparse Hessian of the scalar `fn` at `(y, args)`.

        **Arguments:** as for
        [`value_grad_and_hessian_operator`][asdex._function.SparseFunction.value_grad_and_hessian_operator].

        **Returns:** an [`asdex.SparseHessianOperator`][asdex.SparseHessianOperator].
        """
        return self.value_grad_and_hessian_operator(y, args, tags)[2]

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | os.PathLike) -> None:
        """Write the colorings (patterns and colors) to a `.npz` file.

        The array leaves (the parameters inside `fn`) are not written: save them
        with `equinox.tree_serialise_leaves`.

        !!! Example

            ```python
            fn.save("colorings.npz")
            eqx.tree_serialise_leaves("leaves.eqx", fn)
            # later, or elsewhere:
            like = asdex.SparseFunction.load("colorings.npz", residuals, y, args)
            fn = eqx.tree_deserialise_leaves("leaves.eqx", like)
            ```
        """
        contents: dict[str, np.ndarray] = {
            "format": np.array(_FORMAT_NAME),
            "version": np.array(_FORMAT_VERSION),
        }
        for name, coloring in (
            ("jacobian", self.jacobian_coloring),
            ("hessian", self.hessian_coloring),
        ):
            if coloring is None:
                continue
            pattern = coloring.pattern
            contents[f"{name}_mode"] = np.array(coloring.mode)
            contents[f"{name}_shape"] = np.array(pattern.shape, dtype=np.int64)
            contents[f"{name}_rows"] = pattern.rows
            contents[f"{name}_cols"] = pattern.cols
            colors = coloring.colors
            if isinstance(colors, tuple):
                contents[f"{name}_col_colors"], contents[f"{name}_row_colors"] = colors
            else:
                contents[f"{name}_colors"] = colors
        np.savez_compressed(path, **contents)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        fn: Callable,
        y: PyTree[Array | jax.ShapeDtypeStruct],
        args: PyTree[Any] = None,
    ) -> SparseFunction:
        """Rebuild a `SparseFunction` from colorings written by [`save`][asdex._function.SparseFunction.save].

        Nothing is detected: the colorings are read from the file and checked
        against the shapes of `fn` at the samples `y` and `args`.

        **Arguments:**

        - `path`: the file.
        - `fn`, `y`, `args`: as for the constructor.

        **Returns:**

        A `SparseFunction`. Its array leaves are those of `fn`; use it as the
        `like` argument of `equinox.tree_deserialise_leaves` to restore saved ones.

        **Raises:** `ValueError` if the file was not written by `save`, or its
        colorings do not fit `fn` at these samples.
        """
        caller = f"asdex.SparseFunction.load({str(path)!r})"
        try:
            with np.load(path, allow_pickle=False) as data:
                contents = {k: data[k] for k in data.files}
        except Exception as err:  # noqa: BLE001 - zipfile, zlib and numpy all raise
            raise ValueError(f"`{caller}`: not a readable .npz file ({err}).") from err
        if str(contents.get("format", "")) != _FORMAT_NAME:
            raise ValueError(
                f"`{caller}`: the file was not written by `SparseFunction.save`."
            )
        if int(contents["version"]) != _FORMAT_VERSION:
            raise ValueError(
                f"`{caller}`: format version {int(contents['version'])} is not "
                f"supported (this asdex reads version {_FORMAT_VERSION})."
            )
        colorings = {}
        for name in ("jacobian", "hessian"):
            if f"{name}_mode" in contents:
                colorings[name] = _coloring_from(contents, name, caller)
        return cls(
            fn,
            y,
            args,
            jacobian="jacobian" in colorings,
            hessian="hessian" in colorings,
            jacobian_coloring=colorings.get("jacobian"),
            hessian_coloring=colorings.get("hessian"),
        )


def _coloring_from(contents: dict, name: str, caller: str) -> ColoredPattern:
    mode = str(contents[f"{name}_mode"])
    shape = tuple(int(s) for s in contents[f"{name}_shape"])
    try:
        pattern = SparsityPattern(
            contents[f"{name}_rows"], contents[f"{name}_cols"], shape
        )
        by_mode = {
            cls.mode: cls
            for cls in (
                ColumnColoringResult,
                RowColoringResult,
                StarColoringResult,
                AcyclicColoringResult,
                BicoloringResult,
            )
        }
        if mode not in by_mode:
            raise ValueError(f"unknown coloring mode {mode!r}")
        if by_mode[mode] is BicoloringResult:
            result = BicoloringResult(
                pattern,
                contents[f"{name}_row_colors"],
                contents[f"{name}_col_colors"],
            )
        else:
            result = by_mode[mode](pattern, contents[f"{name}_colors"])
    except (KeyError, ValueError, TypeError) as err:
        raise ValueError(
            f"`{caller}`: the {name} coloring in the file is corrupt ({err})."
        ) from err
    return ColoredPattern(result)
