"""The argument and output layout of a sparse derivative, and the checks made on each call.

A sparse derivative is built for sample arguments and is only valid for arguments of
the same structure, shapes and dtypes: the sparsity pattern (and hence the coloring)
depends on them. The [`Layout`][] records them, checks every call against them, and
turns the user's function into a function of the differentiated leaves alone, in
the flat order of the pattern's columns (leaves in `jax.tree_util` order, argnums
in the order given, each leaf row-major).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np

from .._trace import Traced, is_array_leaf, normalize_argnums
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


@dataclasses.dataclass(frozen=True, eq=False)
class Layout:
    """How the arguments and outputs of `f` map to the rows and columns of the pattern.

    Compared and hashed by identity: one layout belongs to one built derivative.

    - `args_tree`: the structure of `(args, kwargs)` of the samples.
    - `kinds`: for every leaf of `(args, kwargs)`: `"diff"` (differentiated),
      `"array"` (a dynamic, non-differentiated array) or `"static"` (anything else,
      closed over as a constant, as in `jax.jacobian`).
    - `avals`: `jax.ShapeDtypeStruct` of each diff or array leaf, `None` for static.
    - `statics`: the value of each static leaf (`None` for the others).
    - `paths`: a readable name of each leaf, for error messages.
    - `diff_positions`: positions of the differentiated leaves, in column order.
    - `in_tree`: `jax.jacobian`'s nesting of the differentiated inputs: the tree of
      the argument for an integer `argnums`, a tuple of trees for a tuple.
    - `out_tree`, `out_avals`: the structure and leaves of `f`'s output.
    """

    caller: str
    n_args: int
    args_tree: Any
    kinds: tuple[str, ...]
    avals: tuple[jax.ShapeDtypeStruct | None, ...]
    statics: tuple[Any, ...]
    paths: tuple[str, ...]
    diff_positions: tuple[int, ...]
    in_tree: Any
    out_tree: Any
    out_avals: tuple[jax.ShapeDtypeStruct, ...]
    has_aux: bool

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
        if single:
            in_tree = arg_trees[nums[0]]
        else:
            in_tree = jtu.tree_structure(
                tuple(
                    jtu.tree_unflatten(arg_trees[a], [0] * arg_trees[a].num_leaves)
                    for a in nums
                )
            )
        assert traced.out_tree is not None
        return cls(
            caller=caller,
            n_args=len(args),
            args_tree=args_tree,
            kinds=tuple(kinds),
            avals=tuple(avals),
            statics=tuple(statics),
            paths=tuple(paths),
            diff_positions=diff_positions,
            in_tree=in_tree,
            out_tree=traced.out_tree,
            out_avals=tuple(traced.out_leaves if out_avals is None else out_avals),
            has_aux=has_aux,
        )

    # ------------------------------------------------------------- properties

    @property
    def in_avals(self) -> tuple[jax.ShapeDtypeStruct, ...]:
        return tuple(self.avals[p] for p in self.diff_positions)  # pyright: ignore

    @property
    def in_shapes(self) -> tuple[tuple[int, ...], ...]:
        return tuple(tuple(a.shape) for a in self.in_avals)

    @property
    def in_sizes(self) -> tuple[int, ...]:
        return tuple(_size(a.shape) for a in self.in_avals)

    @property
    def out_shapes(self) -> tuple[tuple[int, ...], ...]:
        return tuple(tuple(a.shape) for a in self.out_avals)

    @property
    def out_sizes(self) -> tuple[int, ...]:
        return tuple(_size(a.shape) for a in self.out_avals)

    @property
    def n(self) -> int:
        return sum(self.in_sizes)

    @property
    def m(self) -> int:
        return sum(self.out_sizes)

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
        # Standard promotion: leaves of several precisions under strict promotion
        # have no common type otherwise.
        with jax.numpy_dtype_promotion("standard"):
            return jnp.result_type(*[a.dtype for a in self.in_avals])

    hessian_dtype = input_dtype

    # ------------------------------------------------------------- calls

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

    def input_parts(self, leaves, dtype) -> list[jax.Array]:
        """Per-primal leaves in their own shapes, as `dtype` (see `output_parts`)."""
        return _parts(list(leaves), self.in_avals, dtype)

    def unravel_inputs(self, vector: jax.Array) -> list:
        """Per-primal tangents from a flat `(n,)` vector, in each leaf's dtype."""
        return _unravel(vector, self.in_avals)

    def unravel_outputs(self, vector: jax.Array):
        """An output-shaped cotangent from a flat `(m,)` vector (float0 for integers)."""
        return jtu.tree_unflatten(self.out_tree, _unravel(vector, self.out_avals))


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


def check_coloring_samples(coloring, args: tuple, caller: str) -> None:
    """Refuse a precomputed coloring whose constants differ from `args`'.

    `coloring` came from `asdex.jacobian_coloring(fn, *samples)` (or
    `hessian_coloring`), which records the samples' layout on it; `args` are the
    positional arguments it is now used with. A non-array leaf (a Python `shift`
    for `jnp.roll`, say) is a constant baked into the pattern, exactly as for
    `asdex.jacobian`'s own calls (`Layout.check_call`), so another value makes the
    coloring wrong, silently. Colorings made otherwise carry no samples and are not
    checked; nor are arguments of another structure, which the shape check catches.
    """
    layout = getattr(coloring, "_samples", None)
    if layout is None:
        return
    leaves, tree = jtu.tree_flatten((tuple(args), {}))
    if tree != layout.args_tree:
        return
    stale = layout.stale_static(leaves)
    if stale is not None:
        path, got, sample = stale
        made_by = layout.caller
        raise ValueError(
            f"`{caller}(coloring=...)` was detected by `{made_by}` with {path} = "
            f"{sample!r}, but it is now used with {got!r} there (argument 0 is `y`, "
            "argument 1 is `args`). Leaves that are not "
            "arrays are constants baked into the sparsity pattern, so the coloring "
            f"may be wrong for the new value. Build it again with `{made_by}` for "
            "these arguments, or pass the value as an array (for example "
            f"`jnp.asarray(value)`) both to `{made_by}` and here."
        )
