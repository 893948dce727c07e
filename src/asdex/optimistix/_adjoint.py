"""`sparse_adjoint`: implicit differentiation through solves, solved sparsely."""

from __future__ import annotations

import optimistix as optx

from ..lineax._solver import SparseLinearSolver


def sparse_adjoint(well_posed: bool | None = None) -> optx.ImplicitAdjoint:
    """`optimistix.ImplicitAdjoint` with its backward solve done sparsely.

    Gradients through `optimistix.root_find`, `least_squares` and `minimise` come
    from the implicit function theorem: one linear solve with the Jacobian of the
    problem at the solution. Optimistix's default `ImplicitAdjoint()` solves it with
    `lineax.AutoLinearSolver`, which materialises that Jacobian densely, even when
    the solver itself is sparse: 11 s for a 4,608-unknown reaction-diffusion
    problem on a loaded 2-core machine, against 0.21 s with this adjoint, and 43 GB
    at 73,728 unknowns. The adjoint is an argument of `optimistix.root_find` and
    friends, not of the solver, so no solver, stock or asdex's, can change it:
    pass this one.

    **Arguments:**

    - `well_posed`: passed to [`asdex.SparseLinearSolver`][]. `None` (the default)
        solves the square system directly and reports a singular one. `False`
        gives the minimum-norm (pseudo-inverse) gradient, as
        `optimistix.ImplicitAdjoint(lineax.AutoLinearSolver(well_posed=False))`
        does densely: use it for rank-deficient fits (dead units, parameters the
        residual ignores), whose Hessian is singular. It costs more (measured 1.4x
        on the problem above).

    **Returns:**

    `optimistix.ImplicitAdjoint(linear_solver=asdex.SparseLinearSolver(well_posed))`.

    !!! Example

        ```python
        sol = optx.root_find(fn, solver, y0, args, adjoint=asdex.optimistix.sparse_adjoint())
        ```
    """
    return optx.ImplicitAdjoint(linear_solver=SparseLinearSolver(well_posed=well_posed))
