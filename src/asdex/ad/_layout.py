"""How the inputs and outputs of a function map to the rows and columns of a pattern.

Everything that turns PyTrees into the flat vectors of a pattern, and back, reads
one type, [`Layout`][]: the entry points (`asdex.jacobian` and friends), the
compressed-AD engine (`_compressed.py`), the output formats (`_formats.py`), the
Lineax operators and `asdex.SparseFunction`. A layout is built from the
[`Structure`][] of the differentiated inputs and of the outputs: a PyTree of
`jax.ShapeDtypeStruct`s, laid out flat with its leaves in `jax.tree_util` order,
each row-major (Lineax's own order, as in `PyTreeLinearOperator.as_matrix`).

A sparse derivative is built for sample arguments and is only valid for arguments of
the same structure, shapes and dtypes: the sparsity pattern (and hence the coloring)
depends on them. The layout of an entry point (`Layout.from_traced`) records them
as its [`Samples`][], which check every call and turn the user's function into a
function of the differentiated leaves alone, in the flat order of the pattern's
columns (argnums in the order given). The layout of a function of one PyTree `y`,
as Lineax's operators take it, is `Layout.of_structures`: it has no samples, as an
operator checks its own arguments. That of a gradient, whose Jacobian is the
Hessian, is `layout.gradient`.
"""

from __future__ import annotations

import dataclasses
import functools as ft
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
from jaxtyping import Array, PyTree

from .._trace import Traced, differentiated_tree, is_array_leaf, normalize_argnums
from ._complex import complex_dtype

_DIFF, _ARRAY, _STATIC = "diff", "array", "static"


def _describe(aval) -> str:
    return f"shape {tuple(aval.shape)} and dtype {np.dtype(aval.dtype).name}"


def _size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64))


def _same_static(a, b) -> bool:
    if a is b:
        return True
    try:
        same = a == b
        return isinstance(same, (bool, np.bool_)) and bool(same)
    except Exception:
        return False


