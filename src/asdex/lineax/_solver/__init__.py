from .amg import SparseAMG as SparseAMG
from .auto import SparseLinearSolver as SparseLinearSolver
from .cholesky import SparseCholesky as SparseCholesky
from .krylov import (
    SparseKrylov as SparseKrylov,
    jacobi_preconditioner as jacobi_preconditioner,
)
from .lu import SparseLU as SparseLU
from .normal import SparseNormalEquations as SparseNormalEquations
from .schur import SparseSchur as SparseSchur
