"""Time against problem size: dense AD, asdex and sparsejac, from n ≈ 10 to 10⁶.

Run on its own with `uv run --group benchmark python benchmarks/scaling.py`
(`--quick` for tiny sizes, `--json FILE` to keep the numbers); `benchmarks/run.py`
runs it as part of the benchmark report and draws the figures.

For each case and size `n` on a log grid, side by side in one process:

- `t_f`: one jitted call of `f` (Jacobians) or of `jax.grad(f)` (Hessians), the
  yardstick of the ratios;
- dense `jax.jacfwd(f)` / `jax.hessian(f)`, jitted, where the dense matrix takes
  at most `DENSE_LIMIT_BYTES`: compile + first call, and the steady-state call;
- asdex: preparation (`asdex.jacobian(f, x)` / `asdex.hessian(f, x)`: detect +
  color + build), compile + first call, and the steady-state call of the sparse
  derivative (an Equinox module that jits its own work);
- sparsejac, where it is installed, with the pattern that asdex detects supplied
  as a `BCOO` sparsity: preparation (asdex's detection + sparsejac's own coloring
  with networkx), compile + first call of `jax.jit(sparsejac.jacfwd(f, sparsity))`
  (for Hessians `sparsejac.jacfwd(jax.grad(f), sparsity)`: forward over reverse
  with a column coloring, as sparsejac has no Hessian of its own), and the
  steady-state call.

Steady state is the best of several calls, each method taking turns with `f`
itself so that both see the same load on a shared machine. Every sparse result is
checked before it is timed: entry by entry against the dense matrix where there is
one, otherwise against a random JVP and VJP (HVP for Hessians). A mismatch raises.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import math
import time
import warnings
from collections.abc import Callable, Iterator

import _examples  # noqa: F401  (puts examples/ on sys.path)
import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from _timing import ready, timed
from problems import bratu_energy, brusselator, chained_rosenbrock

import asdex

try:
    import sparsejac
except ImportError:  # only in the `benchmark` dependency group
    sparsejac = None

# Dense references are built only up to this many bytes (m·n float32 entries).
DENSE_LIMIT_BYTES = 2**30
# sparsejac colors a networkx graph with one node per column; above this size that
# alone takes many seconds and gigabytes, so the sweep stops there.
SPARSEJAC_MAX_N = 3 * 10**5

METHODS = ("dense", "asdex", "sparsejac")


def difference_squared(x):
    return (x[1:] - x[:-1]) ** 2


def _flat_bratu(u):
    return bratu_energy(u)  # takes N² values, flat or square


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    title: str
    short: str  # for progress lines
    hessian: bool
    f: Callable  # of one flat array
    n_of: Callable[[int], int]  # grid parameter -> number of unknowns
    grid: tuple[int, ...]
    quick_grid: tuple[int, ...]

    @property
    def baseline(self) -> str:
        return "t_grad" if self.hessian else "t_f"

    @property
    def dense_name(self) -> str:
        return "jax.hessian" if self.hessian else "jax.jacfwd"


_DECADES = (10, 30, 100, 300, 1_000, 3_000, 10**4, 3 * 10**4, 10**5, 3 * 10**5, 10**6)

CASES = {
    case.name: case
    for case in [
        Case(
            "diff",
            "Jacobian of `(x[1:]-x[:-1])**2`",
            "(x[1:]-x[:-1])**2 Jacobian",
            False,
            difference_squared,
            lambda n: n,
            _DECADES,
            (10, 100),
        ),
        Case(
            "brusselator",
            "Jacobian of the 2-D Brusselator",
            "Brusselator Jacobian",
            False,
            brusselator,
            lambda side: 2 * side * side,  # grid: the side of the square grid
            (2, 4, 8, 16, 32, 64, 128, 256, 512),
            (2, 4),
        ),
        Case(
            "rosenbrock",
            "Hessian of chained Rosenbrock",
            "Rosenbrock Hessian",
            True,
            chained_rosenbrock,
            lambda n: n,
            _DECADES,
            (10, 100),
        ),
        Case(
            "bratu",
            "Hessian of the 2-D Bratu energy",
            "Bratu Hessian",
            True,
            _flat_bratu,
            lambda side: side * side,
            (3, 10, 32, 100, 316),  # the targets table has n = 512²
            (3, 10),
        ),
    ]
}


# --------------------------------------------------------------------- timing


@dataclasses.dataclass(frozen=True)
class Timing:
    """How long to time a steady-state call: at least `min_repeats` calls, and more
    (up to `max_repeats`) while the calls so far took less than `budget_s`; but
    only 2 once they took `slow_s` (a dense Jacobian can take seconds)."""

    min_repeats: int = 5
    max_repeats: int = 50
    budget_s: float = 0.3
    slow_s: float = 1.0


FULL_TIMING = Timing()
QUICK_TIMING = Timing(2, 5, 0.02, 0.2)


def _side_by_side(
    fn: Callable[[], object], baseline: Callable[[], object], timing: Timing
) -> tuple[float, float]:
    """Best times of `fn` and `baseline`, called in turns (both already warm)."""
    gc.collect()
    best_fn = best_base = math.inf
    spent = 0.0
    for k in range(timing.max_repeats):
        if k >= timing.min_repeats and spent >= timing.budget_s:
            break
        if k >= 2 and spent >= timing.slow_s:
            break
        t_base, _ = timed(baseline)
        t_fn, _ = timed(fn)
        best_base, best_fn = min(best_base, t_base), min(best_fn, t_fn)
        spent += t_fn + t_base
    return best_fn, best_base


# --------------------------------------------------------------------- checking


def _point(n: int, seed: int = 0) -> jax.Array:
    # Away from 0 so that no product happens to vanish, and in the Brusselator's
    # and Bratu's usual range.
    return jax.random.uniform(jax.random.key(seed), (n,), minval=0.5, maxval=1.5)


def _as_csr(matrix) -> sp.csr_array:
    """A 2-D `BCOO` (asdex's or sparsejac's) as a scipy CSR array, duplicates summed.

    Entries with out-of-range indices are padding, which `BCOO` ignores."""
    data = np.asarray(matrix.data, dtype=np.float64)
    indices = np.asarray(matrix.indices)
    keep = np.all(indices < np.asarray(matrix.shape), axis=1)
    rows, cols = indices[keep, 0], indices[keep, 1]
    return sp.csr_array((data[keep], (rows, cols)), shape=matrix.shape)


class MismatchError(AssertionError):
    """A sparse derivative disagrees with its reference."""


def check_against_dense(name: str, sparse: sp.csr_array, dense: np.ndarray) -> float:
    """Entry by entry on the pattern, and nothing off it; returns the max error."""
    coo = sparse.tocoo()
    on_pattern = dense[coo.row, coo.col]
    scale = max(1.0, float(np.max(np.abs(dense), initial=0.0)))
    error = float(np.max(np.abs(on_pattern - coo.data), initial=0.0))
    missed = int(np.count_nonzero(dense)) - int(np.count_nonzero(on_pattern))
    if error > 1e-4 * scale or missed:
        raise MismatchError(
            f"{name}'s derivative differs from the dense one: max abs difference "
            f"{error:.3g} on the pattern (scale {scale:.3g}), {missed} dense nonzeros "
            "missing from its pattern."
        )
    return error


def check_against_products(
    name: str, sparse: sp.csr_array, f: Callable, x: jax.Array, hessian: bool
) -> float:
    """`J v` against a JVP and `wᵀ J` against a VJP (`H v` against an HVP) at random
    `v`, `w`; a wrong coloring or decompression mixes columns and fails this."""
    rng = np.random.default_rng(1)
    v = rng.standard_normal(sparse.shape[1]).astype(np.float32)
    g = jax.grad(f) if hessian else f
    jvp = jax.jit(lambda x, v: jax.jvp(g, (x,), (v,))[1])
    checks = [(sparse @ v, jvp(x, jnp.asarray(v)), abs(sparse) @ np.abs(v))]
    if not hessian:
        w = rng.standard_normal(sparse.shape[0]).astype(np.float32)
        vjp = jax.jit(lambda x, w: jax.vjp(g, x)[1](w)[0])
        checks.append((sparse.T @ w, vjp(x, jnp.asarray(w)), abs(sparse).T @ np.abs(w)))
    error = 0.0
    for mine, reference, scale in checks:
        reference = np.asarray(reference, dtype=np.float64)
        bound = 1e-4 * max(1.0, float(np.max(scale, initial=0.0)))
        err = float(np.max(np.abs(mine - reference), initial=0.0))
        if err > bound:
            raise MismatchError(
                f"{name}'s derivative fails a product check: max abs difference "
                f"{err:.3g} to AD's own product (allowed {bound:.3g})."
            )
        error = max(error, err)
    return error


# --------------------------------------------------------------------- measuring


@dataclasses.dataclass(frozen=True)
class Step:
    """One unit of work: one method at one size of one case."""

    case: str
    size: int  # the grid parameter
    n: int
    method: str

    @property
    def label(self) -> str:
        return f"{CASES[self.case].short} n={self.n:,} {self.method}"


def plan(
    case_names: list[str],
    quick: bool,
    with_sparsejac: bool,
    dense_limit: int = DENSE_LIMIT_BYTES,
    sparsejac_max_n: int = SPARSEJAC_MAX_N,
    max_n: int | None = None,
) -> tuple[list[Step], list[str]]:
    """The steps to run, and the reasons for the ones left out."""
    steps, skipped = [], []
    for name in case_names:
        case = CASES[name]
        dense_max_n = None
        sparsejac_from = None
        grid = [
            size
            for size in (case.quick_grid if quick else case.grid)
            if max_n is None or case.n_of(size) <= max_n
        ]
        for size in grid:
            n = case.n_of(size)
            # n × n entries (`(x[1:]-x[:-1])**2` has n - 1 rows: close enough).
            if n * n * 4 <= dense_limit:
                steps.append(Step(name, size, n, "dense"))
                dense_max_n = n
            steps.append(Step(name, size, n, "asdex"))
            if with_sparsejac and n <= sparsejac_max_n:
                steps.append(Step(name, size, n, "sparsejac"))
            elif with_sparsejac and sparsejac_from is None:
                sparsejac_from = n
        if dense_max_n is not None and dense_max_n < case.n_of(grid[-1]):
            skipped.append(
                f"{case.title}: dense {case.dense_name} only up to n = {dense_max_n:,} "
                f"(larger dense matrices exceed {dense_limit / 2**30:g} GiB)."
            )
        if sparsejac_from is not None:
            skipped.append(
                f"{case.title}: sparsejac only up to n = {sparsejac_max_n:,} (its "
                "networkx coloring takes many seconds and gigabytes beyond)."
            )
    return steps, skipped


class _Point:
    """The shared state of one (case, size): inputs, baseline, dense matrix, pattern."""

    def __init__(self, case: Case, size: int):
        self.case = case
        self.n = case.n_of(size)
        self.x = _point(self.n)
        f = case.f
        jitted = jax.jit(jax.grad(f) if case.hessian else f)
        self.baseline = lambda: jitted(self.x)
        ready(self.baseline())
        self.dense: np.ndarray | None = None
        self.pattern: asdex.SparsityPattern | None = None


def _detect(case: Case, x: jax.Array) -> asdex.SparsityPattern:
    detect = asdex.hessian_sparsity if case.hessian else asdex.jacobian_sparsity
    return detect(case.f, x)


def _verify(name: str, point: _Point, result) -> float:
    sparse = _as_csr(result)
    if point.dense is not None:
        return check_against_dense(name, sparse, point.dense)
    return check_against_products(
        name, sparse, point.case.f, point.x, point.case.hessian
    )


def _sparsejac_colors(jitted) -> int | None:
    """The number of colors sparsejac chose: the width of the seed matrix `basis`
    that its Jacobian function closes over (sparsejac does not report it)."""
    try:
        fn = jitted.__wrapped__
        cells = dict(zip(fn.__code__.co_freevars, fn.__closure__ or ()))
        return int(cells["basis"].cell_contents.shape[1])
    except (AttributeError, KeyError, IndexError, TypeError, ValueError):
        return None


def measure_step(step: Step, point: _Point, timing: Timing) -> dict:
    """Run one step; the point carries what later steps of the same size reuse."""
    case, x = point.case, point.x
    f = case.f
    row: dict = {"case": step.case, "n": step.n, "method": step.method}
    if step.method == "dense":
        dense_fn = jax.jit(jax.hessian(f) if case.hessian else jax.jacfwd(f))
        first, matrix = timed(lambda: dense_fn(x))
        point.dense = np.asarray(matrix).reshape(-1, step.n)
        steady, base = _side_by_side(lambda: dense_fn(x), point.baseline, timing)
        row.update(prep_s=0.0, first_s=first)
    elif step.method == "asdex":
        build = asdex.hessian if case.hessian else asdex.jacobian
        with warnings.catch_warnings():
            # Tiny sizes can color densely; that is expected there.
            warnings.simplefilter("ignore", asdex.DenseColoringWarning)
            prep, derivative = timed(lambda: build(f, x))
        first, result = timed(lambda: derivative(x))
        point.pattern = derivative.coloring.pattern
        row.update(
            prep_s=prep,
            first_s=first,
            mode=derivative.coloring.mode,
            colors=int(derivative.coloring.num_colors),
            nnz=int(point.pattern.nnz),
            max_error=_verify("asdex", point, result),
        )
        steady, base = _side_by_side(lambda: derivative(x), point.baseline, timing)
    elif step.method == "sparsejac":
        if sparsejac is None:
            raise RuntimeError("sparsejac is not installed")
        start = time.perf_counter()
        pattern = _detect(case, x)
        detect = time.perf_counter() - start
        target = jax.grad(f) if case.hessian else f
        # The values of the sparsity are not ignored, whatever sparsejac's docstring
        # says: it colors the graph of `sparsity.T @ sparsity` built from them, so
        # they must be nonzero (`to_bcoo` puts ones on the pattern).
        own, sparse_fn = timed(
            lambda: jax.jit(sparsejac.jacfwd(target, sparsity=pattern.to_bcoo()))
        )
        first, result = timed(lambda: sparse_fn(x))
        row.update(
            colors=_sparsejac_colors(sparse_fn),
            prep_s=detect + own,
            detect_s=detect,
            sparsejac_prep_s=own,
            first_s=first,
            max_error=_verify("sparsejac", point, result),
        )
        steady, base = _side_by_side(lambda: sparse_fn(x), point.baseline, timing)
    else:
        raise ValueError(f"unknown method {step.method!r}")
    row.update(steady_s=steady, baseline_s=base, ratio=steady / base)
    return row


def summary(row: dict) -> str:
    """One line on one measured step, for progress displays."""
    label = "t_grad" if CASES[row["case"]].hessian else "t_f"
    steady = f"steady {format_time(row['steady_s'])} = {row['ratio']:.1f}× {label}"
    if row["method"] == "dense":
        return f"compile + first call {format_time(row['first_s'])}; {steady}"
    return (
        f"prep {format_time(row['prep_s'])}, compile + first call "
        f"{format_time(row['first_s'])}; {steady}"
    )


def format_time(seconds: float) -> str:
    """Three significant digits in µs, ms or s."""
    for unit, scale in (("µs", 1e-6), ("ms", 1e-3), ("s", 1.0)):
        value = seconds / scale
        if value < 999.5 or unit == "s":
            digits = max(0, 2 - int(math.floor(math.log10(max(value, 1e-9)))))
            return f"{value:.{min(digits, 2)}f} {unit}"
    raise AssertionError("unreachable")


# A size of each case that is on no grid: warming up must not compile the very
# programs that the first measurements then time.
_WARM_UP_SIZES = {"diff": 7, "brusselator": 3, "rosenbrock": 7, "bratu": 2}


def warm_up(case_names: list[str], with_sparsejac: bool) -> None:
    """Load the numba kernels, networkx and JAX's tracing machinery at tiny sizes."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", asdex.DenseColoringWarning)
        for name in case_names:
            case = CASES[name]
            x = _point(case.n_of(_WARM_UP_SIZES[name]))
            build = asdex.hessian if case.hessian else asdex.jacobian
            ready(build(case.f, x)(x))
            if with_sparsejac and sparsejac is not None:
                target = jax.grad(case.f) if case.hessian else case.f
                pattern = _detect(case, x).to_bcoo()
                ready(jax.jit(sparsejac.jacfwd(target, sparsity=pattern))(x))