@dataclasses.dataclass(frozen=True)
class Structure:
    """A PyTree of `jax.ShapeDtypeStruct`s, stored flat: hashable, compared by
    value, and usable as a static field. The inputs and outputs of a `Layout`, and
    the spaces of `asdex.lineax.SparseMatrixOperator`.

    Its flat vector has the leaves in `jax.tree_util` order, each row-major.
    """

    leaves: tuple[jax.ShapeDtypeStruct, ...]
    treedef: Any

    @classmethod
    def of(cls, structure: PyTree[jax.ShapeDtypeStruct]) -> Structure:
        """The space of a Lineax operator: `structure`'s leaves with inexact,
        strong dtypes (integer leaves become the default float)."""
        treedef = jtu.tree_structure(structure)
        leaves = []
        for leaf in jtu.tree_leaves(structure):
            if not hasattr(leaf, "shape") or not hasattr(leaf, "dtype"):
                raise TypeError(
                    "Operator structures must be PyTrees of `jax.ShapeDtypeStruct`s "
                    f"(for example `jax.eval_shape(lambda: y)`), got a leaf {leaf!r}."
                )
            dtype = leaf.dtype
            if not jnp.issubdtype(dtype, jnp.inexact):
                dtype = jnp.result_type(float)
            # Weak types would make `linear_solve`'s structure comparison fail.
            leaves.append(jax.ShapeDtypeStruct(tuple(leaf.shape), dtype))
        return cls(tuple(leaves), treedef)

    @classmethod
    def of_tree(cls, tree: PyTree) -> Structure:
        """`Structure.of` the shapes and dtypes of a PyTree of arrays."""
        return cls.of(jax.eval_shape(lambda: tree))

    def tree(self) -> PyTree[jax.ShapeDtypeStruct]:
        return jtu.tree_unflatten(self.treedef, list(self.leaves))

    @property
    def shapes(self) -> tuple[tuple[int, ...], ...]:
        return tuple(tuple(leaf.shape) for leaf in self.leaves)

    @property
    def size(self) -> int:
        return sum(_size(leaf.shape) for leaf in self.leaves)

    @property
    def offsets(self) -> np.ndarray:
        """Where each leaf starts in the flat vector, and its length last."""
        sizes = [_size(shape) for shape in self.shapes]
        return np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])

    def dtype(self):
        """The leaves' promoted dtype (standard promotion: leaves of several
        precisions have none under strict promotion)."""
        if not self.leaves:
            return jnp.result_type(float)
        with jax.numpy_dtype_promotion("standard"):
            return jnp.result_type(*[leaf.dtype for leaf in self.leaves])

    def leaves_of(self, tree: PyTree[Array]) -> list[Array]:
        """The leaves of `tree`, after checking that it is laid out as `self`."""
        leaves = jtu.tree_leaves(tree)
        if jtu.tree_structure(tree) != self.treedef or len(leaves) != len(self.leaves):
            raise ValueError(
                "The vector's PyTree structure does not match the operator's: "
                f"expected {self.treedef}, got {jtu.tree_structure(tree)}."
            )
        for leaf, struct in zip(leaves, self.leaves, strict=True):
            if jnp.shape(leaf) != tuple(struct.shape):
                raise ValueError(
                    f"The vector has a leaf of shape {jnp.shape(leaf)} where the "
                    f"operator expects shape {tuple(struct.shape)}."
                )
        return leaves

    def ravel(self, tree: PyTree[Array], dtype=None) -> Array:
        """The leaves of `tree` (laid out as `self`) concatenated into one vector,
        of their promoted dtype unless `dtype` is given."""
        leaves = self.leaves_of(tree)
        if dtype is None:
            with jax.numpy_dtype_promotion("standard"):
                dtype = jnp.result_type(*leaves) if leaves else self.dtype()
        if not leaves:
            return jnp.zeros((0,), dtype)
        return ravel_parts([jnp.asarray(leaf).astype(dtype) for leaf in leaves])

    def unravel(self, vector: Array) -> PyTree[Array]:
        """Split a vector into leaves of `self`'s shapes and dtypes (the real part
        for real leaves)."""
        return jtu.tree_unflatten(self.treedef, _unravel(vector, self.leaves))


