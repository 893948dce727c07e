"""A broad sample of `jax.numpy`, `jax.nn`, `jax.scipy` and `jax.lax` functions.

No primitive they use may fall back to the unknown-primitive rule (an
`asdex.UnknownPrimitiveWarning`), unless it is on the documented short list
`asdex.detection.INTENTIONALLY_CONSERVATIVE` (those give no warning). Every pattern
must also contain the dense Jacobian's nonzeros.
"""

import warnings

import jax
import jax.nn as jnn
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import jax.scipy.special as jss
import numpy as np
import pytest
from jax import lax

import asdex
from helpers import assert_sound

_rng = np.random.default_rng(0)
V = jnp.asarray(_rng.uniform(0.5, 1.5, 6))  # positive vector
M = jnp.asarray(_rng.uniform(0.5, 1.5, (3, 3)))
R = jnp.asarray(_rng.uniform(0.5, 1.5, (3, 4)))
I4 = jnp.asarray(_rng.uniform(0.5, 1.5, (1, 4, 4, 1)))  # NHWC image


def _spd(m):
    return m @ m.T + 3 * jnp.eye(m.shape[0])


# (name, f, sample) — all on positive inputs; the oracle draws from [0.5, 1.5].
FUNCTIONS = [
    # jax.numpy: elementwise
    ("jnp.sin", jnp.sin, V),
    ("jnp.cos", jnp.cos, V),
    ("jnp.tan", jnp.tan, V),
    ("jnp.arcsin", lambda x: jnp.arcsin(x / 2), V),
    ("jnp.arccos", lambda x: jnp.arccos(x / 2), V),
    ("jnp.arctan", jnp.arctan, V),
    ("jnp.sinh", jnp.sinh, V),
    ("jnp.cosh", jnp.cosh, V),
    ("jnp.tanh", jnp.tanh, V),
    ("jnp.arcsinh", jnp.arcsinh, V),
    ("jnp.arccosh", lambda x: jnp.arccosh(1 + x), V),
    ("jnp.arctanh", lambda x: jnp.arctanh(x / 2), V),
    ("jnp.exp", jnp.exp, V),
    ("jnp.exp2", jnp.exp2, V),
    ("jnp.expm1", jnp.expm1, V),
    ("jnp.log", jnp.log, V),
    ("jnp.log2", jnp.log2, V),
    ("jnp.log10", jnp.log10, V),
    ("jnp.log1p", jnp.log1p, V),
    ("jnp.sqrt", jnp.sqrt, V),
    ("jnp.cbrt", jnp.cbrt, V),
    ("jnp.reciprocal", jnp.reciprocal, V),
    ("jnp.power", lambda x: jnp.power(x, 2.5), V),
    ("jnp.float_power", lambda x: jnp.float_power(x, x), V),
    ("jnp.logaddexp", lambda x: jnp.logaddexp(x[:3], x[3:]), V),
    ("jnp.logaddexp2", lambda x: jnp.logaddexp2(x[:3], x[3:]), V),
    ("jnp.hypot", lambda x: jnp.hypot(x[:3], x[3:]), V),
    ("jnp.arctan2", lambda x: jnp.arctan2(x[:3], x[3:]), V),
    ("jnp.fmod", lambda x: jnp.fmod(x[:3], x[3:]), V),
    ("jnp.copysign", lambda x: jnp.copysign(x[:3], x[3:] - 1), V),
    ("jnp.sinc", jnp.sinc, V),
    ("jnp.deg2rad", jnp.deg2rad, V),
    ("jnp.heaviside", lambda x: jnp.heaviside(x - 1, 0.5) * x, V),
    ("jnp.nan_to_num", jnp.nan_to_num, V),
    ("jnp.clip", lambda x: jnp.clip(x, 0.7, 1.2), V),
    ("jnp.fmax", lambda x: jnp.fmax(x[:3], x[3:]), V),
    ("jnp.modf", lambda x: jnp.modf(x * 3)[0], V),
    # jax.numpy: structure, indexing and reductions
    ("jnp.outer", lambda x: jnp.outer(x[:2], x[2:]), V),
    ("jnp.kron", lambda x: jnp.kron(x[:2], x[2:4]), V),
    ("jnp.cross", lambda x: jnp.cross(x[:3], x[3:]), V),
    ("jnp.trace", jnp.trace, M),
    ("jnp.tril", jnp.tril, M),
    ("jnp.triu", lambda x: jnp.triu(x, 1), M),
    ("jnp.diagonal", jnp.diagonal, M),
    ("jnp.fliplr", jnp.fliplr, M),
    ("jnp.rot90", jnp.rot90, R),
    ("jnp.roll", lambda x: jnp.roll(x, 2), V),
    ("jnp.tile", lambda x: jnp.tile(x, 2), V),
    ("jnp.repeat", lambda x: jnp.repeat(x, 2, axis=0), M),
    ("jnp.pad_wrap", lambda x: jnp.pad(x, 2, mode="wrap"), V),
    ("jnp.pad_symmetric", lambda x: jnp.pad(x, 2, mode="symmetric"), V),
    ("jnp.pad_linear_ramp", lambda x: jnp.pad(x, 2, mode="linear_ramp"), V),
    ("jnp.take", lambda x: jnp.take(x, np.array([0, 5, 2])), V),
    ("jnp.diff_2", lambda x: jnp.diff(x, n=2), V),
    ("jnp.ediff1d", jnp.ediff1d, V),
    ("jnp.gradient", jnp.gradient, V),
    ("jnp.trapezoid", jnp.trapezoid, V),
    ("jnp.cumsum", jnp.cumsum, V),
    ("jnp.nancumsum", jnp.nancumsum, V),
    ("jnp.cumprod", lambda x: jnp.cumprod(x, axis=1), R),
    ("jnp.max", lambda x: jnp.max(x, axis=0), R),
    ("jnp.amin", lambda x: jnp.amin(x, axis=1), R),
    ("jnp.ptp", lambda x: jnp.ptp(x, axis=1), R),
    ("jnp.mean", lambda x: jnp.mean(x, 0), R),
    ("jnp.std", lambda x: jnp.std(x, axis=1), R),
    ("jnp.average", lambda x: jnp.average(x, weights=x), V),
    ("jnp.median", jnp.median, V),
    ("jnp.quantile", lambda x: jnp.quantile(x, 0.3), V),
    ("jnp.percentile", lambda x: jnp.percentile(x, 70.0), V),
    ("jnp.nanmean", jnp.nanmean, V),
    ("jnp.nansum", jnp.nansum, V),
    ("jnp.sort", jnp.sort, V),
    ("jnp.partition", lambda x: jnp.partition(x, 2), V),
    ("jnp.where", lambda x: jnp.where(x > 1, x, x**2), V),
    ("jnp.select", lambda x: jnp.select([x < 0.8, x > 1.2], [x, x**2], 0.0), V),
    (
        "jnp.piecewise",
        lambda x: jnp.piecewise(x, [x < 1], [lambda v: v**2, lambda v: v]),
        V,
    ),
    (
        "jnp.interp",
        lambda x: jnp.interp(x[:3], np.linspace(0, 2, 5), np.arange(5.0)),
        V,
    ),
    (
        "jnp.interp_fp",
        lambda x: jnp.interp(np.array([0.3, 1.4]), np.linspace(0, 2, 6), x),
        V,
    ),
    (
        "jnp.convolve",
        lambda x: jnp.convolve(x, np.array([1.0, -2.0, 1.0]), mode="same"),
        V,
    ),
    ("jnp.correlate", lambda x: jnp.correlate(x, np.array([0.5, 1.0])), V),
    ("jnp.polyval", lambda x: jnp.polyval(x[:3], x[3:]), V),
    ("jnp.vander", lambda x: jnp.vander(x[:3], 3), V),
    (
        "jnp.histogram_weights",
        lambda x: jnp.histogram(x, bins=3, range=(0.0, 2.0), weights=x)[0],
        V,
    ),
    ("jnp.einsum", lambda x: jnp.einsum("ij,jk->ik", x, x), M),
    ("jnp.tensordot", lambda x: jnp.tensordot(x, x, axes=1), M),
    ("jnp.linalg.norm", lambda x: jnp.linalg.norm(x, axis=1), R),
    ("jnp.linalg.matrix_power", lambda x: jnp.linalg.matrix_power(x, 3), M),
    ("jnp.linalg.slogdet", lambda x: jnp.linalg.slogdet(_spd(x))[1], M),
    ("jnp.linalg.eigvalsh", lambda x: jnp.linalg.eigvalsh(_spd(x)), M),
    ("jnp.linalg.svd", lambda x: jnp.linalg.svd(x, full_matrices=False)[0], R),
    ("jnp.linalg.qr", lambda x: jnp.linalg.qr(x)[0], R),
    ("jnp.linalg.pinv", jnp.linalg.pinv, R),
    ("jnp.linalg.lstsq", lambda x: jnp.linalg.lstsq(x[:, :2], x[:, 3])[0], R),
    ("jnp.linalg.eig", lambda x: jnp.abs(jnp.linalg.eigvals(_spd(x))), M),
    ("jnp.fft.rfft", lambda x: jnp.abs(jnp.fft.rfft(x)), V),
    ("jnp.fft.ifft", lambda x: jnp.fft.ifft(x).real, V),
    ("jnp.fft.fft2", lambda x: jnp.fft.fft2(x).imag, R),
    # jax.nn
    ("jnn.relu", jnn.relu, V),
    ("jnn.relu6", jnn.relu6, V),
    ("jnn.sigmoid", jnn.sigmoid, V),
    ("jnn.softplus", jnn.softplus, V),
    ("jnn.silu", jnn.silu, V),
    ("jnn.gelu", jnn.gelu, V),
    ("jnn.gelu_exact", lambda x: jnn.gelu(x, approximate=False), V),
    ("jnn.elu", jnn.elu, V),
    ("jnn.celu", jnn.celu, V),
    ("jnn.selu", jnn.selu, V),
    ("jnn.leaky_relu", jnn.leaky_relu, V),
    ("jnn.hard_tanh", jnn.hard_tanh, V),
    ("jnn.log_sigmoid", jnn.log_sigmoid, V),
    ("jnn.softmax", lambda x: jnn.softmax(x, axis=-1), R),
    ("jnn.log_softmax", lambda x: jnn.log_softmax(x, axis=0), R),
    ("jnn.logsumexp", lambda x: jnn.logsumexp(x, axis=1), R),
    ("jnn.standardize", lambda x: jnn.standardize(x, axis=-1), R),
    ("jnn.one_hot_mul", lambda x: jnn.one_hot(np.array([1, 0, 2]), 3) @ x, M),
    ("jnn.glu", lambda x: jnn.glu(x, axis=-1), R),
    ("jnn.mish", jnn.mish, V),
    ("jnn.sparse_plus", jnn.sparse_plus, V),
    ("jnn.squareplus", jnn.squareplus, V),
    (
        "jnn.dot_product_attention",
        lambda x: jnn.dot_product_attention(
            x[None, :, None, :], x[None, :, None, :], x[None, :, None, :]
        ),
        R,
    ),
    # jax.scipy.special
    ("jss.erf", jss.erf, V),
    ("jss.erfc", jss.erfc, V),
    ("jss.erfinv", lambda x: jss.erfinv(x / 2), V),
    ("jss.gammaln", jss.gammaln, V),
    ("jss.digamma", jss.digamma, V),
    ("jss.polygamma", lambda x: jss.polygamma(1, x), V),
    ("jss.gamma", jss.gamma, V),
    ("jss.gammainc", lambda x: jss.gammainc(x[:3], x[3:]), V),
    ("jss.gammaincc", lambda x: jss.gammaincc(x[:3], x[3:]), V),
    ("jss.betainc", lambda x: jss.betainc(2.0, 3.0, x / 2), V),
    ("jss.betaln", lambda x: jss.betaln(x[:3], x[3:]), V),
    ("jss.xlogy", lambda x: jss.xlogy(x[:3], x[3:]), V),
    ("jss.xlog1py", lambda x: jss.xlog1py(x, x), V),
    ("jss.entr", jss.entr, V),
    ("jss.expit", jss.expit, V),
    ("jss.logit", lambda x: jss.logit(x / 2), V),
    ("jss.logsumexp", lambda x: jss.logsumexp(x, b=x), V),
    ("jss.i0e", jss.i0e, V),
    ("jss.i1e", jss.i1e, V),
    ("jss.i0", jss.i0, V),
    ("jss.i1", jss.i1, V),
    ("jss.ndtr", jss.ndtr, V),
    ("jss.ndtri", lambda x: jss.ndtri(x / 2), V),
    ("jss.log_ndtr", jss.log_ndtr, V),
    ("jss.zeta", lambda x: jss.zeta(1.0 + x, x), V),
    ("jss.multigammaln", lambda x: jss.multigammaln(2.0 + x, 2), V),
    ("jss.kl_div", lambda x: jss.kl_div(x[:3], x[3:]), V),
    ("jss.rel_entr", lambda x: jss.rel_entr(x[:3], x[3:]), V),
    ("jss.spence", jss.spence, V),
    ("jss.expi", jss.expi, V),
    ("jss.exp1", jss.exp1, V),
    ("jss.softmax", lambda x: jss.softmax(x, axis=0), R),
    # jax.scipy.linalg
    ("jsl.cholesky", lambda x: jsl.cholesky(_spd(x), lower=True), M),
    ("jsl.cho_solve", lambda x: jsl.cho_solve(jsl.cho_factor(_spd(x)), x[:, 0]), M),
    ("jsl.lu_factor", lambda x: jsl.lu_factor(_spd(x))[0], M),
    ("jsl.lu_solve", lambda x: jsl.lu_solve(jsl.lu_factor(_spd(x)), x[0]), M),
    ("jsl.solve", lambda x: jsl.solve(_spd(x), x[1], assume_a="pos"), M),
    (
        "jsl.solve_triangular",
        lambda x: jsl.solve_triangular(jnp.triu(x) + 3 * jnp.eye(3), x[2]),
        M,
    ),
    ("jsl.qr", lambda x: jsl.qr(x, mode="economic")[1], R),
    ("jsl.eigh", lambda x: jsl.eigh(_spd(x), eigvals_only=True), M),
    ("jsl.svd", lambda x: jsl.svd(x, compute_uv=False), R),
    ("jsl.det", lambda x: jsl.det(_spd(x)), M),
    ("jsl.inv", lambda x: jsl.inv(_spd(x)), M),
    ("jsl.expm", lambda x: jsl.expm(0.1 * x), M),
    ("jsl.sqrtm", lambda x: jnp.real(jsl.sqrtm(_spd(x))), M),
    ("jsl.schur", lambda x: jsl.schur(_spd(x))[0], M),
    ("jsl.hessenberg", lambda x: jsl.hessenberg(_spd(x)), M),
    ("jsl.block_diag", lambda x: jsl.block_diag(x[:2, :2], x[2:, 2:]), M),
    ("jsl.toeplitz", lambda x: jsl.toeplitz(x[:3], x[3:]), V),
    # jax.lax
    ("lax.rsqrt", lax.rsqrt, V),
    ("lax.logistic", lax.logistic, V),
    ("lax.erf_inv", lambda x: lax.erf_inv(x / 2), V),
    ("lax.lgamma", lax.lgamma, V),
    ("lax.igamma", lambda x: lax.igamma(x[:3], x[3:]), V),
    ("lax.bessel_i1e", lax.bessel_i1e, V),
    ("lax.reduce_precision", lambda x: lax.reduce_precision(x, 5, 10), V),
    ("lax.rem", lambda x: lax.rem(x[:3], x[3:]), V),
    ("lax.pow", lambda x: lax.pow(x[:3], x[3:]), V),
    ("lax.select_n", lambda x: lax.select_n(x[:3] > 1, x[:3], x[3:]), V),
    ("lax.clamp", lambda x: lax.clamp(0.7, x, 1.2), V),
    ("lax.dynamic_slice", lambda x: lax.dynamic_slice(x, (1, 1), (2, 2)), R),
    (
        "lax.dynamic_update_slice",
        lambda x: lax.dynamic_update_slice(x, x[:1, :2] ** 2, (2, 1)),
        R,
    ),
    (
        "lax.dynamic_slice_traced",
        lambda x: lax.dynamic_slice(x, (jnp.argmax(x),), (2,)),
        V,
    ),
    ("lax.gather_traced", lambda x: x[jnp.argsort(x)[:3]], V),
    ("lax.scatter_traced", lambda x: jnp.zeros(4).at[jnp.argsort(x)[:3]].add(x[:3]), V),
    ("lax.sort_multi", lambda x: lax.sort((x[:3], x[3:]), num_keys=1)[1], V),
    ("lax.top_k", lambda x: lax.top_k(x, 3)[0], V),
    ("lax.approx_max_k", lambda x: lax.approx_max_k(x, 2)[0], V),
    ("lax.cummax", lambda x: lax.cummax(x, reverse=True), V),
    ("lax.cumlogsumexp", lax.cumlogsumexp, V),
    (
        "lax.reduce_window",
        lambda x: lax.reduce_window(x, 0.0, lax.add, (2, 2), (1, 1), "SAME"),
        R,
    ),
    (
        "lax.reduce_window_max",
        lambda x: lax.reduce_window(x, -jnp.inf, lax.max, (2,), (1,), "VALID"),
        V,
    ),
    (
        "lax.conv",
        lambda x: lax.conv_general_dilated(
            x,
            np.ones((2, 2, 1, 2)),
            (1, 1),
            "SAME",
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        ),
        I4,
    ),
    (
        "lax.conv_lhs_dilation",
        lambda x: lax.conv_general_dilated(
            x,
            np.ones((2, 2, 1, 1)),
            (1, 1),
            [(0, 0), (1, 0)],
            lhs_dilation=(2, 1),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        ),
        I4,
    ),
    (
        "lax.dot_general_batch",
        lambda x: lax.dot_general(x, x, (((2,), (1,)), ((0,), (0,)))),
        R.reshape(3, 2, 2),
    ),
    ("lax.linalg.tridiagonal", lambda x: lax.linalg.tridiagonal(_spd(x))[1], M),
    (
        "lax.linalg.tridiagonal_solve",
        lambda x: lax.linalg.tridiagonal_solve(
            jnp.concatenate([jnp.zeros(1), x[:2]]),
            4 + x[2:5],
            jnp.concatenate([x[3:5], jnp.zeros(1)]),
            x[:3, None],
        ),
        V,
    ),
    ("lax.linalg.qr", lambda x: lax.linalg.qr(x)[1], R),
    (
        "lax.fori_loop",
        lambda x: lax.fori_loop(0, 3, lambda i, c: jnp.roll(c, 1) * c, x),
        V,
    ),
    (
        "lax.while_loop",
        lambda x: lax.while_loop(lambda c: c[0] < 5, lambda c: c * 1.5, x),
        V,
    ),
    ("lax.scan", lambda x: lax.scan(lambda c, xi: (c * xi, c), 1.0, x)[1], V),
    ("lax.associative_scan", lambda x: lax.associative_scan(jnp.multiply, x), V),
    ("lax.map", lambda x: lax.map(jnp.cumsum, x), R),
    (
        "lax.switch",
        lambda x: lax.switch(jnp.argmax(x) % 3, [jnp.sin, jnp.cos, jnp.flip], x),
        V,
    ),
    ("lax.cond", lambda x: lax.cond(x[0] > 1, jnp.flip, jnp.sin, x), V),
    ("lax.stop_gradient", lambda x: x * lax.stop_gradient(x), V),
    ("lax.optimization_barrier", lambda x: lax.optimization_barrier(x) * 2, V),
    (
        "lax.custom_root",
        lambda x: lax.custom_root(
            lambda y: y**2 - x,
            x,
            lambda g, y0: lax.while_loop(
                lambda y: jnp.max(jnp.abs(g(y))) > 1e-10,
                lambda y: y - g(y) / (2 * y),
                y0,
            ),
            lambda g, y: y / (2 * x),
        ),
        V,
    ),
    (
        "lax.reduce_and_argmax",
        lambda x: x * jnp.argmax(x, axis=0).astype(x.dtype)[None],
        R,
    ),
    (
        "lax.population_count_free",
        lambda x: x * lax.population_count(jnp.arange(6)).astype(x.dtype),
        V,
    ),
    ("lax.rng", lambda x: x * jax.random.uniform(jax.random.PRNGKey(0), x.shape), V),
    (
        "lax.rng_typed_key",
        lambda x: x * jax.random.normal(jax.random.key(0), x.shape),
        V,
    ),
    (
        "lax.bitcast",
        lambda x: x * lax.bitcast_convert_type(x, jnp.int64).astype(x.dtype) * 0 + x,
        V,
    ),
]

