"""`asdex.spy`: matplotlib pictures of sparsity patterns and of their colorings.

The braille `repr` of [`asdex.ColoredPattern`][] is a text picture; this is the
same picture drawn with matplotlib, for notebooks and papers. matplotlib is an
optional dependency (the `plot` extra), imported only when `spy` is called.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from ._colored import ColoredPattern
from ._pattern import SparsityPattern
from .coloring._result import BicoloringResult, RowColoringResult

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Above this many nonzeros, or `max_size` rows or columns, a panel is drawn as a
# density image: one marker per nonzero would take seconds and draw below a pixel.
_MAX_MARKERS = 250_000
# Blocks along each side of a density image; more than the pixels of a panel at
# screen resolution gains nothing.
_DENSITY_BLOCKS = 400
# The longer side of the pattern's panel, its shorter side at least (room for
# the title), and the narrowest compressed panel.
_PATTERN_INCHES = 4.5
_MIN_PATTERN_INCHES = 3.3
_MIN_PANEL_INCHES = 0.9

_INSTALL_HINT = (
    "`asdex.spy` draws with matplotlib, which asdex does not install by itself. "
    'Install it with `pip install "asdex[plot]"` (or `pip install matplotlib`, '
    "or `uv add matplotlib` in a uv project)."
)


@dataclass(frozen=True)
class _Panel:
    """One matrix to draw: its entries, and each entry's color group (or none)."""

    rows: np.ndarray
    cols: np.ndarray
    shape: tuple[int, int]
    groups: np.ndarray | None
    title: str
    place: str  # "main", "right" (shares the rows) or "below" (shares the columns)


