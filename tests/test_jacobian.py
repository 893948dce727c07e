"""Sparse Jacobians against dense `jax.jacfwd` / `jax.jacrev` / `jax.jacobian`."""

import pathlib
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.tree_util as jtu
import numpy as np
import pytest
import scipy.sparse as sp
from jax.experimental import sparse as jsparse

import asdex
import jitted
from helpers import (
    JACOBIAN_CASES,
    as_matrix,
    dense_jacobian,
    dense_tree,
    ids,
    random_like,
)

FORMATS = ["bcoo", "dense", "scipy_csr", "scipy_csc", "scipy_coo"]
MODES = ["fwd", "rev", "bidirectional"]

# Every fourth function of the detection tests' zoo, in the automatic mode; every
# other one of those only with `-m slow`.
SELECTION = [
    pytest.param(c, marks=pytest.mark.slow) if k % 2 else c
    for k, c in enumerate(JACOBIAN_CASES[::4])
]
# A smaller set, run in every mode.
MODE_CASES = [
    c
    for c in JACOBIAN_CASES
    if c.name
    in {
        "mul_reversed",
        "concatenate",
        "at_add",
        "softmax",
        "matmul_two_inputs",
        "conv2d_stencil",
        "scan_xs",
        "custom_jvp_inside",
        "sum_axis0",
    }
]


def diff(x):
    return (x[1:] - x[:-1]) ** 2


def _assert_tree_close(got, expected, rtol=1e-10, atol=1e-12):
    got = dense_tree(got)
    assert jtu.tree_structure(got) == jtu.tree_structure(expected)
    for g, e in zip(jtu.tree_leaves(got), jtu.tree_leaves(expected), strict=True):
        assert g.shape == np.shape(e)
        np.testing.assert_allclose(g, e, rtol=rtol, atol=atol)


# ---------------------------------------------------------------------------- seed


SEED_README = pathlib.Path(__file__).parents[1] / ".." / "shared" / "reference"


def test_seed_example_prints_the_seed_header():
    jac_fn = asdex.jacobian(diff, input_shape=50)
    lines = repr(jac_fn).splitlines()
    assert lines[0] == "ColoredPattern(49×50, nnz=98, sparsity=96.0%, JVP, 2 colors)"
    assert lines[1] == "  2 JVPs (instead of 49 VJPs or 50 JVPs)"
    assert lines[2] == "⎡⠙⢦⡀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⎤ ⎡⣿⎤"
    assert lines[8] == "⎢⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠙⢦⡀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⎥ → ⎢⣿⎥"
    assert lines[-1] == "⎣⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠀⠉⎦ ⎣⠉⎦"
    assert len(lines) == 15
    assert repr(jac_fn) == repr(jac_fn.coloring) == str(jac_fn.coloring)
    seed = SEED_README / "seed-README.txt"
    if seed.exists():  # the whole picture, as the seed README prints it
        text = seed.read_text()
        for line in lines:
            assert line.strip() in text
    x = jnp.linspace(0.0, 1.0, 50)
    np.testing.assert_allclose(as_matrix(jac_fn(x), (49, 50)), jitted.jacfwd(diff)(x))


def test_colored_pattern_properties():
    coloring = asdex.jacobian_coloring(diff, input_shape=10)
    assert coloring.mode == "fwd"
    assert coloring.num_colors == 2 == coloring.num_jvps
    assert coloring.num_vjps == coloring.num_hvps == 0
    assert coloring.pattern == asdex.jacobian_sparsity(diff, input_shape=10)
    assert isinstance(coloring.result, asdex.coloring.ColumnColoringResult)
    np.testing.assert_array_equal(coloring.colors, np.arange(10) % 2)
    assert asdex.coloring.check_structurally_orthogonal(
        coloring.pattern, coloring.colors
    )
    assert hash(coloring) == hash(asdex.jacobian_coloring(diff, input_shape=10))
    assert coloring == asdex.jacobian_coloring(diff, input_shape=10)
    assert coloring != asdex.jacobian_coloring(diff, input_shape=10, mode="rev")
    (compressed,) = coloring.compressed_patterns()
    assert compressed.shape == (9, 2)
    rev = asdex.jacobian_coloring(diff, input_shape=10, mode="rev")
    assert rev.mode == "rev" and rev.num_vjps == 2
    assert rev.compressed_patterns()[0].shape == (2, 10)
    diagonal = asdex.jacobian_coloring(jnp.sin, input_shape=5, mode="rev")
    assert repr(diagonal).splitlines()[:2] == [
        "ColoredPattern(5×5, nnz=5, sparsity=80.0%, VJP, 1 color)",
        "  1 VJP (instead of 5 VJPs or 5 JVPs)",
    ]


