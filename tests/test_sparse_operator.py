"""`asdex.lineax.SparseMatrixOperator` and `sparsify` against dense Lineax operators.

The oracle is `lx.MatrixLinearOperator` of the dense matrix: products, transposes,
the dense matrix itself and all thirteen singledispatch functions must agree.
"""

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest
import scipy.sparse as sp

from asdex import SparsityPattern
from asdex.lineax import (
    SparseMatrixOperator,
    damped_operator,
    pattern_indices,
    sparsify,
)


def random_sparse(rng, m, n, density=0.3, diagonal=0.0, dtype=np.float64):
    matrix = rng.normal(size=(m, n)) * (rng.random((m, n)) < density)
    k = min(m, n)
    matrix[np.arange(k), np.arange(k)] += diagonal
    return matrix.astype(dtype)


def flat(tree):
    return np.concatenate([np.ravel(x) for x in jax.tree.leaves(tree)])


SHAPES = [(7, 7), (9, 5), (4, 8)]


@jax.jit
def _products(operator, dense, x, y):
    twice = operator.T.T
    return (
        (operator.mv(x), dense.mv(x)),
        (operator.T.mv(y), dense.T.mv(y)),
        (operator.as_matrix(), dense.as_matrix()),
        (operator.T.as_matrix(), dense.as_matrix().T),
        (twice.values, operator.values),
        (twice.indices.transpose_perm, operator.indices.transpose_perm),
    )


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_mv_transpose_as_matrix(rng, shape, dtype):
    m, n = shape
    matrix = random_sparse(rng, m, n, dtype=dtype)
    operator = SparseMatrixOperator.from_dense(matrix)
    dense = lx.MatrixLinearOperator(jnp.asarray(matrix))
    x = jnp.asarray(rng.normal(size=n), dtype)
    y = jnp.asarray(rng.normal(size=m), dtype)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert operator.values.dtype == dtype
    assert operator.in_structure() == dense.in_structure()
    assert operator.out_structure() == dense.out_structure()
    for ours, theirs in _products(operator, dense, x, y):
        assert ours.dtype == theirs.dtype
        np.testing.assert_allclose(ours, theirs, atol=tol)
    # Transposing twice gives back the same (interned) pattern object.
    assert operator.T.T.pattern is operator.pattern
    assert operator.T.pattern == operator.pattern.T


def test_pytree_structures(rng):
    ins = {
        "a": jax.ShapeDtypeStruct((2, 3), jnp.float64),
        "b": jax.ShapeDtypeStruct((4,), jnp.float64),
    }
    outs = (
        jax.ShapeDtypeStruct((3,), jnp.float64),
        jax.ShapeDtypeStruct((2, 2), jnp.float64),
    )
    matrix = random_sparse(rng, 7, 10, density=0.4)
    operator = SparseMatrixOperator.from_dense(matrix, ins, outs)
    assert operator.in_structure() == ins and operator.out_structure() == outs
    assert operator.in_size() == 10 and operator.out_size() == 7
    x = {
        "a": jnp.asarray(rng.normal(size=(2, 3))),
        "b": jnp.asarray(rng.normal(size=4)),
    }
    y = operator.mv(x)
    assert jax.tree.structure(y) == jax.tree.structure(outs)
    assert [leaf.shape for leaf in y] == [(3,), (2, 2)]
    np.testing.assert_allclose(flat(y), matrix @ flat(x), atol=1e-12)
    z = operator.T.mv(y)
    assert jax.tree.structure(z) == jax.tree.structure(ins)
    np.testing.assert_allclose(flat(z), matrix.T @ flat(y), atol=1e-12)
    # Lineax's layout for PyTree operators is the same flat layout.
    blocks = lx.materialise(lx.FunctionLinearOperator(lambda v: operator.mv(v), ins))
    np.testing.assert_allclose(blocks.as_matrix(), matrix, atol=1e-12)


# The structured cases: a matrix, its tags, and the queries the pattern proves.
def _structured_cases(rng):
    n = 6
    general = random_sparse(rng, n, n, diagonal=3.0)
    sym = general + general.T
    spd = sym @ sym.T + n * np.eye(n)
    tri = (
        np.diag(rng.normal(size=n))
        + np.diag(rng.normal(size=n - 1), 1)
        + np.diag(rng.normal(size=n - 1), -1)
    )
    unit_lower = np.tril(general, -1) + np.eye(n)
    return [
        ("general", general, (), set()),
        (
            "diagonal",
            np.diag(rng.normal(size=n) + 2),
            (),
            {"diagonal", "tridiagonal", "lower", "upper", "symmetric"},
        ),
        ("tridiagonal", tri, (), {"tridiagonal"}),
        ("lower", np.tril(general), (), {"lower"}),
        ("upper", np.triu(general), (), {"upper"}),
        ("unit-lower", unit_lower, lx.unit_diagonal_tag, {"lower", "unit"}),
        ("symmetric", sym, lx.symmetric_tag, {"symmetric"}),
        ("psd", spd, lx.positive_semidefinite_tag, {"symmetric", "psd"}),
        ("nsd", -spd, lx.negative_semidefinite_tag, {"symmetric", "nsd"}),
    ]