@dataclasses.dataclass(frozen=True, eq=False)
class Samples:
    """The sample arguments an entry point was built with, which its calls are
    checked against (`check_call`).

    - `caller`: the entry point, for messages.
    - `n_args`: the number of positional arguments.
    - `args_tree`: the structure of `(args, kwargs)` of the samples.
    - `kinds`: for every leaf of `(args, kwargs)`: `"diff"` (differentiated),
      `"array"` (a dynamic, non-differentiated array) or `"static"` (anything else,
      closed over as a constant, as in `jax.jacobian`).
    - `avals`: `jax.ShapeDtypeStruct` of each diff or array leaf, `None` for static.
    - `statics`: the value of each static leaf (`None` for the others).
    - `paths`: a readable name of each leaf, for error messages.
    - `diff_positions`: positions of the differentiated leaves, in column order.
    - `has_aux`: whether `f` returns a pair `(output, aux)`.
    """

    caller: str
    n_args: int
    args_tree: Any
    kinds: tuple[str, ...]
    avals: tuple[jax.ShapeDtypeStruct | None, ...]
    statics: tuple[Any, ...]
    paths: tuple[str, ...]
    diff_positions: tuple[int, ...]
    has_aux: bool

    def stale_static(self, leaves: list) -> tuple[str, Any, Any] | None:
        """The first static leaf that differs from the samples' (`leaves` in the
        samples' flat order): `(path, value, sample)`, or `None`."""
        for pos, (leaf, kind) in enumerate(zip(leaves, self.kinds, strict=True)):
            if kind == _STATIC and not _same_static(leaf, self.statics[pos]):
                return self.paths[pos], leaf, self.statics[pos]
        return None

    def check_call(self, args: tuple, kwargs: dict) -> list:
        """Check a call against the samples; return the leaves of `(args, kwargs)`.

        Python numbers given for differentiated scalar leaves become arrays of the
        sample's dtype.
        """
        caller = self.caller
        if len(args) != self.n_args:
            raise TypeError(
                f"The function built by `{caller}` takes {self.n_args} positional "
                f"argument(s), like the sample arguments it was built with; it was "
                f"called with {len(args)}."
            )
        leaves, tree = jtu.tree_flatten((tuple(args), dict(kwargs)))
        if tree != self.args_tree:
            raise TypeError(
                f"The function built by `{caller}` was called with arguments of "
                f"another structure than its samples.\nexpected: {self.args_tree}\n"
                f"got:      {tree}\nThe sparsity pattern depends on the structure: "
                f"build a new one with `{caller}` for these arguments."
            )
        out = list(leaves)
        stale = self.stale_static(leaves)
        if stale is not None:
            path, got, sample = stale
            raise ValueError(
                f"The function built by `{caller}` was called with "
                f"{path} = {got!r}, but its samples had "
                f"{sample!r} there. Leaves that are not arrays are "
                "constants baked into the sparsity pattern. To vary it, pass "
                "it as an array (for example `jnp.asarray(value)`) both in "
                f"the samples given to `{caller}` and in the calls."
            )
        for pos, (leaf, kind) in enumerate(zip(leaves, self.kinds, strict=True)):
            if kind == _STATIC:
                continue
            aval = self.avals[pos]
            assert aval is not None
            if not isinstance(leaf, jax.Array | np.ndarray | np.generic):
                if isinstance(leaf, (int, float, complex)) and aval.shape == ():
                    leaf = jnp.asarray(leaf, dtype=aval.dtype)
                    out[pos] = leaf
                else:
                    raise TypeError(
                        f"The function built by `{caller}` needs an array for "
                        f"{self.paths[pos]} (of {_describe(aval)}, as in its samples),"
                        f" got {type(leaf).__name__}."
                    )
            shape, dtype = tuple(np.shape(leaf)), jnp.result_type(leaf)
            if shape != tuple(aval.shape) or dtype != aval.dtype:
                hint = ""
                if kind == _DIFF and not jnp.issubdtype(dtype, jnp.inexact):
                    hint = (
                        " Only floating inputs can be differentiated: cast it, e.g. "
                        "`x.astype(jnp.float32)`."
                    )
                raise ValueError(
                    f"The function built by `{caller}` was called with "
                    f"{self.paths[pos]} of shape {shape} and dtype "
                    f"{np.dtype(dtype).name}, but it was built for "
                    f"{_describe(aval)}. The sparsity pattern and its coloring hold "
                    f"for one shape and dtype only: build a new one with `{caller}` "
                    f"for these arguments.{hint}"
                )
        return out

    def split_leaves(self, leaves: list) -> tuple[list, list]:
        """`(primals, others)`: the differentiated leaves, and all leaves with `None`
        in the differentiated positions."""
        primals = [leaves[p] for p in self.diff_positions]
        others = list(leaves)
        for p in self.diff_positions:
            others[p] = None
        return primals, others

    def function_of_primals(self, fn: Callable, others: list) -> Callable:
        """`fn` as a function of the differentiated leaves, returning `(out, aux)`."""
        caller = self.caller

        def g(*primals):
            leaves = list(others)
            for p, v in zip(self.diff_positions, primals, strict=True):
                leaves[p] = v
            args, kwargs = jtu.tree_unflatten(self.args_tree, leaves)
            out = fn(*args, **kwargs)
            if self.has_aux:
                if not (isinstance(out, tuple) and len(out) == 2):
                    raise TypeError(
                        f"`{caller}(has_aux=True)`: `f` must return a pair "
                        f"(output, aux), got {type(out).__name__}."
                    )
                return out
            return out, None

        return g