def test_arrowhead_bidirectional():
    """One dense row and one dense column: 1 JVP + 1 VJP, and its picture."""

    def arrow(x):
        return jnp.concatenate([jnp.sum(x**2)[None], x[0] ** 2 * jnp.arange(1.0, 8.0)])

    x = jnp.arange(1.0, 9.0)
    coloring = asdex.jacobian_coloring(arrow, x, mode="bidirectional")
    assert coloring.mode == "bidirectional"
    assert (coloring.num_jvps, coloring.num_vjps) == (1, 1)
    assert (
        repr(coloring).splitlines()[1]
        == "  1 JVP + 1 VJP (instead of 8 VJPs or 8 JVPs)"
    )
    assert " → " in repr(coloring) and " + " in repr(coloring)
    jac_fn = asdex.jacobian(arrow, x, mode="bidirectional")
    np.testing.assert_allclose(as_matrix(jac_fn(x), (8, 8)), jitted.jacfwd(arrow)(x))


# ---------------------------------------------------------------------------- the zoo


def _check_case(case, mode=None, output_format="bcoo", chunk_size=None):
    mode = "rev" if case.rev and mode is None else mode
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", asdex.DenseColoringWarning)
        jac_fn = asdex.jacobian(
            case.f,
            *case.args,
            mode=mode,
            output_format=output_format,
            chunk_size=chunk_size,
        )
    rng = np.random.default_rng(1)
    for point in (case.args, random_like(case.args, rng, case.positive)):
        got = as_matrix(jac_fn(*point), jac_fn.coloring.shape)
        expected = dense_jacobian(case.f, *point, rev=case.rev or mode == "rev")
        np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", SELECTION, ids=ids(JACOBIAN_CASES[::4]))
def test_zoo_auto_mode(case):
    _check_case(case)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", MODE_CASES, ids=ids(MODE_CASES))
def test_zoo_every_mode(case, mode):
    _check_case(case, mode=mode, output_format="dense")


@pytest.mark.parametrize("output_format", FORMATS)
@pytest.mark.parametrize("mode", MODES)
def test_output_formats_and_modes(output_format, mode):
    x = jnp.asarray(np.random.default_rng(0).standard_normal(12))
    jac_fn = asdex.jacobian(diff, x, mode=mode, output_format=output_format)
    J = jac_fn(x)
    if output_format == "bcoo":
        assert isinstance(J, jsparse.BCOO) and J.shape == (11, 12)
        # The products themselves, with out-of-bounds padding where a color
        # misses a row (a column in reverse mode).
        assert J.nse >= 22
        assert asdex.SparsityPattern.from_bcoo(J) == jac_fn.coloring.pattern
    elif output_format == "dense":
        assert isinstance(J, jax.Array) and J.shape == (11, 12)
    else:
        assert isinstance(J, sp.sparray) and J.format == output_format[-3:]
    np.testing.assert_allclose(as_matrix(J, (11, 12)), jitted.jacrev(diff)(x))


@pytest.mark.parametrize("chunk_size", [1, 3])
@pytest.mark.parametrize("mode", MODES)
def test_chunk_size(chunk_size, mode):
    def f(x):  # 5 bands: 5 colors in either direction
        return x[2:-2] * x[:-4] + jnp.sin(x[1:-3]) * x[3:-1] - x[4:] ** 3

    x = jnp.asarray(np.random.default_rng(1).standard_normal(20))
    jac_fn = asdex.jacobian(
        f, x, mode=mode, chunk_size=chunk_size, output_format="dense"
    )
    assert jac_fn.coloring.num_colors >= 3
    np.testing.assert_allclose(jac_fn(x), jitted.jacfwd(f)(x), rtol=1e-12)


# ---------------------------------------------------------------------------- PyTrees


def _tree_fn(p, q, scale):
    return {
        "a": p["u"] * q[1:] * scale,
        "b": (jnp.sin(p["v"]) * q[0]).sum(0),
        "c": p["u"][0] ** 2,
    }


def _tree_args(dtype=jnp.float64):
    rng = np.random.default_rng(2)
    p = {
        "u": jnp.asarray(rng.standard_normal(3), dtype),
        "v": jnp.asarray(rng.standard_normal((2, 3)), dtype),
    }
    q = jnp.asarray(rng.standard_normal(4), dtype)
    return p, q, 2.0