_QUERIES = {
    "symmetric": lx.is_symmetric,
    "diagonal": lx.is_diagonal,
    "tridiagonal": lx.is_tridiagonal,
    "lower": lx.is_lower_triangular,
    "upper": lx.is_upper_triangular,
    "unit": lx.has_unit_diagonal,
    "psd": lx.is_positive_semidefinite,
    "nsd": lx.is_negative_semidefinite,
}


@jax.jit
def _dispatched(operator, dense, x):
    return (
        (lx.linearise(operator).mv(x), dense.mv(x)),
        (lx.materialise(operator).mv(x), dense.mv(x)),
        (lx.diagonal(operator), lx.diagonal(dense)),
        *zip(lx.tridiagonal(operator), lx.tridiagonal(dense), strict=True),
        (lx.conj(operator).as_matrix(), lx.conj(dense).as_matrix()),
    )


def test_singledispatch_functions(rng):
    for name, matrix, tags, expected in _structured_cases(rng):
        operator = SparseMatrixOperator.from_dense(matrix, tags=tags)
        dense = lx.MatrixLinearOperator(jnp.asarray(matrix), tags)
        x = jnp.asarray(rng.normal(size=matrix.shape[1]))
        for query_name, query in _QUERIES.items():
            assert query(operator) == (query_name in expected), (name, query_name)
            # Whatever Lineax concludes from the tags, the sparse operator concludes.
            if query(dense):
                assert query(operator), (name, query_name)
        assert lx.materialise(operator) is operator
        assert lx.linearise(operator) is operator
        for ours, theirs in _dispatched(operator, dense, x):
            np.testing.assert_allclose(ours, theirs, atol=1e-12)


def test_conj_complex(rng):
    matrix = random_sparse(rng, 5, 5) + 1j * random_sparse(rng, 5, 5)
    operator = SparseMatrixOperator.from_dense(matrix)
    np.testing.assert_allclose(lx.conj(operator).as_matrix(), matrix.conj())
    x = jnp.asarray(rng.normal(size=5) + 1j * rng.normal(size=5))
    np.testing.assert_allclose(operator.mv(x), matrix @ np.asarray(x), atol=1e-12)
    # Semidefinite tags imply symmetric only for real matrices (Hermitian otherwise).
    herm = matrix @ matrix.conj().T + 5 * np.eye(5)
    tagged = SparseMatrixOperator.from_dense(herm, tags=lx.positive_semidefinite_tag)
    assert not lx.is_symmetric(tagged)


def test_structure_claims_need_equal_structures(rng):
    # A diagonal pattern between different structures is not a Lineax diagonal
    # operator: its `DiagonalLinearOperator` fast path would return the input's
    # structure.
    ins = (
        jax.ShapeDtypeStruct((2,), jnp.float64),
        jax.ShapeDtypeStruct((2,), jnp.float64),
    )
    outs = jax.ShapeDtypeStruct((4,), jnp.float64)
    operator = SparseMatrixOperator.from_dense(np.diag([1.0, 2, 3, 4]), ins, outs)
    assert not lx.is_diagonal(operator)
    assert not lx.is_lower_triangular(operator)
    np.testing.assert_allclose(lx.diagonal(operator), [1, 2, 3, 4])


def test_jit_arguments_not_constants(rng):
    matrix = random_sparse(rng, 50, 40, density=0.2)
    operator = SparseMatrixOperator.from_dense(matrix)
    x = jnp.asarray(rng.normal(size=40))
    jaxpr = jax.make_jaxpr(lambda op, v: (op.mv(v), op.T.mv(op.mv(v))))(operator, x)
    # The index arrays enter as arguments: no constant is as long as the pattern.
    assert all(np.size(c) < operator.pattern.nnz for c in jaxpr.consts)
    traces = []

    @jax.jit
    def apply(op, v):
        traces.append(None)
        return op.mv(v)

    apply(operator, x)
    again = SparseMatrixOperator(
        operator.values * 2, operator.pattern, indices=operator.indices
    )
    np.testing.assert_allclose(apply(again, x), 2 * matrix @ np.asarray(x), atol=1e-12)
    # An equal pattern built separately also reuses the compiled function.
    copy = SparsityPattern(
        operator.pattern.rows.copy(),
        operator.pattern.cols.copy(),
        operator.pattern.shape,
    )
    apply(SparseMatrixOperator(operator.values, copy), x)
    assert len(traces) == 1