@dataclasses.dataclass(frozen=True, eq=False)
class Layout:
    """How the arguments and outputs of `f` map to the rows and columns of the pattern.

    Compared and hashed by identity: one layout belongs to one built derivative or
    operator.

    - `inputs`: the differentiated inputs, nested as `jax.jacobian` nests them (the
      tree of the argument for an integer `argnums`, a tuple of trees for a tuple);
      the pattern's columns.
    - `outputs`: `f`'s output; the pattern's rows.
    - `primal_tree`: the structure of the linear map's positional arguments, a
      tuple: one leaf each for an entry point (its function of the differentiated
      leaves, `Samples.function_of_primals`), one tree for a function of one PyTree.
    - `samples`: an entry point's [`Samples`][]; `None` for a function of one PyTree
      (`of_structures`).
    """

    inputs: Structure
    outputs: Structure
    primal_tree: Any
    samples: Samples | None = None

    # ------------------------------------------------------------- construction

    @classmethod
    def from_traced(
        cls,
        traced: Traced,
        args: Sequence,
        kwargs: dict,
        argnums,
        has_aux: bool,
        caller: str,
        out_avals: Sequence[jax.ShapeDtypeStruct] | None = None,
    ) -> Layout:
        """The layout of `traced`; `out_avals` overrides its outputs (for Hessians,
        whose traced function is the gradient)."""
        nums, single = normalize_argnums(argnums, len(args), caller)
        flat, args_tree = jtu.tree_flatten_with_path((tuple(args), dict(kwargs)))
        arg_trees = [jtu.tree_structure(a) for a in args]
        owner = [a for a, t in enumerate(arg_trees) for _ in range(t.num_leaves)]
        owner += [None] * (len(flat) - len(owner))
        # `trace` numbers its jaxpr inputs the same way: every array leaf, and every
        # leaf of a differentiated argument, in flattening order.
        kinds, avals, statics, paths = [], [], [], []
        dyn_position = []
        diff_by_arg: dict[int, list[int]] = {a: [] for a in nums}
        for pos, ((path, leaf), a) in enumerate(zip(flat, owner, strict=True)):
            paths.append(_leaf_name(path))
            if a in diff_by_arg:
                diff_by_arg[a].append(pos)
                kinds.append(_DIFF)
            elif is_array_leaf(leaf):
                kinds.append(_ARRAY)
            else:
                kinds.append(_STATIC)
            if kinds[-1] == _STATIC:
                avals.append(None)
                statics.append(leaf)
            else:
                dyn_position.append(pos)
                avals.append(None)
                statics.append(None)
        for pos, aval in zip(dyn_position, traced.in_avals, strict=True):
            avals[pos] = jax.ShapeDtypeStruct(aval.shape, aval.dtype)
        diff_positions = tuple(p for a in nums for p in diff_by_arg[a])
        in_tree = differentiated_tree(arg_trees, nums, single=single)
        assert traced.out_tree is not None
        out_leaves = tuple(traced.out_leaves if out_avals is None else out_avals)
        samples = Samples(
            caller=caller,
            n_args=len(args),
            args_tree=args_tree,
            kinds=tuple(kinds),
            avals=tuple(avals),
            statics=tuple(statics),
            paths=tuple(paths),
            diff_positions=diff_positions,
            has_aux=has_aux,
        )
        return cls(
            inputs=Structure(tuple(avals[p] for p in diff_positions), in_tree),  # pyright: ignore
            outputs=Structure(out_leaves, traced.out_tree),
            primal_tree=jtu.tree_structure((0,) * len(diff_positions)),
            samples=samples,
        )

    @classmethod
    def of_structures(cls, inputs: Structure, outputs: Structure) -> Layout:
        """The layout of a function of one PyTree `y` (an operator's `fn(y, args)`,
        or its `mv`): `inputs` is `y`'s structure, `outputs` its output's. It has
        no samples: an operator checks its own arguments."""
        return cls(inputs, outputs, jtu.tree_structure((inputs.tree(),)))

    @ft.cached_property
    def gradient(self) -> Layout:
        """This layout seen as its gradient's, whose Jacobian is the Hessian: the
        outputs are the inputs (one per primal, in the inputs' dtype)."""
        return dataclasses.replace(self, outputs=self.inputs)

    # ------------------------------------------------------------- properties

    @property
    def in_avals(self) -> tuple[jax.ShapeDtypeStruct, ...]:
        return self.inputs.leaves

    @property
    def out_avals(self) -> tuple[jax.ShapeDtypeStruct, ...]:
        return self.outputs.leaves

    @property
    def n(self) -> int:
        return self.inputs.size

    @property
    def m(self) -> int:
        return self.outputs.size

    @property
    def single(self) -> bool:
        """Whether the matrix is one block: one output leaf and one input leaf."""
        return len(self.out_avals) == 1 and len(self.in_avals) == 1

    def nest(self, blocks: list):
        """Blocks listed output-leaf-major (one per output leaf and input leaf),
        nested like `jax.jacobian`'s result."""
        out_tree, in_tree = self.outputs.treedef, self.inputs.treedef
        if self.single and out_tree.num_nodes == 1 and in_tree.num_nodes == 1:
            return blocks[0]
        k = len(self.in_avals)
        rows = [
            jtu.tree_unflatten(in_tree, blocks[o * k : (o + 1) * k])
            for o in range(len(self.out_avals))
        ]
        return jtu.tree_unflatten(out_tree, rows)

    def jacobian_dtype(self):
        """The dtype of the derivative's values: the outputs' promoted float dtype,
        complex if an input is complex (VJPs give complex cotangents there)."""
        inexact = [
            a.dtype for a in self.out_avals if jnp.issubdtype(a.dtype, jnp.inexact)
        ]
        with jax.numpy_dtype_promotion("standard"):
            dtype = jnp.result_type(*(inexact or [a.dtype for a in self.in_avals]))
        if any(jnp.issubdtype(a.dtype, jnp.complexfloating) for a in self.in_avals):
            return complex_dtype(dtype)
        return dtype

    def input_dtype(self):
        """The differentiated inputs' promoted dtype (a Hessian's values')."""
        return self.inputs.dtype()

    hessian_dtype = input_dtype

    # ------------------------------------------------------------- flat vectors

    def ravel_outputs(self, out, dtype) -> jax.Array:
        """The flat `(m,)` vector of an output pytree (tangents: zeros for float0)."""
        return ravel_parts(self.output_parts(out, dtype))

    def ravel_inputs(self, leaves, dtype) -> jax.Array:
        """The flat `(n,)` vector of per-primal leaves (cotangents, HVPs)."""
        return ravel_parts(self.input_parts(leaves, dtype))

    def output_parts(self, out, dtype) -> list[jax.Array]:
        """The leaves of an output pytree in their own shapes, as `dtype` (zeros for
        float0 and integer outputs): `ravel_outputs` before the flattening."""
        return _parts(jtu.tree_leaves(out), self.out_avals, dtype)

    def input_parts(self, cotangents, dtype) -> list[jax.Array]:
        """The inputs' leaves in their own shapes, as `dtype`, from one cotangent
        (or gradient) per primal (see `output_parts`)."""
        return _parts(jtu.tree_leaves(cotangents), self.in_avals, dtype)

    def unravel_inputs(self, vector: jax.Array) -> list:
        """One tangent per primal, from a flat `(n,)` vector, in each leaf's dtype."""
        return list(
            jtu.tree_unflatten(self.primal_tree, _unravel(vector, self.in_avals))
        )

    def unravel_outputs(self, vector: jax.Array):
        """An output-shaped cotangent from a flat `(m,)` vector (float0 for integers)."""
        return jtu.tree_unflatten(
            self.outputs.treedef, _unravel(vector, self.out_avals)
        )