def run(
    steps: list[Step],
    timing: Timing,
    progress: Callable[[Step], contextlib.AbstractContextManager] | None = None,
) -> list[dict]:
    """Measure the steps in order (grouped by case and size, dense first).

    `progress(step)`, if given, is a context manager around each step that yields
    a dict; the step puts a one-line `"summary"` of its result into it."""
    rows = []
    point, key = None, None
    for step in steps:
        if (step.case, step.size) != key:
            point, key = None, (step.case, step.size)
            gc.collect()
            point = _Point(CASES[step.case], step.size)
        with progress(step) if progress else contextlib.nullcontext({}) as note:
            row = measure_step(step, point, timing)
            note["summary"] = summary(row)
        rows.append(row)
    return rows


# --------------------------------------------------------------------- summaries


def by_size(rows: list[dict], case: str) -> list[dict]:
    """One record per size: `{"n", "t_base", "dense": row, "asdex": row, ...}`."""
    table: dict[int, dict] = {}
    for row in rows:
        if row["case"] != case:
            continue
        entry = table.setdefault(row["n"], {"n": row["n"], "t_base": math.inf})
        entry[row["method"]] = row
        entry["t_base"] = min(entry["t_base"], row["baseline_s"])
    return [table[n] for n in sorted(table)]


def _from_scratch(row: dict) -> float:
    return row["prep_s"] + row["first_s"]