def test_vmap_and_grad(rng):
    matrix = random_sparse(rng, 6, 5, density=0.5)
    operator = SparseMatrixOperator.from_dense(matrix)
    pattern = operator.pattern
    xs = jnp.asarray(rng.normal(size=(3, 5)))
    np.testing.assert_allclose(jax.vmap(operator.mv)(xs), xs @ matrix.T, atol=1e-12)
    values = operator.values[None] * jnp.arange(1.0, 4.0)[:, None]
    out = jax.vmap(lambda v, x: SparseMatrixOperator(v, pattern).mv(x))(values, xs)
    np.testing.assert_allclose(
        out, jnp.arange(1.0, 4.0)[:, None] * (xs @ matrix.T), atol=1e-12
    )

    def loss(values, x):
        op = SparseMatrixOperator(values, pattern)
        return jnp.sum(op.T.mv(op.mv(x)) ** 2)

    def dense_loss(matrix, x):
        return jnp.sum((matrix.T @ (matrix @ x)) ** 2)

    g_values, g_x = jax.grad(loss, argnums=(0, 1))(operator.values, xs[0])
    d_matrix, d_x = jax.grad(dense_loss, argnums=(0, 1))(jnp.asarray(matrix), xs[0])
    np.testing.assert_allclose(
        g_values, d_matrix[pattern.rows, pattern.cols], rtol=1e-10
    )
    np.testing.assert_allclose(g_x, d_x, rtol=1e-10)


def test_while_loop_state(rng):
    matrix = random_sparse(rng, 5, 5, diagonal=2.0)
    operator = SparseMatrixOperator.from_dense(matrix, tags=lx.unit_diagonal_tag)

    def body(carry):
        op, x, i = carry
        op = SparseMatrixOperator(
            op.values * 0.5, op.pattern, tags=op.tags, indices=op.indices
        )
        return op, op.mv(x), i + 1

    op, x, _ = jax.jit(
        lambda o, x: jax.lax.while_loop(lambda c: c[2] < 3, body, (o, x, 0))
    )(operator, jnp.ones(5))
    expected = jnp.ones(5)
    for k in range(1, 4):
        expected = 0.5**k * matrix @ expected
    np.testing.assert_allclose(x, expected, rtol=1e-12)


def test_scipy_round_trip(rng):
    matrix = sp.random_array((8, 6), density=0.3, random_state=0, format="coo")
    operator = SparseMatrixOperator.from_scipy(matrix)
    np.testing.assert_allclose(operator.as_matrix(), matrix.toarray())
    np.testing.assert_allclose(operator.to_scipy().toarray(), matrix.toarray())
    assert operator.pattern == SparsityPattern.from_scipy(matrix)
    indices = pattern_indices(operator.pattern)
    np.testing.assert_array_equal(indices.rows, operator.pattern.rows)
    np.testing.assert_array_equal(indices.cols, operator.pattern.cols)
    assert indices.rows.dtype == jnp.int32


def test_errors():
    pattern = SparsityPattern([0, 1, 1], [0, 0, 1], (2, 2))
    with pytest.raises(ValueError, match="one entry per nonzero"):
        SparseMatrixOperator(jnp.ones(2), pattern)
    with pytest.raises(ValueError, match="pattern is not symmetric"):
        SparseMatrixOperator(jnp.ones(3), pattern, tags=lx.symmetric_tag)
    with pytest.raises(ValueError, match="elements"):
        SparseMatrixOperator(
            jnp.ones(3), pattern, jax.ShapeDtypeStruct((3,), jnp.float64)
        )
    with pytest.raises(TypeError, match="SparsityPattern"):
        SparseMatrixOperator(jnp.ones(3), np.eye(2))
    with pytest.raises(TypeError, match="scipy sparse"):
        SparseMatrixOperator.from_scipy(np.eye(2))
    with pytest.raises(ValueError, match="concrete"):
        jax.jit(SparseMatrixOperator.from_dense)(jnp.eye(2))
    with pytest.raises(ValueError, match="does not match"):
        SparseMatrixOperator(jnp.ones(3), pattern).mv((jnp.ones(2),))


# ---------------------------------------------------------------- sparsify


def _sparse_and_dense(rng, n=6, tags=(), diagonal=3.0, density=0.3):
    matrix = random_sparse(rng, n, n, density=density, diagonal=diagonal)
    if tags:
        matrix = matrix + matrix.T
    return SparseMatrixOperator.from_dense(matrix, tags=tags), matrix


