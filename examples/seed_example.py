"""The example from the README: a banded Jacobian from 2 JVPs.

Run with `uv run python examples/seed_example.py`.
"""

import numpy as np

from asdex import jacobian


def f(x):
    return (x[1:] - x[:-1]) ** 2


jac_fn = jacobian(f, input_shape=50)
print(jac_fn)
# ColoredPattern(49×50, nnz=98, sparsity=96.0%, JVP, 2 colors)
#   2 JVPs (instead of 49 VJPs or 50 JVPs)
# ...

inputs = [np.random.default_rng(seed).standard_normal(50) for seed in range(3)]
for x in inputs:
    J = jac_fn(x)

print(f"\nJ = jac_fn(x): a {type(J).__name__} of shape {J.shape} from 2 JVPs")
