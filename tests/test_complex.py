"""Complex Jacobians follow JAX: `holomorphic=True` gives `∂f/∂z` in every mode and
format; without it asdex returns what the JAX function that accepts `f` returns
(`jax.jacfwd` for real inputs and complex outputs, `jax.jacrev` for complex inputs
and real outputs) whatever the mode heuristic prefers, and raises where both do.

Oracles: `jax.jacfwd` and `jax.jacrev` (with `holomorphic=True` where needed).
"""

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest

import asdex
import jitted
from helpers import as_matrix

FORMATS = ["bcoo", "dense", "scipy_csr", "scipy_csc", "scipy_coo"]
MODES = [None, "fwd", "rev", "bidirectional"]

# Small examples: most colorings are as dense as they are.
pytestmark = pytest.mark.filterwarnings("ignore::asdex.DenseColoringWarning")


def holomorphic(z):
    """An arrowhead: a chain, a dense column (`z[0]`) and a dense row (the sum),
    so that the bidirectional coloring uses both JVPs and VJPs."""
    chain = z[1:] * jnp.sin(z[:-1]) + jnp.exp(z[0])
    return jnp.concatenate([chain, jnp.sum(z**2, keepdims=True)])


def not_holomorphic(z):
    """The issue's example: fwd and rev differ by 20 if treated as holomorphic."""
    return jnp.concatenate([jnp.conj(z[1:]) * z[:-1], jnp.sum(z * jnp.conj(z))[None]])


def _z(n=8, dtype=jnp.complex128):
    rng = np.random.default_rng(0)
    return jnp.asarray(rng.normal(size=n) + 1j * rng.normal(size=n), dtype)


# ---------------------------------------------------------------- holomorphic=True


def _mode_format_pairs():
    """Every mode and every format, each pair once; the default suite runs a
    slice in which each mode and each format occurs, the rest is marked slow."""
    fast = {(MODES[i % len(MODES)], fmt) for i, fmt in enumerate(FORMATS)}
    fast.add(("bidirectional", "bcoo"))
    return [
        pytest.param(mode, fmt, marks=() if (mode, fmt) in fast else pytest.mark.slow)
        for mode in MODES
        for fmt in FORMATS
    ]


@pytest.mark.parametrize("mode, fmt", _mode_format_pairs())
def test_holomorphic_every_mode_and_format(mode, fmt):
    z = _z()
    expected = jitted.jacfwd(holomorphic, holomorphic=True)(z)
    np.testing.assert_allclose(
        jitted.jacrev(holomorphic, holomorphic=True)(z), expected, rtol=1e-12
    )
    jac_fn = asdex.value_and_jacobian(
        holomorphic, z, mode=mode, output_format=fmt, holomorphic=True
    )
    if mode == "bidirectional":
        assert jac_fn.coloring.num_jvps and jac_fn.coloring.num_vjps
    value, J = jac_fn(z)
    np.testing.assert_allclose(value, holomorphic(z), rtol=1e-12)
    assert np.iscomplexobj(as_matrix(J, (8, 8)))
    np.testing.assert_allclose(as_matrix(J, (8, 8)), expected, rtol=1e-12)
    pattern = jac_fn.coloring.pattern
    np.testing.assert_allclose(
        jac_fn.nonzeros(z), np.asarray(expected)[pattern.rows, pattern.cols]
    )


def test_holomorphic_reuse_and_complex64():
    z = _z()
    expected = jitted.jacfwd(holomorphic, holomorphic=True)(z)
    for mode in ("fwd", "rev"):
        coloring = asdex.jacobian_coloring(holomorphic, z, mode=mode, holomorphic=True)
        jac_fn = asdex.jacobian_from_coloring(
            holomorphic, coloring, z, output_format="dense", holomorphic=True
        )
        np.testing.assert_allclose(jac_fn(z), expected, rtol=1e-12)
        jac_fn = asdex.jacobian_from_pattern(
            holomorphic,
            coloring.pattern,
            z,
            mode=mode,
            output_format="dense",
            holomorphic=True,
        )
        np.testing.assert_allclose(jac_fn(z), expected, rtol=1e-12)
    z64 = z.astype(jnp.complex64)
    J = asdex.jacobian(holomorphic, z64, output_format="dense", holomorphic=True)(z64)
    assert J.dtype == jnp.complex64
    np.testing.assert_allclose(J, expected, rtol=1e-4)


