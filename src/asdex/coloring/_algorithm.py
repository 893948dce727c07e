"""How to color: greedy coloring with a vertex order."""

from __future__ import annotations

from typing import Literal

import equinox as eqx

from ._orders import as_orders


class GreedyColoring(eqx.Module):
    """Greedy coloring: visit the vertices in an order, give each the smallest allowed color.

    **Arguments:**

    - `order`: the vertex order, as an [`asdex.coloring.AbstractOrder`][], its name
      (`"natural"`, `"largest_first"`, `"smallest_last"`, `"incidence_degree"`,
      `"dynamic_largest_first"`, `"random"`), or an explicit permutation. A
      sequence of orders runs each and keeps the coloring with the fewest colors;
      [`asdex.coloring.ALL_ORDERS`][] is every built-in order once.
    - `decompression`: for symmetric and bidirectional problems, `"direct"` (star
      coloring: each nonzero read from one compressed entry) or `"substitution"`
      (acyclic coloring: fewer colors, entries solved from triangular systems).
      Substitution is available for symmetric problems only.

    !!! Example

        ```python
        algorithm = GreedyColoring(order=("natural", "smallest_last"))
        result = asdex.coloring.color(pattern, ColoringProblem(), algorithm)
        ```
    """

    order: tuple
    decompression: Literal["direct", "substitution"] = eqx.field(static=True)

    def __init__(self, order="natural", decompression="direct"):
        if decompression not in ("direct", "substitution"):
            raise ValueError(
                f"`GreedyColoring(decompression={decompression!r})` must be "
                "'direct' or 'substitution'."
            )
        self.order = as_orders(order, caller="GreedyColoring")
        self.decompression = decompression