def spy(
    obj: Any,
    *,
    compressed: bool = True,
    ax: Axes | Sequence[Axes] | None = None,
    markersize: float | None = None,
    max_size: int = 2000,
    title: str | None = None,
) -> Figure:
    """Draw a sparsity pattern with matplotlib, and for a coloring its compressed form.

    A [`asdex.SparsityPattern`][] is drawn as one square marker per structural
    nonzero, like `matplotlib.pyplot.spy`, with row 0 at the top. A coloring
    ([`asdex.ColoredPattern`][], or the [`asdex.SparseJacobian`][] /
    [`asdex.SparseHessian`][] that [`asdex.jacobian`][] and [`asdex.hessian`][]
    return) colors every nonzero by the product it is read from, and draws the
    compressed matrix those products fill next to it, in the same colors: the way
    the braille `repr` does.

    - `"fwd"`: nonzeros colored by their column's color; to the right,
      `B = J S` of shape `(m, c)`, one column per JVP.
    - `"rev"`: nonzeros colored by their row's color; below, `B = Sᵀ J` of shape
      `(c, n)`, one row per VJP.
    - `"star"`, `"acyclic"`: nonzeros colored by their column's color; to the right,
      `B = H S` of shape `(n, c)`, one column per HVP.
    - `"bidirectional"`: nonzeros colored by the product they are read from; to the
      right `B_fwd = J S_col` (the JVPs) and below `B_rev = S_rowᵀ J` (the VJPs),
      the VJPs' colors following the JVPs'.

    A panel with more than `max_size` rows or columns, or more than 250,000
    nonzeros, is drawn instead as a density image: the matrix is cut into blocks
    (at most 400 along a side), empty blocks are blank and the others more opaque
    the more nonzeros they hold (on a logarithmic scale), in black or, for a
    coloring, in the mean color of their nonzeros. Its title says so.

    matplotlib is needed (`pip install "asdex[plot]"`); it is imported when `spy`
    is first called. The figure is made with `matplotlib.pyplot`, so it shows in
    notebooks and with `plt.show()`.

    **Arguments:**

    - `obj`: what to draw: an [`asdex.SparsityPattern`][]; an
        [`asdex.ColoredPattern`][]; a sparse derivative from [`asdex.jacobian`][],
        [`asdex.hessian`][] and their variants (its `coloring` is drawn); an
        [`asdex.SparseJacobianOperator`][] or [`asdex.SparseHessianOperator`][]
        (its coloring); a scipy sparse matrix or array, or a two-dimensional
        `jax.experimental.sparse.BCOO` (their stored entries); or a
        two-dimensional numpy or JAX array (its nonzeros).
    - `compressed`: for a coloring, whether to draw the compressed matrix (or
        matrices) next to the pattern. With `False` only the colored pattern is
        drawn.
    - `ax`: the matplotlib axes to draw into. One `Axes` receives the pattern
        alone; a sequence of axes (or the array of `plt.subplots`) receives the
        pattern and then each compressed matrix, so it must have one axes per
        panel. `None` makes a new figure laid out for the panels.
    - `markersize`: the side of square markers, in points; `None` sizes the
        markers to fill the cells of each panel (as rectangles where a panel
        stretches its cells).
    - `max_size`: draw panels with more rows or columns than this as density
        images.
    - `title`: the title of the pattern's panel. `None` describes the pattern
        (shape, nonzeros, sparsity and, for a coloring, the products it costs);
        `""` leaves it out.

    **Returns:**

    The `matplotlib.figure.Figure` drawn into (the figure of `ax` when given). Its
    `axes` are the panels: the pattern first, then the compressed matrices.

    **Raises:** `TypeError` if `obj` is not one of the above or `ax` is not axes,
    `ValueError` for an array that is not two-dimensional or a sequence `ax` of
    the wrong length, and `ImportError`, naming the fix, without matplotlib.

    !!! Example

        ```python
        def f(x):
            return (x[1:] - x[:-1]) ** 2

        jac_fn = asdex.jacobian(f, input_shape=50)
        fig = asdex.spy(jac_fn)   # the 49×50 pattern in 2 colors, and B = J S
        fig.savefig("jacobian.png")

        asdex.spy(jac_fn.coloring.pattern)   # the pattern alone, in black
        asdex.spy(scipy.sparse.random(100, 80, density=0.05))
        ```
    """
    try:
        import matplotlib as mpl
        import matplotlib.pyplot as plt
        from matplotlib.axes import Axes
    except ImportError as err:
        raise ImportError(_INSTALL_HINT) from err

    pattern, coloring = _as_pattern(obj)
    panels, num_groups = _panels(pattern, coloring, compressed, title)
    palette = _palette(mpl, num_groups)

    if ax is None:
        fig, axes = _new_figure(plt, panels)
    else:
        if isinstance(ax, np.ndarray):  # as from `plt.subplots(1, 2)`
            ax = list(ax.ravel())
        if isinstance(ax, Axes):
            panels = panels[:1]
            axes = [ax]
        elif isinstance(ax, Sequence) and all(isinstance(a, Axes) for a in ax):
            axes = list(ax)
            if len(axes) != len(panels):
                raise ValueError(
                    f"`asdex.spy(ax=...)` has {len(axes)} axes, but there are "
                    f"{len(panels)} panels to draw (the pattern and its compressed "
                    "matrices). Pass one `Axes` for the pattern alone, or "
                    "`compressed=False`."
                )
        else:
            raise TypeError(
                "`asdex.spy(ax=...)` must be a matplotlib `Axes`, a sequence of "
                f"them, or None for a new figure; got {type(ax).__name__}."
            )
        fig = axes[0].figure

    for panel, a in zip(panels, axes, strict=True):
        _decorate(mpl, a, panel, max_size)
    engine = fig.get_layout_engine()
    if engine is not None:
        # Lay out the titles and ticks first, so that the markers fit the final
        # size of each panel.
        engine.execute(fig)
    for panel, a in zip(panels, axes, strict=True):
        _draw(mpl, a, panel, palette, markersize, max_size)
    return fig  # pyright: ignore[reportReturnType]


# ---------------------------------------------------------------- inputs