_NAMES = [name for name, _, _ in FUNCTIONS]

# JAX itself cannot differentiate these, so there is no dense oracle; detection must
# still know their primitives.
_NO_ORACLE = {"jsl.sqrtm", "jsl.schur", "jsl.hessenberg", "lax.linalg.tridiagonal"}


def test_the_sample_is_broad():
    assert len(FUNCTIONS) >= 80
    assert len(set(_NAMES)) == len(_NAMES)
    for prefix in ("jnp.", "jnn.", "jss.", "jsl.", "lax."):
        assert sum(n.startswith(prefix) for n in _NAMES) >= 8


@pytest.mark.parametrize("name,f,x", FUNCTIONS, ids=_NAMES)
def test_no_unknown_primitive_and_sound(name, f, x):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pattern = asdex.jacobian_sparsity(f, x)
    unknown = [
        str(w.message)
        for w in caught
        if issubclass(w.category, asdex.UnknownPrimitiveWarning)
    ]
    assert not unknown, f"{name}: {unknown}"
    if name not in _NO_ORACLE:
        assert_sound(f, x, pattern=pattern, positive=True, n_points=2)


def test_intentionally_conservative_list_is_short_and_documented():
    conservative = asdex.detection.INTENTIONALLY_CONSERVATIVE
    assert len(conservative) <= 12
    for name, reason in conservative.items():
        assert isinstance(reason, str) and reason, name
        assert name in asdex.detection.RULES
