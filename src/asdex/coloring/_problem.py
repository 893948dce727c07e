"""What to color: the coloring problem, apart from how it is solved."""

from __future__ import annotations

from typing import Literal

import equinox as eqx

_PARTITIONS = ("column", "row", "bidirectional")
_STRUCTURES = ("nonsymmetric", "symmetric")


class ColoringProblem(eqx.Module):
    """Which matrix is compressed, and along which side.

    - `structure="nonsymmetric"` (a Jacobian) with `partition="column"`: partial
      distance-2 coloring of the columns, one JVP per color.
    - `structure="nonsymmetric"`, `partition="row"`: of the rows, one VJP per color.
    - `structure="nonsymmetric"`, `partition="bidirectional"`: columns and rows
      together (star bicoloring), some JVPs plus some VJPs.
    - `structure="symmetric"` (a Hessian), `partition="column"`: star coloring
      (direct decompression) or acyclic coloring (substitution), one
      Hessian-vector product per color.

    **Arguments:**

    - `structure`: `"nonsymmetric"` or `"symmetric"`.
    - `partition`: `"column"`, `"row"` or `"bidirectional"`.
    """

    structure: Literal["nonsymmetric", "symmetric"] = eqx.field(
        default="nonsymmetric", static=True
    )
    partition: Literal["column", "row", "bidirectional"] = eqx.field(
        default="column", static=True
    )

    def __check_init__(self):
        if self.structure not in _STRUCTURES:
            raise ValueError(
                f"`ColoringProblem(structure={self.structure!r})` must be one of "
                f"{_STRUCTURES}."
            )
        if self.partition not in _PARTITIONS:
            raise ValueError(
                f"`ColoringProblem(partition={self.partition!r})` must be one of "
                f"{_PARTITIONS}."
            )
        if self.structure == "symmetric" and self.partition != "column":
            raise ValueError(
                "`ColoringProblem(structure='symmetric')` colors rows and columns "
                "alike; use `partition='column'` (the default)."
            )