def _leaf_name(path) -> str:
    # path[0] is the (args, kwargs) index; path[1] the argument index or kwarg name.
    if len(path) < 2:
        return "an argument"
    where = path[1]
    if path[0].idx == 0:
        name = f"argument {where.idx}"
    else:
        name = f"keyword argument {where.key!r}"
    rest = jtu.keystr(tuple(path[2:])) if len(path) > 2 else ""
    return f"{name}{' (leaf ' + rest + ')' if rest else ''}"


def _parts(leaves, avals, dtype) -> list[jax.Array]:
    parts = []
    for leaf, aval in zip(leaves, avals, strict=True):
        if leaf.dtype == jax.dtypes.float0 or not jnp.issubdtype(
            aval.dtype, jnp.inexact
        ):
            parts.append(jnp.zeros(aval.shape, dtype))
        else:
            parts.append(jnp.asarray(leaf).astype(dtype))
    return parts or [jnp.zeros(0, dtype)]


def ravel_parts(parts: list[jax.Array]) -> jax.Array:
    """One flat vector from arrays of any shapes (see `_layout.ravel_stacked`)."""
    flat = [jnp.ravel(p) for p in parts]
    return flat[0] if len(flat) == 1 else jnp.concatenate(flat)


def ravel_stacked(parts: list[jax.Array]) -> jax.Array:
    """`(c, size)` from arrays of shapes `(c, ...)`: stacked products, flattened.

    Products are stacked in their own shapes and flattened only afterwards. XLA's
    CPU compiler fuses a 2-D stencil product that is raveled on its own into the
    1-D concatenation that stacks it, and then recomputes it element by element
    with index arithmetic: four HVPs of the 512 × 512 Bratu energy take 2.6 ms so,
    and 0.5 ms stacked first.
    """
    c = parts[0].shape[0]
    flat = [p.reshape(c, math.prod(p.shape[1:])) for p in parts]
    return flat[0] if len(flat) == 1 else jnp.concatenate(flat, axis=1)


