"""Dense reference derivatives, each compiled as one program.

Called eagerly, `jax.hessian(f)(x)` dispatches every primitive on its own, and JAX
compiles each new (primitive, shape) pair: the Hessian of a 10-unknown Rosenbrock
took 1.7 s that way and 0.08 s jitted (measured side by side). The tests compare
against hundreds of such references, so they take them from here. `eqx.filter_jit`
keeps non-array arguments static, as the eager call would see them.
"""

import equinox as eqx
import jax


def jacfwd(f, *args, **kwargs):
    return eqx.filter_jit(jax.jacfwd(f, *args, **kwargs))


def jacrev(f, *args, **kwargs):
    return eqx.filter_jit(jax.jacrev(f, *args, **kwargs))


def hessian(f, *args, **kwargs):
    return eqx.filter_jit(jax.hessian(f, *args, **kwargs))
