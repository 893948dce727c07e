"""Coloring: from a sparsity pattern to seeds and a decompression plan.

Problem ([`asdex.coloring.ColoringProblem`][]) → algorithm
([`asdex.coloring.GreedyColoring`][] with a vertex order) → result (colors, seeds
and index arrays for decompression). Every coloring can be checked by a public
checker.
"""

from ._algorithm import GreedyColoring as GreedyColoring
from ._check import (
    check_acyclic as check_acyclic,
    check_bicoloring as check_bicoloring,
    check_structurally_orthogonal as check_structurally_orthogonal,
    check_symmetrically_orthogonal as check_symmetrically_orthogonal,
)
from ._interface import (
    color as color,
    color_acyclic as color_acyclic,
    color_bidirectional as color_bidirectional,
    color_columns as color_columns,
    color_hessian as color_hessian,
    color_jacobian as color_jacobian,
    color_rows as color_rows,
    color_star as color_star,
)
from ._orders import (
    ALL_ORDERS as ALL_ORDERS,
    AbstractOrder as AbstractOrder,
    DynamicLargestFirst as DynamicLargestFirst,
    IncidenceDegree as IncidenceDegree,
    LargestFirst as LargestFirst,
    NaturalOrder as NaturalOrder,
    RandomOrder as RandomOrder,
    SmallestLast as SmallestLast,
    vertex_order as vertex_order,
)
from ._problem import ColoringProblem as ColoringProblem
from ._result import (
    AbstractColoringResult as AbstractColoringResult,
    AcyclicColoringResult as AcyclicColoringResult,
    BicoloringResult as BicoloringResult,
    ColumnColoringResult as ColumnColoringResult,
    RowColoringResult as RowColoringResult,
    StarColoringResult as StarColoringResult,
)
from ._substitution import SubstitutionPlan as SubstitutionPlan
