"""`Deps`, the dependency rows of detection: the fast paths against the general one.

`union_aligned` (elementwise operands of the output's shape), by numba's merge and
by scipy's sum, and the run copying of `Deps.gather` (slices, pads) must give
exactly what `Deps.compose` and the per-entry gather give.
"""

import numpy as np
import pytest

import asdex.detection._deps as deps_module
from asdex.detection._deps import Deps, union_aligned


def random_deps(rng, size: int, n_inputs: int, max_row: int) -> Deps:
    rows = [
        np.unique(rng.integers(0, n_inputs, rng.integers(0, max_row + 1)))
        for _ in range(size)
    ]
    indptr = np.concatenate([[0], np.cumsum([r.size for r in rows])]).astype(np.int64)
    indices = np.concatenate(rows or [np.zeros(0)]).astype(np.int32)
    return Deps(indptr, indices, n_inputs)


def same(a: Deps, b: Deps) -> bool:
    return a.equals(b) and a.indices.dtype == b.indices.dtype


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("operands", [2, 3])
@pytest.mark.parametrize("merge_from", [1, 10**12], ids=["numba", "scipy"])
def test_union_aligned_is_compose_of_the_stacked_rows(
    seed, operands, merge_from, monkeypatch
):
    monkeypatch.setattr(deps_module, "_MERGE_FROM", merge_from)
    rng = np.random.default_rng(seed)
    size, n_inputs = int(rng.integers(1, 40)), int(rng.integers(1, 30))
    parts = [random_deps(rng, size, n_inputs, 5) for _ in range(operands)]
    stacked = Deps(
        np.concatenate(
            [[0]]
            + [
                p.indptr[1:] + sum(q.nnz for q in parts[:k])
                for k, p in enumerate(parts)
            ]
        ).astype(np.int64),
        np.concatenate([p.indices for p in parts]),
        n_inputs,
    )
    sources = np.stack([np.arange(size) + k * size for k in range(operands)], axis=1)
    assert same(union_aligned(parts), stacked.compose_dense(sources))


@pytest.mark.parametrize("seed", range(12))
def test_gather_by_runs_is_gather_by_entries(seed, monkeypatch):
    rng = np.random.default_rng(seed)
    size = int(rng.integers(1, 200))
    deps = random_deps(rng, size, 50, 6)
    # Runs of consecutive rows, with gaps (-1) and repeats: slices, pads, tiles.
    pieces = []
    while sum(p.size for p in pieces) < 300:
        start = int(rng.integers(-1, size))
        length = int(rng.integers(1, 80))
        if start < 0:
            pieces.append(np.full(length, -1))
        else:
            pieces.append(np.arange(start, min(start + length, size)))
    source = np.concatenate(pieces)
    monkeypatch.setattr(deps_module, "_MIN_RUN", 1)
    by_runs = deps.gather(source)
    monkeypatch.setattr(deps_module, "_MIN_RUN", 10**12)
    by_entries = deps.gather(source)
    assert same(by_runs, by_entries)
    for r, s in enumerate(source):
        want = deps.indices[deps.indptr[s] : deps.indptr[s + 1]] if s >= 0 else []
        got = by_runs.indices[by_runs.indptr[r] : by_runs.indptr[r + 1]]
        assert np.array_equal(got, want)
