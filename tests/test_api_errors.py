"""Bad input to the public API gets an error that names the argument."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import asdex


def diff(x):
    return (x[1:] - x[:-1]) ** 2


def rosenbrock(x):
    return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)


@pytest.fixture(scope="module")
def jac_fn():
    return asdex.jacobian(diff, jnp.zeros(10))


def test_call_with_another_shape(jac_fn):
    with pytest.raises(
        ValueError, match=r"argument 0 of shape \(11,\).*built for shape \(10,\)"
    ):
        jac_fn(jnp.zeros(11))


def test_call_with_another_dtype(jac_fn):
    with pytest.raises(ValueError, match="dtype float32.*built for.*float64"):
        jac_fn(jnp.zeros(10, jnp.float32))


def test_call_with_integers(jac_fn):
    with pytest.raises(ValueError, match="Only floating inputs can be differentiated"):
        jac_fn(jnp.zeros(10, jnp.int32))


def test_call_with_another_structure(jac_fn):
    with pytest.raises(TypeError, match="1 positional argument"):
        jac_fn(jnp.zeros(10), jnp.zeros(10))
    with pytest.raises(TypeError, match="another structure"):
        jac_fn((jnp.zeros(10),))
    with pytest.raises(TypeError, match="needs an array"):
        jac_fn("x")


def test_call_with_another_static_value():
    def f(x, power):
        return x**power

    jac_fn = asdex.jacobian(f, jnp.ones(3), 2)
    jac_fn(jnp.ones(3), 2)
    with pytest.raises(ValueError, match=r"argument 1 = 3.*had 2.*jnp.asarray"):
        jac_fn(jnp.ones(3), 3)


def test_shape_errors_name_pytree_leaves():
    def f(p):
        return p["a"] * p["b"]

    p = {"a": jnp.ones(3), "b": jnp.ones(3)}
    jac_fn = asdex.jacobian(f, p)
    with pytest.raises(
        ValueError, match=r"argument 0 \(leaf \['b'\]\) of shape \(4,\)"
    ):
        jac_fn({"a": jnp.ones(3), "b": jnp.ones(4)})


def test_integer_inputs_rejected_when_building():
    with pytest.raises(TypeError, match="only floating or complex inputs"):
        asdex.jacobian(diff, jnp.arange(5))
    with pytest.raises(TypeError, match="argnums"):
        asdex.hessian(rosenbrock, jnp.arange(5))


@pytest.mark.parametrize("argnums", [1, -2, (0, 1)])
def test_argnums_out_of_range(argnums):
    with pytest.raises(ValueError, match=r"argnums=.*must lie in \[-1, 1\)"):
        asdex.jacobian(diff, jnp.ones(4), argnums=argnums)


def test_has_aux_mismatch():
    with pytest.raises(TypeError, match=r"has_aux=True.*must return a pair"):
        asdex.jacobian(diff, jnp.ones(4), has_aux=True)
    with pytest.raises(TypeError, match=r"pass `has_aux=True`"):
        asdex.hessian(lambda x: (jnp.sum(x**2), x[0]), jnp.ones(4))


def test_non_scalar_hessian():
    with pytest.raises(
        TypeError, match=r"asdex.hessian\(f, \.\.\.\)`: `f` must return one real scalar"
    ):
        asdex.hessian(diff, jnp.ones(4))
    with pytest.raises(TypeError, match="must return one real scalar"):
        asdex.value_and_hessian(lambda x: x.sum(keepdims=True), jnp.ones(4))
    with pytest.raises(TypeError, match="must return one real scalar"):
        asdex.hessian_coloring(lambda x: jnp.sum(x) > 0, jnp.ones(4))


def test_hessian_of_a_dynamic_while_loop_names_the_caller():
    def f(x):
        body = jax.lax.while_loop(lambda c: jnp.sum(c) < 10, lambda c: 2 * c, x)
        return jnp.sum(body**2)

    for fn, name in [
        (asdex.hessian, "asdex.hessian"),
        (asdex.hessian_coloring, "asdex.hessian_coloring"),
        (asdex.hessian_sparsity, "asdex.hessian_sparsity"),
    ]:
        with pytest.raises(
            ValueError, match=rf"`{name}`: `f` cannot be differentiated"
        ):
            fn(f, jnp.ones(3))


def test_bad_options():
    with pytest.raises(ValueError, match=r"output_format='csr'.*'scipy_csr'"):
        asdex.jacobian(diff, jnp.ones(4), output_format="csr")
    with pytest.raises(ValueError, match=r"mode='forward'.*'fwd'"):
        asdex.jacobian(diff, jnp.ones(4), mode="forward")
    with pytest.raises(ValueError, match=r"mode='fwd'.*'star'"):
        asdex.hessian(rosenbrock, jnp.ones(4), mode="fwd")
    with pytest.raises(ValueError, match="chunk_size=0"):
        asdex.jacobian(diff, jnp.ones(4), chunk_size=0)
    with pytest.raises(TypeError, match="sample arguments"):
        asdex.jacobian(diff)
    with pytest.raises(TypeError, match="not both"):
        asdex.jacobian(diff, jnp.ones(4), input_shape=4)


def test_scipy_output_under_transformations():
    jac_fn = asdex.jacobian(diff, jnp.ones(5), output_format="scipy_csr")
    assert jac_fn(jnp.ones(5)).shape == (4, 5)
    with pytest.raises(TypeError, match="cannot be called under `jax.jit`"):
        jax.jit(jac_fn)(jnp.ones(5))
    with pytest.raises(TypeError, match="output_format='bcoo'"):
        jax.vmap(jac_fn)(jnp.ones((2, 5)))


def test_coloring_and_pattern_mismatches():
    jac_coloring = asdex.jacobian_coloring(diff, input_shape=6)
    hess_coloring = asdex.hessian_coloring(rosenbrock, input_shape=6)
    with pytest.raises(ValueError, match="a Hessian coloring"):
        asdex.jacobian_from_coloring(diff, hess_coloring)
    with pytest.raises(ValueError, match="a Jacobian coloring"):
        asdex.hessian_from_coloring(rosenbrock, jac_coloring)
    with pytest.raises(ValueError, match=r"5×6 pattern.*6×7 Jacobian"):
        asdex.jacobian_from_coloring(diff, jac_coloring, jnp.ones(7))
    with pytest.raises(
        TypeError, match="must be an `asdex.ColoredPattern`.*jacobian_from_pattern"
    ):
        asdex.jacobian_from_coloring(diff, jac_coloring.pattern)
    with pytest.raises(TypeError, match="must be an `asdex.ColoredPattern`"):
        asdex.hessian_from_coloring(rosenbrock, "star")
    with pytest.raises(
        TypeError, match=r"pattern=\.\.\.\)` must be an `asdex.SparsityPattern`"
    ):
        asdex.jacobian_from_pattern(diff, [[1, 0]])
    with pytest.raises(ValueError, match="must be square"):
        asdex.hessian_from_pattern(rosenbrock, np.ones((3, 4)))
    with pytest.raises(TypeError, match="checks what `asdex.jacobian` returns"):
        asdex.check_jacobian(asdex.hessian(rosenbrock, jnp.ones(6)), jnp.ones(6))
    with pytest.raises(TypeError, match="ColoredPattern"):
        asdex.ColoredPattern(jac_coloring.pattern)


def _branches(x):
    if x[0] > 0:
        return x**2
    return x


@pytest.mark.parametrize(
    "build, caller, name",
    [
        (lambda: asdex.jacobian(_branches, jnp.ones(3)), "asdex.jacobian", "f"),
        (
            lambda: asdex.hessian(lambda x: jnp.sum(_branches(x)), jnp.ones(3)),
            "asdex.hessian",
            "f",
        ),
        (
            lambda: asdex.jacobian_sparsity(_branches, jnp.ones(3)),
            "asdex.jacobian_sparsity",
            "f",
        ),
        (
            lambda: asdex.SparseFunction(
                lambda y, args: jnp.sum(_branches(y)), jnp.ones(3)
            ),
            "asdex.SparseFunction",
            "fn",
        ),
        (
            lambda: asdex.lineax.SparseHessianOperator(
                lambda y, args: jnp.sum(_branches(y)), jnp.ones(3)
            ),
            "asdex.SparseHessianOperator",
            "fn",
        ),
    ],
)
def test_python_branch_on_a_traced_value_says_what_to_write(build, caller, name):
    """`if x[0] > 0:` gets asdex's advice, with JAX's error chained."""
    with pytest.raises(TypeError, match=r"jnp\.where.*jax\.lax\.cond") as info:
        build()
    message = str(info.value)
    assert message.startswith(f"`{caller}`: `{name}` branches in Python")
    assert "for all input values at once" in message
    assert isinstance(info.value.__cause__, jax.errors.TracerBoolConversionError)


def test_python_int_of_a_traced_value_says_what_to_write():
    with pytest.raises(
        TypeError, match="`asdex.jacobian`: `f` turns the value"
    ) as info:
        asdex.jacobian(lambda x: x[: int(x[0])], jnp.ones(3))
    assert isinstance(info.value.__cause__, jax.errors.ConcretizationTypeError)