def _as_pattern(obj) -> tuple[SparsityPattern, ColoredPattern | None]:
    """The pattern to draw, and its coloring if `obj` has one."""
    import jax
    from jax.experimental import sparse as jsparse

    from .ad import AbstractSparseDerivative
    from .lineax import SparseHessianOperator, SparseJacobianOperator

    if isinstance(obj, ColoredPattern):
        return obj.pattern, obj
    if isinstance(
        obj, AbstractSparseDerivative | SparseJacobianOperator | SparseHessianOperator
    ):
        return obj.coloring.pattern, obj.coloring
    if isinstance(obj, SparsityPattern | jsparse.BCOO | np.ndarray | jax.Array) or (
        sp.issparse(obj)
    ):
        return SparsityPattern.from_any(obj, argument="`asdex.spy(obj=...)`"), None
    raise TypeError(
        "`asdex.spy(obj=...)` must be an `asdex.SparsityPattern`, an "
        "`asdex.ColoredPattern`, a sparse derivative from `asdex.jacobian` or "
        "`asdex.hessian`, an `asdex.SparseJacobianOperator` or "
        "`asdex.SparseHessianOperator`, a scipy sparse matrix, a two-dimensional "
        "`jax.experimental.sparse.BCOO`, or a two-dimensional numpy or JAX array; "
        f"got {type(obj).__name__}."
    )


def _panels(
    pattern: SparsityPattern,
    coloring: ColoredPattern | None,
    compressed: bool,
    title: str | None,
) -> tuple[list[_Panel], int]:
    """The panels to draw, and how many color groups their entries use."""
    rows = pattern.rows.astype(np.int64)
    cols = pattern.cols.astype(np.int64)
    m, n = pattern.shape
    if coloring is None:
        header = _pattern_header(pattern)
        main = _Panel(rows, cols, pattern.shape, None, _title(title, header), "main")
        return [main], 0

    result = coloring.result
    bidirectional = isinstance(result, BicoloringResult)
    by_rows = isinstance(result, RowColoringResult)
    # The cost line of the braille `repr`: "2 JVPs (instead of 49 VJPs or 50 JVPs)".
    cost = coloring._summary()[1].strip()
    if result.symmetric:
        cost = f"{coloring.mode} coloring: {cost}"
    header = f"{_pattern_header(pattern)}\n{cost}"
    c = coloring.num_colors
    if bidirectional:
        col_colors, row_colors = (
            np.asarray(k, dtype=np.int64)
            for k in coloring.colors  # pyright: ignore[reportGeneralTypeIssues]
        )
        from_fwd = np.asarray(coloring.result.from_fwd)  # pyright: ignore
        cf = coloring.num_jvps
        groups = np.where(from_fwd, col_colors[cols], cf + row_colors[rows])
    elif by_rows:
        groups = np.asarray(coloring.colors, dtype=np.int64)[rows]
    else:
        groups = np.asarray(coloring.colors, dtype=np.int64)[cols]
    panels = [_Panel(rows, cols, pattern.shape, groups, _title(title, header), "main")]
    if not compressed:
        return panels, c

    parts = coloring.compressed_patterns()
    if bidirectional:
        fwd, rev = parts
        cf = coloring.num_jvps
        panels.append(
            _Panel(
                fwd.rows.astype(np.int64),
                fwd.cols.astype(np.int64),
                fwd.shape,
                fwd.cols.astype(np.int64),
                rf"$B_{{\mathrm{{fwd}}}} = J\,S_{{\mathrm{{col}}}}$"
                f"\n{fwd.shape[0]}×{fwd.shape[1]}",
                "right",
            )
        )
        panels.append(
            _Panel(
                rev.rows.astype(np.int64),
                rev.cols.astype(np.int64),
                rev.shape,
                cf + rev.rows.astype(np.int64),
                rf"$B_{{\mathrm{{rev}}}} = S_{{\mathrm{{row}}}}^\top J$ ({rev.shape[0]}×{rev.shape[1]})",
                "below",
            )
        )
        return panels, c

    (q,) = parts
    qr, qc = q.rows.astype(np.int64), q.cols.astype(np.int64)
    if by_rows:
        label = rf"$B = S^\top J$ ({c}×{n})"
        panels.append(_Panel(qr, qc, q.shape, qr, label, "below"))
    else:
        product = "H" if result.symmetric else "J"
        label = rf"$B = {product}\,S$" f"\n{q.shape[0]}×{c}"
        panels.append(_Panel(qr, qc, q.shape, qc, label, "right"))
    return panels, c


