"""Public checkers: is a coloring valid for its decompression?

These are independent of the coloring algorithms (plain vectorised numpy, no
shared code with the kernels), so that the tests can use them as oracles.

Each returns `True` or `False`. With `raise_on_failure=True` a failure raises a
`ValueError` that names the offending rows and columns instead. Arguments of the
wrong kind (a color array of the wrong length, a non-square pattern for a symmetric
check) always raise.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from jaxtyping import ArrayLike, Int
from scipy.sparse.csgraph import connected_components

from .._pattern import SparsityPattern

Colors = Int[ArrayLike, " vertices"]


def as_colors(colors, length: int, caller: str, name: str = "colors") -> np.ndarray:
    colors = np.asarray(colors)
    if colors.ndim != 1 or colors.shape[0] != length:
        raise ValueError(
            f"`{caller}({name}=...)` must be a one-dimensional array of length "
            f"{length}, got shape {colors.shape}."
        )
    if colors.size and not np.issubdtype(colors.dtype, np.integer):
        raise TypeError(
            f"`{caller}({name}=...)` must hold integers, got dtype {colors.dtype}."
        )
    return colors.astype(np.int64)


def _fail(message: str, raise_on_failure: bool) -> bool:
    if raise_on_failure:
        raise ValueError(message)
    return False


def _counts(groups: np.ndarray, colors: np.ndarray, width: int) -> np.ndarray:
    """For each entry, how many entries share its `(group, color)` pair."""
    keys = groups.astype(np.int64) * width + colors
    _, inverse, counts = np.unique(keys, return_inverse=True, return_counts=True)
    return counts[inverse]


def _width(*colors: np.ndarray) -> int:
    return int(max((c.max(initial=-1) for c in colors), default=-1)) + 2


def check_structurally_orthogonal(
    pattern: SparsityPattern,
    colors: Colors,
    partition: str = "column",
    *,
    raise_on_failure: bool = False,
) -> bool:
    """Whether `colors` is a valid column (or row) coloring of `pattern`.

    Columns of one color must be *structurally orthogonal*: no row has nonzeros in
    two of them (Curtis, Powell & Reid 1974). Then every nonzero `J[i, j]` is alone
    in the compressed entry `(J @ S)[i, colors[j]]`. For `partition="row"` the
    same holds with rows and columns swapped. Negative colors mean "in no seed"
    and are only allowed for empty columns (rows).

    **Arguments:**

    - `pattern`: the [`asdex.SparsityPattern`][] of the Jacobian.
    - `colors`: one integer per column (`partition="column"`, length `n`) or per
      row (`partition="row"`, length `m`).
    - `partition`: `"column"` (for JVPs) or `"row"` (for VJPs).
    - `raise_on_failure`: raise a `ValueError` naming the conflict instead of
      returning `False`.

    **Returns:** `True` if the coloring is valid, otherwise `False`.
    """
    caller = "check_structurally_orthogonal"
    if partition not in ("column", "row"):
        raise ValueError(
            f"`{caller}(partition={partition!r})` must be 'column' or 'row'."
        )
    m, n = pattern.shape
    if partition == "column":
        colors = as_colors(colors, n, caller)
        groups, members = pattern.rows, pattern.cols
        group_name, member_name = "row", "column"
    else:
        colors = as_colors(colors, m, caller)
        groups, members = pattern.cols, pattern.rows
        group_name, member_name = "column", "row"
    member_colors = colors[members]
    uncolored = np.flatnonzero(member_colors < 0)
    if uncolored.size:
        k = uncolored[0]
        return _fail(
            f"{member_name.capitalize()} {members[k]} has a nonzero (in "
            f"{group_name} {groups[k]}) but no color ({member_colors[k]}).",
            raise_on_failure,
        )
    counts = _counts(groups, member_colors, _width(colors))
    clash = np.flatnonzero(counts > 1)
    if clash.size:
        k = clash[0]
        same = np.flatnonzero(
            (groups == groups[k]) & (member_colors == member_colors[k])
        )
        a, b = int(members[same[0]]), int(members[same[1]])
        return _fail(
            f"{member_name.capitalize()}s {a} and {b} share color "
            f"{member_colors[k]} but both have a nonzero in {group_name} "
            f"{groups[k]}, so their entries there cannot be told apart.",
            raise_on_failure,
        )
    return True


def _check_square_symmetric(pattern: SparsityPattern, caller: str) -> None:
    if pattern.shape[0] != pattern.shape[1]:
        raise ValueError(
            f"`{caller}` needs a square symmetric pattern (a Hessian's), got shape "
            f"{pattern.shape}."
        )
    if not pattern.is_symmetric():
        raise ValueError(
            f"`{caller}` needs a symmetric pattern; symmetrize it with "
            "`pattern | pattern.T` if the matrix is symmetric."
        )


def check_symmetrically_orthogonal(
    pattern: SparsityPattern, colors: Colors, *, raise_on_failure: bool = False
) -> bool:
    """Whether `colors` allows direct decompression of a symmetric matrix.

    With `B = H @ S`, the nonzero `H[i, j]` can be read directly when column `j` is
    the only column of its color in row `i` (then `H[i, j] = B[i, colors[j]]`) or
    column `i` is the only one of its color in row `j` (then
    `H[i, j] = B[j, colors[i]]`). A coloring for which this holds for every
    nonzero is *symmetrically orthogonal* (Coleman & Moré 1984); every star
    coloring is (Gebremedhin, Manne & Pothen 2005, Theorem 4.6).

    **Arguments:**

    - `pattern`: a square symmetric [`asdex.SparsityPattern`][] (a Hessian's).
    - `colors`: one integer per column; negative only for vertices without
      nonzeros.
    - `raise_on_failure`: raise a `ValueError` naming the conflict instead of
      returning `False`.

    **Returns:** `True` if the coloring is valid, otherwise `False`.
    """
    caller = "check_symmetrically_orthogonal"
    _check_square_symmetric(pattern, caller)
    colors = as_colors(colors, pattern.shape[1], caller)
    rows, cols = pattern.rows, pattern.cols
    used = np.zeros(pattern.shape[0], bool)
    used[rows] = True
    if np.any(colors[used] < 0):
        v = int(np.flatnonzero(used & (colors < 0))[0])
        return _fail(
            f"Vertex {v} has nonzeros but no color ({colors[v]}).", raise_on_failure
        )
    width = _width(colors)
    keys = rows.astype(np.int64) * width + colors[cols]
    unique_keys, counts_per_key = np.unique(keys, return_counts=True)
    counts = counts_per_key[np.searchsorted(unique_keys, keys)]
    # For the entry (i, j): how many columns of color(i) row j has.
    mirror_keys = cols.astype(np.int64) * width + colors[rows]
    at = np.minimum(np.searchsorted(unique_keys, mirror_keys), unique_keys.size - 1)
    mirror_counts = np.where(unique_keys[at] == mirror_keys, counts_per_key[at], 0)
    bad = np.flatnonzero((counts != 1) & (mirror_counts != 1))
    if bad.size:
        k = bad[0]
        i, j = int(rows[k]), int(cols[k])
        if i == j:
            other = _other(rows, cols, colors, i, colors[i], exclude=i)
            return _fail(
                f"H[{i}, {i}] cannot be read directly: column {other} has the same "
                f"color {colors[i]} as column {i} and a nonzero in row {i}.",
                raise_on_failure,
            )
        other_i = _other(rows, cols, colors, i, colors[j], exclude=j)
        other_j = _other(rows, cols, colors, j, colors[i], exclude=i)
        return _fail(
            f"H[{i}, {j}] cannot be read directly: row {i} also has column "
            f"{other_i} of color {colors[j]} and row {j} also has column {other_j} "
            f"of color {colors[i]}.",
            raise_on_failure,
        )
    return True


def _other(rows, cols, colors, row, color, exclude):
    mask = (rows == row) & (colors[cols] == color) & (cols != exclude)
    return int(cols[np.flatnonzero(mask)[0]])


def check_acyclic(
    pattern: SparsityPattern, colors: Colors, *, raise_on_failure: bool = False
) -> bool:
    """Whether `colors` is an acyclic coloring of a symmetric pattern.

    An acyclic coloring is a distance-1 coloring of the adjacency graph (no
    nonzero `H[i, j]`, `i ≠ j`, joins two vertices of one color) in which the
    subgraph induced by any two colors is a forest. That is what substitution-based
    decompression needs (Coleman & Cai 1986).

    **Arguments:**

    - `pattern`: a square symmetric [`asdex.SparsityPattern`][] (a Hessian's).
    - `colors`: one integer per column; negative only for vertices without
      nonzeros.
    - `raise_on_failure`: raise a `ValueError` naming the conflict (two adjacent
      vertices of one color, or the vertices of a two-colored cycle) instead of
      returning `False`.

    **Returns:** `True` if the coloring is valid, otherwise `False`.
    """
    caller = "check_acyclic"
    _check_square_symmetric(pattern, caller)
    colors = as_colors(colors, pattern.shape[1], caller)
    if np.any(colors[pattern.rows] < 0):
        v = int(pattern.rows[np.flatnonzero(colors[pattern.rows] < 0)[0]])
        return _fail(
            f"Vertex {v} has nonzeros but no color ({colors[v]}).", raise_on_failure
        )
    off = pattern.rows != pattern.cols
    rows, cols = pattern.rows[off].astype(np.int64), pattern.cols[off].astype(np.int64)
    same = np.flatnonzero(colors[rows] == colors[cols])
    if same.size:
        i, j = int(rows[same[0]]), int(cols[same[0]])
        return _fail(
            f"Vertices {i} and {j} are adjacent (H[{i}, {j}] ≠ 0) but share color "
            f"{colors[i]}.",
            raise_on_failure,
        )
    if rows.size == 0:
        return True
    # Node (u, b) is vertex u inside the subgraph of colors {color(u), b}; the
    # two-colored subgraphs are then disjoint and can be checked all at once.
    width = _width(colors)
    node_keys, node_ids = np.unique(rows * width + colors[cols], return_inverse=True)
    upper = rows < cols
    mirror = np.searchsorted(node_keys, cols * width + colors[rows])
    a, b = node_ids[upper], mirror[upper]
    nnodes = node_keys.size
    graph = sp.coo_array((np.ones(a.size), (a, b)), shape=(nnodes, nnodes))
    ncomp, labels = connected_components(graph, directed=False)
    nodes_per = np.bincount(labels, minlength=ncomp)
    edges_per = np.bincount(labels[a], minlength=ncomp)
    cyclic = np.flatnonzero(edges_per >= nodes_per)
    if cyclic.size:
        comp = cyclic[0]
        members = np.flatnonzero(labels == comp)
        vertices = np.sort(node_keys[members] // width)
        pair = sorted({int(colors[vertices[0]]), int(node_keys[members[0]] % width)})
        shown = ", ".join(str(int(v)) for v in vertices[:12])
        more = "" if vertices.size <= 12 else f", ... ({vertices.size} in all)"
        return _fail(
            f"Colors {pair[0]} and {pair[1]} induce a cycle among vertices "
            f"[{shown}{more}], so substitution cannot decompress them.",
            raise_on_failure,
        )
    return True


def check_bicoloring(
    pattern: SparsityPattern,
    row_colors: Colors,
    col_colors: Colors,
    *,
    raise_on_failure: bool = False,
) -> bool:
    """Whether a row and a column coloring together allow direct decompression.

    Columns with a color `c ≥ 0` form the seed of JVP `c`, `B_fwd = J @ S_col`;
    rows with a color `r ≥ 0` form the seed of VJP `r`, `B_rev = S_rowᵀ @ J`.
    Negative colors are *neutral*: in no seed. Every nonzero `J[i, j]` must be
    readable from one side: column `j` colored and the only colored column of its
    color in row `i` (then `J[i, j] = B_fwd[i, col_colors[j]]`), or row `i`
    colored and the only colored row of its color in column `j` (then
    `J[i, j] = B_rev[row_colors[i], j]`). This is a star bicoloring (Coleman &
    Verma 1998; Gebremedhin, Manne & Pothen 2005, §6).

    **Arguments:**

    - `pattern`: the [`asdex.SparsityPattern`][] of the Jacobian.
    - `row_colors`: one integer per row (length `m`); negative for neutral rows.
    - `col_colors`: one integer per column (length `n`); negative for neutral
      columns.
    - `raise_on_failure`: raise a `ValueError` naming the entry that cannot be
      read instead of returning `False`.

    **Returns:** `True` if the bicoloring is valid, otherwise `False`.
    """
    caller = "check_bicoloring"
    m, n = pattern.shape
    row_colors = as_colors(row_colors, m, caller, "row_colors")
    col_colors = as_colors(col_colors, n, caller, "col_colors")
    rows, cols = pattern.rows, pattern.cols
    width = _width(row_colors, col_colors)
    cc, rc = col_colors[cols], row_colors[rows]
    # Count only colored partners: neutral ones are in no seed.
    fwd_count = np.zeros(cc.size, np.int64)
    rev_count = np.zeros(rc.size, np.int64)
    fwd_count[cc >= 0] = _counts(rows[cc >= 0], cc[cc >= 0], width)
    rev_count[rc >= 0] = _counts(cols[rc >= 0], rc[rc >= 0], width)
    fwd_ok = (cc >= 0) & (fwd_count == 1)
    rev_ok = (rc >= 0) & (rev_count == 1)
    bad = np.flatnonzero(~(fwd_ok | rev_ok))
    if bad.size:
        k = bad[0]
        i, j = int(rows[k]), int(cols[k])
        reasons = []
        if cc[k] < 0:
            reasons.append(f"column {j} is neutral")
        else:
            clash = cols[(rows == i) & (col_colors[cols] == cc[k]) & (cols != j)]
            reasons.append(
                f"row {i} also has column {int(clash[0])} of column color {cc[k]}"
            )
        if rc[k] < 0:
            reasons.append(f"row {i} is neutral")
        else:
            clash = rows[(cols == j) & (row_colors[rows] == rc[k]) & (rows != i)]
            reasons.append(
                f"column {j} also has row {int(clash[0])} of row color {rc[k]}"
            )
        return _fail(
            f"J[{i}, {j}] can be read from neither side: {reasons[0]}, and "
            f"{reasons[1]}.",
            raise_on_failure,
        )
    return True