def test_sparsify_wrappers(rng):
    a, ma = _sparse_and_dense(rng)
    b, mb = _sparse_and_dense(rng, diagonal=0.0, density=0.4)
    structure = a.in_structure()
    d = jnp.asarray(rng.normal(size=6))
    tri = lx.TridiagonalLinearOperator(d, d[1:] * 2, d[:-1] * 3)
    cases = [
        lx.TaggedLinearOperator(a, lx.unit_diagonal_tag),
        a + b,  # different patterns: the union
        a + 2.0 * lx.IdentityLinearOperator(structure),  # full diagonal: fast path
        b + lx.IdentityLinearOperator(structure),  # diagonal not in the pattern
        -a,
        a * 3.0,
        a / 4.0,
        lx.DiagonalLinearOperator(d) @ a,
        a @ lx.DiagonalLinearOperator(d),
        lx.IdentityLinearOperator(structure),
        lx.DiagonalLinearOperator(d),
        tri,
        a - b,
    ]
    for operator in cases:
        sparse = sparsify(operator)
        assert isinstance(sparse, SparseMatrixOperator)
        np.testing.assert_allclose(sparse.as_matrix(), operator.as_matrix(), atol=1e-12)
        assert sparse.in_structure() == operator.in_structure()
        assert sparse.out_structure() == operator.out_structure()
    assert sparsify(a) is a
    assert sparsify(a + b).pattern == a.pattern | b.pattern


def test_sparsify_tags_follow_lineax(rng):
    h, matrix = _sparse_and_dense(rng, tags=lx.positive_semidefinite_tag)
    lam = jnp.asarray(0.5)
    damped = h + lam * lx.IdentityLinearOperator(h.in_structure())
    sparse = sparsify(damped)
    # λ is traced-like (an array), so Lineax cannot tell its sign: not PSD.
    assert lx.is_symmetric(sparse)
    assert not lx.is_positive_semidefinite(sparse)
    tagged = sparsify(lx.TaggedLinearOperator(damped, lx.positive_semidefinite_tag))
    assert lx.is_positive_semidefinite(tagged)
    # Same pattern as `h` (its diagonal is full): the index arrays are reused.
    assert tagged.pattern is h.pattern and tagged.indices is h.indices
    np.testing.assert_allclose(tagged.as_matrix(), matrix + 0.5 * np.eye(6), atol=1e-12)
    for op in (-h, h * 2.0, h / 2.0, lx.TaggedLinearOperator(h, lx.symmetric_tag)):
        for query in _QUERIES.values():
            if query(op):
                assert query(sparsify(op)), query
    assert lx.is_negative_semidefinite(sparsify(-h))


def test_sparsify_under_jit_and_grad(rng):
    a, ma = _sparse_and_dense(rng)

    def f(values, lam, x):
        op = SparseMatrixOperator(values, a.pattern)
        damped = op + lam * lx.IdentityLinearOperator(op.in_structure())
        return jnp.sum(sparsify(damped).mv(x) ** 2)

    x = jnp.asarray(rng.normal(size=6))
    grads = jax.jit(jax.grad(f, argnums=(0, 1)))(a.values, 0.3, x)
    dense = jax.grad(
        lambda m, lam: jnp.sum(((m + lam * jnp.eye(6)) @ x) ** 2), argnums=(0, 1)
    )(jnp.asarray(ma), 0.3)
    np.testing.assert_allclose(
        grads[0], dense[0][a.pattern.rows, a.pattern.cols], rtol=1e-10
    )
    np.testing.assert_allclose(grads[1], dense[1], rtol=1e-10)


def test_sparsify_rejects_dense(rng):
    dense = lx.MatrixLinearOperator(jnp.eye(3))
    with pytest.raises(NotImplementedError, match="register"):
        sparsify(dense)
    a, _ = _sparse_and_dense(rng)
    with pytest.raises(NotImplementedError, match="diagonal"):
        sparsify(a @ a)


def test_damped_operator(rng):
    ins = {
        "p": jax.ShapeDtypeStruct((2, 2), jnp.float64),
        "q": jax.ShapeDtypeStruct((1,), jnp.float64),
    }
    outs = [
        jax.ShapeDtypeStruct((4,), jnp.float64),
        jax.ShapeDtypeStruct((3,), jnp.float64),
    ]
    jac = random_sparse(rng, 7, 5, density=0.4)
    jacobian = SparseMatrixOperator.from_dense(jac, ins, outs)

    @jax.jit
    def build(jacobian, damping):
        return damped_operator(jacobian, damping)

    damped = build(jacobian, 0.25)
    assert damped.out_structure() == (outs, ins) and damped.in_structure() == ins
    np.testing.assert_allclose(damped.as_matrix(), np.vstack([jac, 0.5 * np.eye(5)]))
    # The index arrays computed in JAX are the pattern's own.
    expected = pattern_indices(damped.pattern)
    for ours, theirs in zip(
        jax.tree.leaves(damped.indices), jax.tree.leaves(expected), strict=True
    ):
        np.testing.assert_array_equal(ours, theirs)
    np.testing.assert_allclose(
        damped.T.as_matrix(), np.vstack([jac, 0.5 * np.eye(5)]).T
    )