def _pattern_header(pattern: SparsityPattern) -> str:
    m, n = pattern.shape
    return f"{m}×{n}, nnz={pattern.nnz:,}, sparsity={100 * pattern.sparsity:.1f}%"


def _title(title: str | None, default: str) -> str:
    return default if title is None else title


def _palette(mpl, num: int) -> np.ndarray:
    """`num` distinguishable RGBA colors: the qualitative tables, then a colormap."""
    if num <= 10:
        colors = mpl.colormaps["tab10"].colors[: max(num, 1)]
    elif num <= 20:
        # tab20 pairs each hue with a lighter one; take the ten dark ones first so
        # that neighbouring colors differ in hue.
        pairs = mpl.colormaps["tab20"].colors
        colors = (pairs[0::2] + pairs[1::2])[:num]
    else:
        colors = mpl.colormaps["turbo"](np.linspace(0.05, 0.95, num))
    return np.asarray(mpl.colors.to_rgba_array(colors))


# ---------------------------------------------------------------- drawing


def _new_figure(plt, panels: list[_Panel]):
    """A figure with the pattern's panel, and compressed ones right of and below it."""
    m, n = panels[0].shape
    # Square cells where the shape allows; elongated patterns get stretched cells.
    aspect = m / max(n, 1)
    if aspect <= 1:
        width = _PATTERN_INCHES
        height = max(_PATTERN_INCHES * aspect, _MIN_PATTERN_INCHES)
    else:
        width = max(_PATTERN_INCHES / aspect, _MIN_PATTERN_INCHES)
        height = _PATTERN_INCHES
    right = next((p for p in panels if p.place == "right"), None)
    below = next((p for p in panels if p.place == "below"), None)
    # A compressed panel keeps the pattern's scale where it can (c columns are
    # c / n of its width), but never gets narrower than a readable strip.
    widths = [width]
    heights = [height]
    if right is not None:
        share = right.shape[1] / max(n, 1)
        widths.append(min(max(width * share, _MIN_PANEL_INCHES), width))
    if below is not None:
        share = below.shape[0] / max(m, 1)
        heights.append(min(max(height * share, _MIN_PANEL_INCHES), height))
    # Room for the titles, ticks and labels around each panel.
    figsize = (sum(widths) + 0.9 * len(widths), sum(heights) + 1.1 * len(heights))
    fig = plt.figure(figsize=figsize, layout="constrained")
    grid = fig.add_gridspec(
        len(heights), len(widths), width_ratios=widths, height_ratios=heights
    )
    main = fig.add_subplot(grid[0, 0])
    axes = [main]
    for panel in panels[1:]:
        if panel.place == "right":
            axes.append(fig.add_subplot(grid[0, 1], sharey=main))
        else:
            axes.append(fig.add_subplot(grid[1, 0], sharex=main))
    return fig, axes


def _decorate(mpl, ax, panel: _Panel, max_size: int) -> None:
    """Limits, ticks and title: everything but the entries."""
    nrows, ncols = panel.shape
    # An empty dimension still gets a unit range: matplotlib needs one.
    ax.set_xlim(-0.5, max(ncols, 1) - 0.5)
    ax.set_ylim(max(nrows, 1) - 0.5, -0.5)
    ax.set_aspect("auto")
    ax.set_autoscale_on(False)
    locator = mpl.ticker.MaxNLocator
    ax.xaxis.set_major_locator(locator(nbins="auto", integer=True, min_n_ticks=1))
    ax.yaxis.set_major_locator(locator(nbins="auto", integer=True, min_n_ticks=1))
    if panel.place == "below":
        ax.tick_params(labelbottom=True, labeltop=False)
    else:
        ax.xaxis.tick_top()
    if panel.place == "right":
        ax.tick_params(labelleft=False)
    title = panel.title
    if _is_dense_image(panel, max_size):
        bh, bw = _block_shape(panel.shape)
        if panel.place == "right":
            # A narrow strip: keep each line of the title short.
            note = f"density,\n{bh}×{bw} blocks"
        else:
            note = f"density image, nonzeros per {bh}×{bw} block"
        title = f"{title}\n({note})" if title else f"({note})"
    if title:
        size = "medium" if panel.place == "main" else "small"
        ax.set_title(title, fontsize=size)