def test_holomorphic_pytree():
    y = {"u": _z(4), "v": _z(3)}

    def f(y):
        return {"a": y["u"][:3] * y["v"], "b": jnp.sum(jnp.exp(y["u"]))}

    for mode in ("fwd", "rev"):
        J = asdex.jacobian(f, y, mode=mode, output_format="dense", holomorphic=True)(y)
        expected = jitted.jacfwd(f, holomorphic=True)(y)
        for out in ("a", "b"):
            for inp in ("u", "v"):
                np.testing.assert_allclose(J[out][inp], expected[out][inp], rtol=1e-12)


def test_holomorphic_promise_as_jax_reads_it():
    """A function that is not holomorphic: asdex trusts the promise as JAX does,
    and each mode gives what the JAX function of that mode gives."""
    z = _z(5)
    fwd = asdex.jacobian(not_holomorphic, z, mode="fwd", holomorphic=True)
    rev = asdex.jacobian(not_holomorphic, z, mode="rev", holomorphic=True)
    np.testing.assert_allclose(
        as_matrix(fwd(z), (5, 5)),
        jitted.jacfwd(not_holomorphic, holomorphic=True)(z),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        as_matrix(rev(z), (5, 5)),
        jitted.jacrev(not_holomorphic, holomorphic=True)(z),
        rtol=1e-12,
    )


def test_holomorphic_needs_complex_inputs_and_outputs():
    x = jnp.arange(3.0)
    with pytest.raises(TypeError, match=r"holomorphic=True\)` needs complex inputs"):
        asdex.jacobian(lambda x: x * (1 + 1j), x, holomorphic=True)
    with pytest.raises(TypeError, match=r"holomorphic=True\)` needs complex outputs"):
        asdex.jacobian(lambda z: jnp.abs(z), _z(3), holomorphic=True)
    with pytest.raises(TypeError, match="True` or `False"):
        asdex.jacobian(lambda z: z, _z(3), holomorphic="yes")


# ---------------------------------------------------------------- holomorphic=False


def real_to_complex(x):
    return jnp.concatenate(
        [x[1:] * (1 + 2j) - x[:-1] * 1j, jnp.sum(x * (1 - 1j), keepdims=True)]
    )


def test_real_inputs_complex_outputs_are_forward():
    """The issue's example gave `[[1, 1, 1]]` (the real part) in reverse mode."""
    x = jnp.array([1.0, 2.0, 3.0])

    def f(x):
        return jnp.array([jnp.sum(x) * (1 + 2j)])

    J = asdex.jacobian(f, x, output_format="dense")(x)
    np.testing.assert_allclose(J, jitted.jacfwd(f)(x))
    np.testing.assert_allclose(J, [[1 + 2j] * 3])
    x = jnp.linspace(0.5, 2.0, 30)
    expected = jitted.jacfwd(real_to_complex)(x)
    jac_fn = asdex.jacobian(real_to_complex, x)
    # Without the complex outputs the heuristic would pick VJPs (a dense row).
    assert jac_fn.coloring.mode == "fwd"
    np.testing.assert_allclose(as_matrix(jac_fn(x), (30, 30)), expected, rtol=1e-12)
    coloring = asdex.jacobian_coloring(real_to_complex, x)
    assert coloring.mode == "fwd"


def test_real_inputs_complex_outputs_refuse_vjps():
    x = jnp.linspace(0.5, 2.0, 6)
    for mode in ("rev", "bidirectional"):
        with pytest.raises(
            TypeError, match=r"asdex.jacobian` got `mode='\w+'`.*mode='fwd'"
        ):
            asdex.jacobian(real_to_complex, x, mode=mode)
    with pytest.raises(TypeError, match="mode='fwd'"):
        asdex.jacobian_coloring(real_to_complex, x, mode="rev")
    # A row coloring of the same pattern, from the real part.
    rows = asdex.jacobian_coloring(lambda x: real_to_complex(x).real, x, mode="rev")
    with pytest.raises(TypeError, match=r"from_coloring` got a coloring for VJPs"):
        asdex.jacobian_from_coloring(real_to_complex, rows, x)
    with pytest.raises(TypeError, match="mode='fwd'"):
        asdex.jacobian_from_pattern(real_to_complex, rows.pattern, x, mode="rev")


