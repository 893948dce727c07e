"""Compressed automatic differentiation and decompression into sparse formats."""

from ._check import (
    CheckReport as CheckReport,
    check_hessian as check_hessian,
    check_jacobian as check_jacobian,
)
from ._sparse_derivative import AbstractSparseDerivative as AbstractSparseDerivative
from ._sparse_hessian import SparseHessian as SparseHessian
from ._sparse_jacobian import SparseJacobian as SparseJacobian
