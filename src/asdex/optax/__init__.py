"""Sparse second-order optimisers as Optax transforms.

- [`asdex.optax.sparse_newton`][]: the damped Newton step with the exact sparse
  Hessian.
- [`asdex.optax.sparse_gauss_newton`][]: the Gauss–Newton / Levenberg–Marquardt
  step of a least-squares loss with the sparse Jacobian of its residuals.

Both return an `optax.GradientTransformationExtraArgs`: they work under `jax.jit`,
with `optax.chain`, `optax.apply_updates` and Optax's line searches, on any PyTree
of parameters. The sparsity pattern is detected once, when the transform is built.
"""

from ._common import (
    SparseNewtonInfo as SparseNewtonInfo,
    SparseNewtonState as SparseNewtonState,
)
from ._gauss_newton import sparse_gauss_newton as sparse_gauss_newton
from ._newton import sparse_newton as sparse_newton