def complex_to_real(z):
    return jnp.concatenate([jnp.abs(z[1:] - z[:-1]) ** 2, jnp.real(z[:1]) * 3.0])


def test_complex_inputs_real_outputs_are_reverse():
    z = _z(6)
    expected = jitted.jacrev(complex_to_real)(z)
    J = asdex.jacobian(complex_to_real, z, output_format="dense")(z)
    assert jnp.iscomplexobj(J)
    np.testing.assert_allclose(J, expected, rtol=1e-12)
    with pytest.raises(TypeError, match="mode='rev'"):
        asdex.jacobian(complex_to_real, z, mode="fwd")


@pytest.mark.parametrize("mode", MODES)
def test_complex_inputs_and_outputs_raise(mode):
    z = _z(5)
    for build in (asdex.jacobian, asdex.value_and_jacobian, asdex.jacobian_coloring):
        with pytest.raises(TypeError, match="holomorphic=True"):
            build(not_holomorphic, z, mode=mode)
    # As JAX.
    with pytest.raises(TypeError):
        jax.jacfwd(not_holomorphic)(z)
    with pytest.raises(TypeError):
        jax.jacrev(not_holomorphic)(z)


def test_hessian_of_complex_inputs_raises():
    z = _z(4)

    def energy(z):
        return jnp.sum(jnp.abs(z) ** 2)

    for build in (asdex.hessian, asdex.hessian_coloring, asdex.hessian_sparsity):
        if build is asdex.hessian_sparsity:
            continue  # a pattern has no values: the dtype does not matter
        with pytest.raises(TypeError, match="needs real inputs"):
            build(energy, z)
    with pytest.raises(TypeError):
        jax.hessian(energy)(z)


def test_check_jacobian_uses_jax_jacobian():
    """`check_jacobian` compares with the Jacobian JAX defines for the dtypes."""
    z, x = _z(6), jnp.linspace(0.5, 2.0, 6)
    for f, point, holo in (
        (holomorphic, _z(), True),
        (real_to_complex, x, False),
        (complex_to_real, z, False),
    ):
        jac_fn = asdex.jacobian(f, point, holomorphic=holo)
        for method in ("dense", "probes"):
            report = asdex.check_jacobian(jac_fn, point, method=method)
            assert report.passed and report.scale > 0
    # A broken promise is caught: VJPs of a function that is not holomorphic
    # differ from the holomorphic reference (`jax.jacfwd(..., holomorphic=True)`).
    z = _z(5)
    jac_fn = asdex.jacobian(not_holomorphic, z, mode="rev", holomorphic=True)
    report = asdex.check_jacobian(jac_fn, z, raise_on_failure=False)
    assert not report.passed and report.max_error > 1


# ---------------------------------------------------------------- operators


def test_operators_follow_lineax():
    """Lineax reads complex `y` as holomorphic (its `JacobianLinearOperator`
    materialises with `holomorphic=True`); the sparse operators do the same, and
    real `y` with complex outputs uses JVPs."""
    z = _z()
    expected = jitted.jacfwd(holomorphic, holomorphic=True)(z)
    op = asdex.SparseJacobianOperator(lambda y, _: holomorphic(y), z)
    np.testing.assert_allclose(op.as_matrix(), expected, rtol=1e-12)
    dense = lx.materialise(lx.JacobianLinearOperator(lambda y, _: holomorphic(y), z))
    np.testing.assert_allclose(op.as_matrix(), dense.as_matrix(), rtol=1e-12)
    x = jnp.linspace(0.5, 2.0, 6)
    fn = lambda y, _: real_to_complex(y)  # noqa: E731
    op = asdex.SparseJacobianOperator(fn, x)
    assert op.coloring.mode == "fwd"
    np.testing.assert_allclose(op.as_matrix(), jitted.jacfwd(real_to_complex)(x))
    sparse_fn = asdex.SparseFunction(fn, x)
    np.testing.assert_allclose(
        sparse_fn.jacobian_operator(x).as_matrix(), jitted.jacfwd(real_to_complex)(x)
    )
    rows = asdex.jacobian_coloring(lambda y, _: fn(y, _).real, x, None, mode="rev")
    with pytest.raises(TypeError, match="coloring for VJPs"):
        asdex.SparseJacobianOperator(fn, x, None, rows)
    with pytest.raises(TypeError, match="mode='fwd'"):
        asdex.SparseFunction(fn, x, mode="rev")