@pytest.mark.parametrize("output_format", ["bcoo", "dense"])
@pytest.mark.parametrize("argnums", [0, 1, (0, 1), (1, 0), (0,)])
def test_pytree_nesting_like_jax_jacobian(argnums, output_format):
    args = _tree_args()
    jac_fn = asdex.jacobian(
        _tree_fn, *args, argnums=argnums, output_format=output_format
    )
    expected = jax.jacobian(_tree_fn, argnums=argnums)(*args)
    _assert_tree_close(jac_fn(*args), expected)


@pytest.mark.parametrize("fmt", ["scipy_csr", "scipy_csc", "scipy_coo"])
def test_pytree_scipy_isas_matrix(fmt):
    args = _tree_args()
    jac_fn = asdex.jacobian(_tree_fn, *args, argnums=(0, 1), output_format=fmt)
    expected = dense_jacobian(_tree_fn, *args, argnums=(0, 1))
    np.testing.assert_allclose(jac_fn(*args).toarray(), expected, rtol=1e-12)


def test_has_aux_and_kwargs():
    def f(x, *, shift):
        return x[1:] * x[:-1] + shift, {"norm": jnp.sum(x**2), "tag": "aux"}

    x = jnp.arange(1.0, 6.0)
    shift = jnp.ones(4)
    jac_fn = asdex.jacobian(f, x, has_aux=True, shift=shift, output_format="dense")
    J, aux = jac_fn(x, shift=shift)
    expected, expected_aux = jax.jacobian(f, has_aux=True)(x, shift=shift)
    np.testing.assert_allclose(J, expected)
    assert aux["tag"] == "aux"
    np.testing.assert_allclose(aux["norm"], expected_aux["norm"])
    value_fn = asdex.value_and_jacobian(f, x, has_aux=True, shift=shift)
    (value, aux), J = value_fn(x, shift=shift)
    np.testing.assert_allclose(value, f(x, shift=shift)[0])
    np.testing.assert_allclose(J.todense(), expected)


class _Params(eqx.Module):
    weight: jax.Array
    bias: jax.Array


class _Model(eqx.Module):
    coeff: jax.Array

    def __call__(self, params: _Params, x):
        return jnp.tanh(params.weight * x + params.bias) * self.coeff


def test_equinox_module_input_and_function():
    """An `eqx.Module` as the differentiated argument, and as the function itself."""
    rng = np.random.default_rng(3)
    params = _Params(
        jnp.asarray(rng.standard_normal(6)), jnp.asarray(rng.standard_normal(6))
    )
    x = jnp.asarray(rng.standard_normal(6))
    model = _Model(jnp.asarray(rng.standard_normal(6)))
    jac_fn = asdex.jacobian(model, params, x)
    coloring = jac_fn.coloring
    assert coloring.shape == (6, 12) and coloring.num_colors == 1
    _assert_tree_close(jac_fn(params, x), jax.jacobian(model)(params, x))
    # The module is a leaf of the sparse Jacobian: its parameters are dynamic.
    other = eqx.tree_at(
        lambda m: m.fn_dynamic.coeff, jac_fn, replace_fn=lambda c: c * 3
    )
    np.testing.assert_allclose(
        other(params, x).weight.todense(), 3 * jac_fn(params, x).weight.todense()
    )
    # ... and differentiable: gradients reach the module's parameters.
    grads = eqx.filter_grad(lambda j: j(params, x).bias.data.sum())(jac_fn)
    expected = jax.grad(lambda c: jax.jacobian(_Model(c))(params, x).bias.sum())(
        model.coeff
    )
    np.testing.assert_allclose(grads.fn_dynamic.coeff, expected, rtol=1e-12)


# ---------------------------------------------------------------------------- transformations


@pytest.mark.parametrize("mode", MODES)
def test_jit_vmap_grad(mode):
    x = jnp.asarray(np.random.default_rng(4).standard_normal(10))
    xs = jnp.stack([x, 2 * x, -x])
    jac_fn = asdex.jacobian(diff, x, mode=mode)
    expected = jax.vmap(jitted.jacfwd(diff))(xs)
    np.testing.assert_allclose(eqx.filter_jit(jac_fn)(x).todense(), expected[0])
    if mode == "fwd":
        np.testing.assert_allclose(jax.jit(jac_fn)(x).todense(), expected[0])
        np.testing.assert_allclose(
            jax.jit(lambda j, x: j(x).todense())(jac_fn, x), expected[0]
        )
    batched = jax.vmap(jac_fn)(xs)
    assert isinstance(batched, jsparse.BCOO) and batched.shape == (3, 9, 10)
    np.testing.assert_allclose(batched.todense(), expected)
    dense_fn = asdex.jacobian(diff, x, mode=mode, output_format="dense")
    np.testing.assert_allclose(jax.jit(jax.vmap(dense_fn))(xs), expected)
    # Differentiable: the derivative of sum(J) is that of sum(jacfwd).
    grad = jax.grad(lambda x: jac_fn(x).data.sum())(x)
    np.testing.assert_allclose(
        grad, jax.grad(lambda x: jitted.jacfwd(diff)(x).sum())(x)
    )


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("mode", MODES)
def test_dtypes(dtype, mode):
    x = jnp.asarray(np.random.default_rng(5).standard_normal(16), dtype)
    jac_fn = asdex.jacobian(lambda x: jnp.sin(x[1:]) * x[:-1], x, mode=mode)
    J = jac_fn(x)
    assert J.dtype == dtype
    expected = jitted.jacfwd(lambda x: jnp.sin(x[1:]) * x[:-1])(x)
    tol = 1e-6 if dtype == jnp.float32 else 1e-12
    np.testing.assert_allclose(J.todense(), expected, rtol=tol, atol=tol)