def _draw(mpl, ax, panel: _Panel, palette, markersize, max_size: int) -> None:
    nrows, ncols = panel.shape
    if nrows == 0 or ncols == 0:
        return
    if _is_dense_image(panel, max_size):
        ax.imshow(
            _density(panel, palette),
            extent=(-0.5, ncols - 0.5, nrows - 0.5, -0.5),
            aspect="auto",
            interpolation="nearest",
        )
        return
    if markersize is None:
        box = ax.get_window_extent()
        points = 72.0 / ax.figure.dpi
        width = _marker_side(box.width * points / ncols)
        height = _marker_side(box.height * points / nrows)
    else:
        width = height = float(markersize)
    # A rectangle shaped like the cells, so that adjacent nonzeros in a stretched
    # panel join up as they do in a square one. matplotlib scales a marker's path
    # to its longer side, which `s` (in points²) then sets.
    half_w, half_h = width / 2, height / 2
    marker = mpl.path.Path(
        [
            (-half_w, -half_h),
            (half_w, -half_h),
            (half_w, half_h),
            (-half_w, half_h),
            (0, 0),  # ignored: `closed=True` makes the last vertex CLOSEPOLY
        ],
        closed=True,
    )
    color = "black" if panel.groups is None else palette[panel.groups]
    ax.scatter(
        panel.cols,
        panel.rows,
        s=max(width, height) ** 2,
        c=color,
        marker=marker,
        linewidths=0,
    )


def _marker_side(cell: float) -> float:
    """A marker's side, in points, in a cell of side `cell` points."""
    # A gap between neighbouring markers where there is room for one wide enough
    # to show at screen resolution (a narrower one shows up as irregular faint
    # lines); smaller markers fill their cells, and stay at least a point wide.
    if cell >= 6.0:
        return min(cell - max(0.1 * cell, 1.5), 40.0)
    return max(cell, 1.0)


def _is_dense_image(panel: _Panel, max_size: int) -> bool:
    return max(panel.shape) > max_size or panel.rows.size > _MAX_MARKERS


def _block_shape(shape: tuple[int, int]) -> tuple[int, int]:
    return tuple(max(1, math.ceil(s / _DENSITY_BLOCKS)) for s in shape)  # pyright: ignore


def _density(panel: _Panel, palette: np.ndarray) -> np.ndarray:
    """An RGBA image of the blocks: transparent where empty, more opaque where denser.

    A block's color is black, or for a colored panel the mean color of its
    nonzeros (exact in a compressed panel, whose blocks span one color).
    """
    nrows, ncols = panel.shape
    bh, bw = _block_shape(panel.shape)
    gh, gw = math.ceil(nrows / bh), math.ceil(ncols / bw)
    block = (panel.rows // bh) * gw + panel.cols // bw
    counts = np.bincount(block, minlength=gh * gw)
    image = np.zeros((gh * gw, 4))
    filled = counts > 0
    if panel.groups is not None:
        rgb = palette[panel.groups, :3]
        for k in range(3):
            sums = np.bincount(block, weights=rgb[:, k], minlength=gh * gw)
            image[filled, k] = sums[filled] / counts[filled]
    # A lone nonzero in a block must stay visible next to full blocks, so the
    # opacity starts at 0.4 and grows with the logarithm of the count.
    top = counts.max(initial=0)
    scale = math.log(top) if top > 1 else 1.0
    image[filled, 3] = 0.4 + 0.6 * np.log(counts[filled]) / scale
    return image.reshape(gh, gw, 4)