def _unravel(vector, avals) -> list:
    out, offset = [], 0
    for aval in avals:
        size = _size(aval.shape)
        if jnp.issubdtype(aval.dtype, jnp.inexact):
            if len(avals) == 1:
                piece = vector
            else:
                piece = jax.lax.slice_in_dim(vector, offset, offset + size)
            if not jnp.issubdtype(aval.dtype, jnp.complexfloating):
                # A real leaf's share of a complex seed (its imaginary part is 0).
                piece = jnp.real(piece)
            out.append(piece.reshape(aval.shape).astype(aval.dtype))
        else:
            out.append(np.zeros(aval.shape, dtype=jax.dtypes.float0))
        offset += size
    return out


def samples_of(layout: Layout) -> Samples:
    """An entry point's samples: its layout (`Layout.from_traced`) always has them."""
    assert layout.samples is not None, "a layout from `Layout.of_structures`"
    return layout.samples


def check_coloring_samples(coloring, args: tuple, caller: str) -> None:
    """Refuse a precomputed coloring whose constants differ from `args`'.

    `coloring` came from `asdex.jacobian_coloring(fn, *samples)` (or
    `hessian_coloring`), which records its `Samples` on it; `args` are the
    positional arguments it is now used with. A non-array leaf (a Python `shift`
    for `jnp.roll`, say) is a constant baked into the pattern, exactly as for
    `asdex.jacobian`'s own calls (`Samples.check_call`), so another value makes the
    coloring wrong, silently. Colorings made otherwise carry no samples and are not
    checked; nor are arguments of another structure, which the shape check catches.
    """
    samples = getattr(coloring, "_samples", None)
    if samples is None:
        return
    leaves, tree = jtu.tree_flatten((tuple(args), {}))
    if tree != samples.args_tree:
        return
    stale = samples.stale_static(leaves)
    if stale is not None:
        path, got, sample = stale
        made_by = samples.caller
        raise ValueError(
            f"`{caller}(coloring=...)` was detected by `{made_by}` with {path} = "
            f"{sample!r}, but it is now used with {got!r} there (argument 0 is `y`, "
            "argument 1 is `args`). Leaves that are not "
            "arrays are constants baked into the sparsity pattern, so the coloring "
            f"may be wrong for the new value. Build it again with `{made_by}` for "
            "these arguments, or pass the value as an array (for example "
            f"`jnp.asarray(value)`) both to `{made_by}` and here."
        )