def test_pytree_float32_under_vmap_and_jit():
    args = _tree_args(jnp.float32)
    jac_fn = asdex.jacobian(_tree_fn, *args, argnums=(0, 1))
    p, q, scale = args
    qs = jnp.stack([q, q + 1])
    got = jax.jit(jax.vmap(lambda q: jac_fn(p, q, scale)))(qs)
    reference = jax.jacobian(_tree_fn, argnums=(0, 1))
    expected = jax.jit(jax.vmap(lambda q: reference(p, q, scale)))(qs)
    _assert_tree_close(got, expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- value and calls


def test_value_and_jacobian_evaluates_f_once():
    runs, traces = [], []

    def f(x):
        traces.append(None)
        jax.debug.callback(lambda: runs.append(None))
        return jnp.sin(x[1:]) * x[:-1]

    x = jnp.linspace(0.1, 1.0, 8)
    expected_value, expected = f(x), jitted.jacfwd(f)(x)
    for mode in MODES:
        value_fn = asdex.value_and_jacobian(f, x, mode=mode)
        runs.clear()
        traces.clear()
        value, J = value_fn(x)
        jax.effects_barrier()
        assert len(runs) == 1 and len(traces) == 1, mode
        value_fn(2 * x)
        jax.effects_barrier()
        assert len(runs) == 2 and len(traces) == 1, mode  # no retrace
        np.testing.assert_allclose(value, expected_value)
        np.testing.assert_allclose(J.todense(), expected)


def test_from_coloring_and_from_pattern():
    x = jnp.asarray(np.random.default_rng(6).standard_normal(30))
    expected = jitted.jacfwd(diff)(x)
    coloring = asdex.jacobian_coloring(diff, input_shape=30)
    for jac_fn in (
        asdex.jacobian_from_coloring(diff, coloring),
        asdex.jacobian_from_coloring(diff, coloring, x, output_format="dense"),
        asdex.jacobian_from_pattern(diff, coloring.pattern),
        asdex.jacobian_from_pattern(diff, coloring.pattern.to_scipy("csc")),
        asdex.jacobian_from_pattern(diff, coloring.pattern.to_bcoo(), mode="rev"),
        asdex.jacobian_from_pattern(diff, np.asarray(expected) != 0, x),
    ):
        np.testing.assert_allclose(as_matrix(jac_fn(x), (29, 30)), expected)
    value_fn = asdex.jacobian_from_coloring(diff, coloring, with_value=True)
    np.testing.assert_allclose(value_fn(x)[0], diff(x))


def test_saved_pattern_round_trip(tmp_path):
    pattern = asdex.jacobian_sparsity(diff, input_shape=20)
    pattern.save(tmp_path / "p.npz")
    jac_fn = asdex.jacobian_from_pattern(
        diff, asdex.SparsityPattern.load(tmp_path / "p.npz")
    )
    x = jnp.arange(20.0)
    np.testing.assert_allclose(jac_fn(x).todense(), jitted.jacfwd(diff)(x))


def test_nonzeros_follow_the_pattern():
    x = jnp.arange(1.0, 11.0)
    jac_fn = asdex.jacobian(diff, x)
    pattern = jac_fn.coloring.pattern
    values = jac_fn.nonzeros(x)
    np.testing.assert_allclose(
        values, jitted.jacfwd(diff)(x)[pattern.rows, pattern.cols]
    )


def test_empty_and_constant_functions():
    x = jnp.arange(4.0)
    jac_fn = asdex.jacobian(lambda x: jnp.zeros(3) + jnp.floor(x[:3]), x)
    assert jac_fn.coloring.num_colors == 0
    J = jac_fn(x)
    assert J.shape == (3, 4) and J.nse == 0
    np.testing.assert_array_equal(J.todense(), np.zeros((3, 4)))
    scalar_fn = asdex.jacobian(lambda s: s**2, jnp.asarray(3.0), output_format="dense")
    np.testing.assert_allclose(scalar_fn(jnp.asarray(3.0)), 6.0)


def test_no_dense_warning_where_dense_ad_takes_one_product():
    """One product is the least any coloring needs: nothing to warn about."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", asdex.DenseColoringWarning)
        scalar = asdex.jacobian(lambda s: s**2, jnp.asarray(3.0))
        gradient = asdex.jacobian(lambda x: jnp.sum(x**2), jnp.ones(5))
        one = asdex.jacobian(lambda x: jnp.sin(x), jnp.ones(1))
        column = asdex.jacobian(lambda s: s * jnp.arange(4.0), jnp.asarray(2.0))
        hessian = asdex.hessian(lambda x: jnp.sum(x**3), jnp.ones(1))
        coloring = asdex.jacobian_coloring(lambda x: jnp.sum(x**2), jnp.ones(5))
    assert scalar.coloring.num_colors == gradient.coloring.num_colors == 1
    assert one.coloring.num_colors == column.coloring.num_colors == 1
    assert hessian.coloring.num_colors == coloring.num_colors == 1
    np.testing.assert_allclose(gradient(jnp.arange(5.0)).todense(), 2 * jnp.arange(5.0))
    np.testing.assert_allclose(hessian(jnp.ones(1)).todense(), [[6.0]])
    # Two products or more, all needed, still warn.
    with pytest.warns(asdex.DenseColoringWarning):
        asdex.jacobian(lambda x: jnp.sum(x) * x[:2], jnp.ones(2))


def test_dense_coloring_warns_once():
    def dense(x):
        return jnp.sum(x) * x

    with pytest.warns(asdex.DenseColoringWarning, match="no fewer than dense"):
        jac_fn = asdex.jacobian(dense, input_shape=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error", asdex.DenseColoringWarning)
        jac_fn(jnp.arange(5.0))  # calls do not warn again
    np.testing.assert_allclose(
        jac_fn(jnp.arange(5.0)).todense(), jitted.jacfwd(dense)(jnp.arange(5.0))
    )


def test_check_jacobian():
    x = jnp.asarray(np.random.default_rng(7).standard_normal(40))
    jac_fn = asdex.jacobian(diff, x)
    report = asdex.check_jacobian(jac_fn, x)
    assert report.passed and report.method == "dense" and report.missing == 0
    assert "passed" in str(report)
    probes = asdex.check_jacobian(jac_fn, x, method="probes")
    assert probes.passed and probes.method == "probes"
    # A pattern that misses the superdiagonal is caught.
    wrong = asdex.SparsityPattern(np.arange(39), np.arange(39), (39, 40))
    bad_fn = asdex.jacobian_from_pattern(diff, wrong)
    with pytest.raises(AssertionError, match="missing"):
        asdex.check_jacobian(bad_fn, x)
    report = asdex.check_jacobian(bad_fn, x, raise_on_failure=False)
    assert not report.passed and report.missing == 39
    assert not asdex.check_jacobian(
        bad_fn, x, method="probes", raise_on_failure=False
    ).passed


def test_check_jacobian_probes_judge_each_row_by_its_own_scale():
    """A missing entry in a row of small entries is caught beside large rows.

    With one tolerance scaled by the largest product entry (about 1e8 here), the
    probes passed a Jacobian whose small rows lack an entry (an error of 1e-3,
    100% of that row's scale).
    """

    def f(x):
        return jnp.concatenate([1e8 * x[:3], 1e-3 * (x[4:] - x[3:-1])])

    x = jnp.asarray(np.random.default_rng(9).standard_normal(12))
    jac_fn = asdex.jacobian(f, x)
    assert asdex.check_jacobian(jac_fn, x, method="probes").passed
    # The small rows without their `-x[i]` entries.
    rows = np.concatenate([np.arange(3), np.arange(3, 11)])
    cols = np.concatenate([np.arange(3), np.arange(4, 12)])
    wrong = asdex.SparsityPattern(rows, cols, (11, 12))
    bad_fn = asdex.jacobian_from_pattern(f, wrong, x)
    report = asdex.check_jacobian(bad_fn, x, method="probes", raise_on_failure=False)
    assert not report.passed and report.scale < 1.0
    assert asdex.check_jacobian(bad_fn, x, raise_on_failure=False).missing == 8
