import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import pytest
from jax import lax

from helpers import (
    LINALG_CASES,
    assert_exact,
    assert_sound,
    assert_within,
    band,
    check_case,
    eye,
    full,
    ids,
    kron_eye,
    no_unknown_primitives,
)


@pytest.mark.parametrize("case", LINALG_CASES, ids=ids(LINALG_CASES))
def test_table(case):
    check_case(case)


_FLOAT32 = [
    c for c in LINALG_CASES if c.name in {"matvec_banded", "conv2d_stencil", "eigh"}
]


@pytest.mark.parametrize("case", _FLOAT32, ids=ids(_FLOAT32))
def test_table_float32(case):
    check_case(case, dtype=jnp.float32)


@pytest.mark.parametrize("n,lower,upper", [(8, 1, 1), (9, 0, 3), (7, 2, 0)])
def test_dot_general_constant_banded_is_exact_band(n, lower, upper):
    A = np.where(band(n, n, lower, upper), 1.0 + np.arange(n * n).reshape(n, n), 0.0)
    assert_exact(lambda x: A @ x, jnp.ones(n), band(n, n, lower, upper))
    # Against a matrix of inputs: row i of A @ X depends on X[k, j] with A[i, k] != 0.
    expected = np.kron(band(n, n, lower, upper), eye(2))
    assert_exact(lambda x: (A @ x.reshape(n, 2)).reshape(-1), jnp.ones(2 * n), expected)


def test_dot_general_constant_zero_rows_and_columns():
    A = np.array([[1.0, 0.0, 2.0], [0.0, 0.0, 0.0]])
    assert_exact(lambda x: A @ x, jnp.ones(3), A != 0)


def test_matmul_of_two_inputs_batched():
    # (2, 2, 3) @ (2, 3, 2): batches stay apart.
    def f(x):
        a = x[:12].reshape(2, 2, 3)
        b = x[12:].reshape(2, 3, 2)
        return (a @ b).reshape(-1)

    expected = np.zeros((8, 24), bool)
    for bt in range(2):
        for i in range(2):
            for j in range(2):
                r = bt * 4 + i * 2 + j
                expected[r, [bt * 6 + i * 3 + k for k in range(3)]] = True
                expected[r, [12 + bt * 6 + k * 2 + j for k in range(3)]] = True
    assert_exact(f, jnp.ones(24), expected)


def test_einsum_trace_and_contractions():
    assert_exact(
        lambda x: jnp.einsum("ii->", x),
        jnp.ones((3, 3)),
        np.eye(3, dtype=bool).reshape(1, 9),
    )
    assert_exact(
        lambda x: jnp.einsum("ij,ij->i", x, x),
        jnp.ones((2, 3)),
        kron_eye(2, full(1, 3)),
    )


@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_convolve_modes(mode):
    k = np.array([1.0, 0.0, -1.0])
    # Reference: the convolution of the identity.
    ref = np.stack([np.convolve(e, k, mode=mode) for e in np.eye(6)], axis=1) != 0
    assert_exact(lambda x: jnp.convolve(x, k, mode=mode), jnp.ones(6), ref)


def test_correlate_two_inputs_sound():
    assert_sound(lambda x: jnp.correlate(x[:5], x[5:], mode="full"), jnp.arange(8.0))