def crossover(rows: list[dict], case: str, method: str = "asdex") -> dict:
    """The smallest grid size from which `method` beats dense at every larger size
    that has a dense measurement; `None` where it never does on the grid."""
    sizes = [e for e in by_size(rows, case) if "dense" in e and method in e]
    result = {"largest_dense_n": sizes[-1]["n"] if sizes else None}
    for key, wins in (
        ("excluding_prep", lambda e: e[method]["steady_s"] < e["dense"]["steady_s"]),
        (
            "including_prep",
            lambda e: _from_scratch(e[method]) < _from_scratch(e["dense"]),
        ),
    ):
        winner = None
        for entry in reversed(sizes):
            if not wins(entry):
                break
            winner = entry["n"]
        result[key] = winner
    return result


# --------------------------------------------------------------------- script


@contextlib.contextmanager
def _print_progress(total: int) -> Iterator[Callable]:
    count = iter(range(1, total + 1))

    @contextlib.contextmanager
    def step(s: Step):
        print(f"[{next(count)}/{total}] {s.label} ...", end=" ", flush=True)
        note: dict = {}
        start = time.perf_counter()
        yield note
        print(f"{time.perf_counter() - start:.2f} s ({note['summary']})", flush=True)

    yield step


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds")
    parser.add_argument("--cases", nargs="*", choices=list(CASES), default=list(CASES))
    parser.add_argument("--no-sparsejac", action="store_true")
    parser.add_argument("--max-n", type=int, help="leave out larger sizes")
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)
    with_sparsejac = sparsejac is not None and not args.no_sparsejac
    steps, skipped = plan(args.cases, args.quick, with_sparsejac, max_n=args.max_n)
    start = time.perf_counter()
    warm_up(args.cases, with_sparsejac)
    print(f"warm-up: {time.perf_counter() - start:.2f} s", flush=True)
    with _print_progress(len(steps)) as progress:
        rows = run(steps, QUICK_TIMING if args.quick else FULL_TIMING, progress)
    for note in skipped:
        print(note)
    for name in args.cases:
        print(name, "crossover against dense:", crossover(rows, name))
    out = {"rows": rows, "skipped": skipped}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    return out


if __name__ == "__main__":
    main()