def test_conv2d_constant_stencil_exact():
    stencil = np.array([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
    h, w = 6, 5

    def f(x):
        out = lax.conv_general_dilated(
            x.reshape(1, 1, h, w), stencil.reshape(1, 1, 3, 3), (1, 1), "SAME"
        )
        return out.reshape(-1)

    i, j = np.indices((h, w))
    ii, jj = i.reshape(-1), j.reshape(-1)
    expected = np.abs(ii[:, None] - ii) + np.abs(jj[:, None] - jj) <= 1
    assert_exact(f, jnp.ones(h * w), expected)


def test_conv2d_nhwc_strided_dilated_sound():
    def f(x):
        img = x[:50].reshape(1, 5, 5, 2)
        ker = x[50:].reshape(2, 2, 2, 3)
        return lax.conv_general_dilated(
            img,
            ker,
            (2, 1),
            [(1, 0), (0, 1)],
            lhs_dilation=(1, 1),
            rhs_dilation=(1, 2),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )

    assert_sound(f, jnp.arange(74.0) / 10)


def test_depthwise_conv_keeps_channels_apart():
    ker = np.ones((3, 1, 3))  # (O=3 channels, I=1, W=3), feature groups = 3

    def f(x):
        return lax.conv_general_dilated(
            x.reshape(1, 3, 6), ker, (1,), "VALID", feature_group_count=3
        ).reshape(-1)

    per_channel = band(4, 6, 0, 2)
    assert_exact(f, jnp.ones(18), kron_eye(3, per_channel))


def test_conv_transpose_sound():
    ker = np.arange(1.0, 4.0).reshape(3, 1, 1)
    f = lambda x: lax.conv_transpose(
        x.reshape(1, 4, 1), ker, (2,), "SAME", dimension_numbers=("NWC", "WIO", "NWC")
    ).reshape(-1)
    assert_sound(f, jnp.arange(4.0))


# ----------------------------------------------------------------- batched decompositions


def _spd(x, n):
    a = x.reshape(n, n)
    return a @ a.T + n * jnp.eye(n)


_SINGLE = {
    "solve": (lambda x: jnp.linalg.solve(_spd(x[:4], 2), x[4:]), 6),
    "cholesky": (lambda x: jnp.linalg.cholesky(_spd(x, 2)).reshape(-1), 4),
    "qr": (
        lambda x: jnp.concatenate(
            [m.reshape(-1) for m in jnp.linalg.qr(x.reshape(3, 2))]
        ),
        6,
    ),
    "eigh": (
        lambda x: jnp.concatenate([m.reshape(-1) for m in jnp.linalg.eigh(_spd(x, 2))]),
        4,
    ),
    "svd": (lambda x: jnp.linalg.svd(x.reshape(3, 2), compute_uv=False), 6),
    "triangular_solve": (
        lambda x: jsl.solve_triangular(
            jnp.tril(x[:4].reshape(2, 2)) + 3 * jnp.eye(2),
            x[4:].reshape(2, 2),
            lower=True,
        ).reshape(-1),
        8,
    ),
    "lu": (lambda x: jsl.lu_factor(_spd(x, 2))[0].reshape(-1), 4),
    "fft": (lambda x: jnp.concatenate([jnp.fft.fft(x).real, jnp.fft.fft(x).imag]), 4),
    "rfft2": (lambda x: jnp.abs(jnp.fft.rfft2(x.reshape(2, 3))).reshape(-1), 6),
    "tridiagonal_solve": (
        lambda x: lax.linalg.tridiagonal_solve(
            jnp.concatenate([jnp.zeros(1), x[:2]]),
            4.0 + x[2:5],
            jnp.concatenate([x[5:7], jnp.zeros(1)]),
            x[7:10, None],
        )[:, 0],
        10,
    ),
    "det": (lambda x: jnp.linalg.det(_spd(x, 2))[None], 4),
    "inv": (lambda x: jnp.linalg.inv(_spd(x, 2)).reshape(-1), 4),
    "slogdet": (lambda x: jnp.linalg.slogdet(_spd(x, 2))[1][None], 4),
    "pinv": (lambda x: jnp.linalg.pinv(x.reshape(3, 2)).reshape(-1), 6),
    "lstsq": (lambda x: jnp.linalg.lstsq(x[:6].reshape(3, 2), x[6:])[0], 9),
    "eigvalsh": (lambda x: jnp.linalg.eigvalsh(_spd(x, 2)), 4),
}


@pytest.mark.parametrize("name", list(_SINGLE))
def test_vmap_batched_linalg_is_block_diagonal(name):
    single, n_in = _SINGLE[name]
    batches = 3
    x1 = jnp.asarray(np.random.default_rng(0).uniform(0.5, 1.5, n_in))
    xb = jnp.asarray(np.random.default_rng(1).uniform(0.5, 1.5, batches * n_in))

    def batched(x):
        return jax.vmap(single)(x.reshape(batches, n_in)).reshape(-1)

    with no_unknown_primitives():
        p1 = assert_sound(single, x1)
        pb = assert_sound(batched, xb)
    # Each batch element sees only its own inputs, exactly as the unbatched pattern.
    np.testing.assert_array_equal(pb.todense(), kron_eye(batches, p1.todense()))


def test_triangular_solve_keeps_columns_apart():
    single, _ = _SINGLE["triangular_solve"]
    p = assert_sound(single, jnp.ones(8))
    # X[:, j] depends on the lower triangle of A and on B[:, j] only.
    lower = np.array([1, 0, 1, 1], bool)
    bound = np.zeros((4, 8), bool)
    for i in range(2):
        for j in range(2):
            bound[2 * i + j, :4] = lower
            bound[2 * i + j, 4 + j :: 2] = True
    assert_within(p, bound)


def test_tridiagonal_solve_multiple_rhs_keeps_columns_apart():
    def f(x):
        n = 4
        dl = jnp.concatenate([jnp.zeros(1), 0.1 * x[: n - 1]])
        du = jnp.concatenate([0.1 * x[: n - 1], jnp.zeros(1)])
        return lax.linalg.tridiagonal_solve(
            dl, 4.0 + jnp.zeros(n), du, x[3:].reshape(n, 2)
        ).reshape(-1)

    p = assert_sound(f, jnp.ones(11))
    bound = np.zeros((8, 11), bool)
    bound[:, :3] = True
    for r in range(8):
        bound[r, 3 + r % 2 :: 2] = True
    assert_within(p, bound)


def test_fft_along_last_axis_keeps_rows_apart():
    f = lambda x: jnp.fft.fft(x.reshape(3, 4), axis=-1).real.reshape(-1)
    p = assert_sound(f, jnp.arange(12.0))
    assert_within(p, kron_eye(3, full(4, 4)))


def test_block_diagonal_solve_without_vmap():
    # Two independent 2x2 systems written out with jnp.linalg.solve on a batch.
    def f(x):
        a = x[:8].reshape(2, 2, 2) + 3 * jnp.eye(2)
        b = x[8:].reshape(2, 2, 1)
        return jnp.linalg.solve(a, b).reshape(-1)

    p = assert_sound(f, jnp.ones(12))
    # Output (b, i) depends on the whole matrix a[b] and the whole vector b[b].
    expected = np.concatenate(
        [kron_eye(2, full(2, 4)), kron_eye(2, full(2, 2))], axis=1
    )
    np.testing.assert_array_equal(p.todense(), expected)
