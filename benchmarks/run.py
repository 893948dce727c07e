"""Run the benchmarks and write the benchmark report: Markdown tables and figures.

Run with `uv run --group benchmark python benchmarks/run.py` (about 8 minutes on
2 cores). It writes `docs/benchmarks.md`, and its figures, `results.json` and
`log.txt` to `docs/benchmarks/`. Options:

- `--quick`: tiny sizes and a few cases of each benchmark, in seconds; a smoke run.
- `--out DIR`: write the figures, `results.json`, `log.txt` and the report
  (`DIR/report.md`, or `--report FILE`) to DIR instead, leaving the docs alone.
- `--sections`: which parts to run (default: all but `linear` and `scale`):
    - `scaling` (`benchmarks/scaling.py`): time against n for dense AD, asdex and
      sparsejac; the figures and the crossover sizes;
    - `jacobians` (`benchmarks/jacobians.py`): sparse Jacobians and Hessians at
      their target sizes, against their targets;
    - `detection` (`benchmarks/detection.py`): sparsity detection against its
      targets, and its growth with n;
    - `solvers` (`benchmarks/solvers.py`): sparse Newton, Levenberg–Marquardt and
      Newton minimisation against their targets;
    - `linear` (`benchmarks/linear_solvers.py`): sparse direct solves against
      scipy's SuperLU called directly (no targets);
    - `scale` (`benchmarks/large_solves.py`, `benchmarks/detection_scale.py`):
      million-unknown Newton solves against their targets, one linear solve
      against scipy and pyamg, the fill-reducing orderings, and detection plus
      coloring at 10⁵ to 10⁷ (about seven minutes more);
    - `bundle` (`benchmarks/bundle_adjustment.py`): bundle adjustment against
      scipy's `least_squares`, at 40,000 and 10⁶ observations (about ten minutes
      more).
- `--no-sparsejac`: leave sparsejac out even where it is installed.
- `--max-n N`: end the `scaling` section's grid at n = N.
- `--from-json FILE [FILE ...]`: redraw the report from `results.json` files,
  measuring nothing; a later file's sections replace an earlier one's (the report
  says which run measured them, and the merged results replace `results.json`).

Each step prints one line when it is done, such as `[3/52] Brusselator Jacobian
n=131,072 asdex ... 0.41 s (prep ...; steady ...)`. What the benchmark scripts
print themselves goes to `log.txt`. sparsejac is only in the `benchmark`
dependency group; without it, its curves are left out and the report says so.
The exit status is 1 if any step failed (the report lists the failures).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import math
import os
import sys
import time
import traceback
from collections.abc import Iterator

_STARTED = time.perf_counter()  # before JAX is imported: the run's whole time

import _report  # noqa: E402
import scaling  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DEFAULT_OUT = os.path.join(ROOT, "docs", "benchmarks")
DEFAULT_REPORT = os.path.join(ROOT, "docs", "benchmarks.md")
SECTIONS = (
    "scaling",
    "jacobians",
    "detection",
    "solvers",
    "linear",
    "scale",
    "bundle",
)
DEFAULT_SECTIONS = SECTIONS[:-3]


@dataclasses.dataclass(frozen=True)
class Config:
    """What each section runs, in a full or a quick run."""

    scaling_cases: tuple[str, ...]
    timing: scaling.Timing
    jacobian_cases: tuple[str, ...]
    jacobian_repeats: int
    jacobian_prep_repeats: int
    detection_cases: tuple[str, ...] | None  # None: all
    detection_repeats: int
    detection_isolate: bool
    solver_cases: tuple[str, ...] | None  # None: all
    solver_repeats: int
    solver_in_process: bool


FULL = Config(
    scaling_cases=tuple(scaling.CASES),
    timing=scaling.FULL_TIMING,
    jacobian_cases=("diff", "brusselator", "rosenbrock", "bratu"),
    jacobian_repeats=10,
    jacobian_prep_repeats=2,
    detection_cases=None,
    detection_repeats=3,
    detection_isolate=True,
    solver_cases=None,
    solver_repeats=3,
    solver_in_process=False,
)
QUICK = Config(
    scaling_cases=("diff", "brusselator", "rosenbrock"),
    timing=scaling.QUICK_TIMING,
    jacobian_cases=("diff",),
    jacobian_repeats=2,
    jacobian_prep_repeats=1,
    detection_cases=("diff", "rosenbrock"),
    detection_repeats=1,
    detection_isolate=False,
    solver_cases=("rosenbrock",),
    solver_repeats=1,
    solver_in_process=True,
)


# --------------------------------------------------------------------- progress


class Progress:
    """`[i/N] label ... seconds (summary)`, one line per step."""

    def __init__(self, total: int, log: io.StringIO):
        self.total = total
        self.done = 0
        self.log = log
        self.failures: list[dict] = []

    @contextlib.contextmanager
    def step(self, label: str, catch: bool = True) -> Iterator[dict]:
        """Run a step; its body puts a one-line `"summary"` into the yielded dict.

        With `catch`, an exception is reported and recorded, and the run goes on;
        without, it ends the run."""
        self.done += 1
        print(f"[{self.done}/{self.total}] {label} ...", end=" ", flush=True)
        self.log.write(f"\n==== [{self.done}/{self.total}] {label}\n")
        note: dict = {}
        start = time.perf_counter()
        try:
            with contextlib.redirect_stdout(self.log):
                yield note
        except Exception as error:
            seconds = time.perf_counter() - start
            print(f"FAILED after {seconds:.1f} s: {error!r}", flush=True)
            self.log.write(traceback.format_exc())
            if not catch:
                raise
            self.failures.append({"step": label, "error": repr(error)})
            note["failed"] = True
            return
        seconds = time.perf_counter() - start
        summary = f" ({note['summary']})" if note.get("summary") else ""
        print(f"{seconds:.2f} s{summary}", flush=True)


# --------------------------------------------------------------------- sections


def _import(name: str):
    """One of the benchmark scripts, as a module (they live next to this file)."""
    import importlib
    import importlib.util

    if name == "bundle_adjustment":
        # `bundle_adjustment` is the example it imports: load the script by path.
        name = "bundle_adjustment_benchmark"
        if name not in sys.modules:
            path = os.path.join(HERE, "bundle_adjustment.py")
            spec = importlib.util.spec_from_file_location(name, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
        return sys.modules[name]
    return importlib.import_module(name)


def plan_scaling(config: Config, quick: bool, with_sparsejac: bool, max_n):
    return scaling.plan(list(config.scaling_cases), quick, with_sparsejac, max_n=max_n)


def run_scaling(
    progress: Progress, steps, config: Config, with_sparsejac: bool
) -> list[dict]:
    with progress.step("warm-up: numba kernels, networkx, tiny sizes", catch=False):
        scaling.warm_up(list(config.scaling_cases), with_sparsejac)

    @contextlib.contextmanager
    def step(s: scaling.Step):
        # A wrong derivative must stop the run, not become a footnote.
        with progress.step(s.label, catch=False) as note:
            yield note

    return scaling.run(steps, config.timing, step)


def run_jacobians(progress: Progress, config: Config, quick: bool) -> list[dict]:
    import warnings

    import asdex

    jacobians = _import("jacobians")
    results = []
    for name in config.jacobian_cases:
        case = jacobians.CASES[name]
        size = case.quick_size if quick else case.size
        n = math.prod(case.shape(size))
        label = f"targets: {case.description.replace('`', '')} n={n:,}"
        with progress.step(label) as note:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", asdex.DenseColoringWarning)
                r = jacobians.measure(
                    case,
                    size,
                    config.jacobian_repeats,
                    config.jacobian_prep_repeats,
                    first_repeats=1,
                )
            results.append(r)
            base = "t_grad" if case.hessian else "t_f"
            note["summary"] = (
                f"steady {r['ratio']:.1f}× {base}, prep {r['prep_s']:.2f} s, "
                f"first call {r['first_s']:.2f} s, check "
                f"{'passed' if r['check_passed'] else 'FAILED'}"
            )
    return results


def run_detection(progress: Progress, config: Config, quick: bool) -> dict:
    detection = _import("detection")
    names = config.detection_cases or tuple(detection.CASES)
    results = []
    for name in names:
        case = detection.CASES[name]
        size = case.quick_size if quick else case.size
        label = (
            f"detection: {case.description.replace('`', '')} n={case.n_inputs(size):,}"
        )
        with progress.step(label) as note:
            if config.detection_isolate:
                r = detection.measure_isolated(name, quick, config.detection_repeats)
            else:
                r = detection.measure(case, size, config.detection_repeats)
            results.append(r)
            note["summary"] = (
                f"best {r['best_s']:.3f} s, Python peak {r['py_peak_mb']:.1f} MB"
            )
    sizes = detection.QUICK_SCALING_SIZES if quick else detection.SCALING_SIZES
    fit_from = sizes[-2] if quick else detection.SCALING_FIT_FROM
    scale = None
    with progress.step(
        f"detection: growth with n, n = {sizes[0]:,} to {sizes[-1]:,}"
    ) as note:
        scale = detection.scaling(sizes, fit_from, config.detection_repeats)
        s = scale["slopes"]
        note["summary"] = (
            f"slopes {s['diff']:.2f} and {s['brusselator']:.2f} (1 = linear)"
        )
    return {"cases": results, "scaling": scale, "repeats": config.detection_repeats}


def run_solvers(progress: Progress, config: Config, quick: bool) -> dict:
    solvers = _import("solvers")
    names = config.solver_cases or solvers.CASES
    results = {}
    try:
        for name in names:
            with progress.step(f"solver: {name}") as note:
                r = solvers.run(
                    name, quick, config.solver_repeats, config.solver_in_process
                )
                results[name] = r
                note["summary"] = f"target {'met' if r['pass'] else 'MISSED'}"
    finally:
        if config.solver_in_process:
            import jax

            # `solvers.run_case` switches float64 on for its solves.
            jax.config.update("jax_enable_x64", False)
    return results


def run_linear(progress: Progress, quick: bool) -> list[dict]:
    linear = _import("linear_solvers")
    sizes = linear.QUICK_SIZES if quick else linear.SIZES
    rows = []
    import jax

    try:
        for side in sizes:
            with progress.step(f"linear solves: 2-D Laplacian N={side}") as note:
                jax.config.update("jax_enable_x64", True)
                r = linear.measure(side, 2 if quick else 3)
                rows.append(r)
                note["summary"] = (
                    f"SparseLU {r['lu']:.4f} s, scipy {r['scipy_lu']:.4f} s"
                )
    finally:
        jax.config.update("jax_enable_x64", False)
    return rows


def run_scale(progress: Progress, quick: bool) -> dict:
    large = _import("large_solves")
    rows = []
    for name in large.CASES:
        with progress.step(f"large Newton solve: {name}") as note:
            r = large.run(name, quick, spsolve_limit=120.0)
            rows.append(r)
            note["summary"] = (
                f"{r['total_s']:.1f} s, {r['peak_gb']:.2f} GB, target "
                f"{'met' if r['pass'] else 'MISSED'}"
            )
    result = {"cases": rows, "slope": large.slope(rows)}
    with progress.step("fill-reducing orderings") as note:
        sizes = large.QUICK_ORDERING_SIZES if quick else large.ORDERING_SIZES
        result["orderings"] = large.orderings(sizes)
        note["summary"] = f"{len(sizes)} grids"
    with progress.step("detection and coloring at scale") as note:
        at_scale = _import("detection_scale")
        sizes = at_scale.QUICK_SIZES if quick else at_scale.SIZES
        result["detection"] = [
            at_scale.run(case, n) for case in at_scale.CASES for n in sizes
        ]
        top = [r for r in result["detection"] if r["n"] >= 0.99 * sizes[-1]]
        note["summary"] = ", ".join(f"{r['case']} {r['warm_s']:.2f} s" for r in top)
    return result


def run_bundle(progress: Progress, quick: bool) -> list[dict]:
    bundle = _import("bundle_adjustment")
    sizes = ["small"] if quick else ["small", "medium", "large"]
    rows = []
    import jax

    try:
        for name in sizes:
            with progress.step(f"bundle adjustment: {name}") as note:
                jax.config.update("jax_enable_x64", True)
                r = bundle.run_size(name, with_scipy=name != "large")
                rows.append(r)
                note["summary"] = f"{r['dedicated']['seconds']:.2f} s end to end"
    finally:
        jax.config.update("jax_enable_x64", False)
    return rows


# --------------------------------------------------------------------- report


def _quick_verdicts(table: str) -> str:
    """Replace the last column's yes/NO with "(quick)": targets hold at full size."""
    lines = []
    for line in table.splitlines():
        if line.startswith("| ") and not line.startswith("| case"):
            head, _, _ = line.rstrip().rstrip("|").rpartition("|")
            line = f"{head}| (quick) |"
        lines.append(line)
    return "\n".join(lines)


def render(data: dict, out: str, report: str) -> str:
    """Draw the figures into `out` and return the Markdown of the report."""
    quick = data["quick"]
    sj = data["sparsejac"]
    md = [
        "# Benchmarks",
        "",
        "This page is written by `benchmarks/run.py`; do not edit it by hand. To "
        "measure again, run `uv run --group benchmark python benchmarks/run.py` (it "
        "rewrites this page and the figures in `docs/benchmarks/`; `--quick` is a "
        "smoke run at tiny sizes, and `--out DIR` writes elsewhere). The machine is "
        "shared and its timings are noisy: compare runs on the same machine only.",
        "",
    ]
    if quick:
        md += [
            "!!! warning",
            "    A quick run: tiny sizes, few repeats. The numbers show that the "
            "scripts run, not how fast asdex is.",
            "",
        ]
    md += ["## Machine", "", _report.machine_table(data["machine"], data["elapsed_s"])]
    later = data.get("measured", {})
    if later:
        md += ["", "Sections measured in a later run on the same machine:", ""]
        md += [
            f"- `{section}`: {info['date']}, asdex commit {info['git']}, "
            f"`{info['command']}`"
            for section, info in later.items()
        ]

    rows = data.get("scaling")
    if rows is not None:
        names = data["scaling_cases"]
        md += [
            "",
            "## Time against problem size",
            "",
            "Each figure and table compares, at each size n on a log grid, one "
            "process side by side:",
            "",
            "- **dense**: `jax.jacfwd(f)` or `jax.hessian(f)`, jitted, where the dense "
            "matrix takes at most 1 GiB; its steady-state call, and its compile + "
            "first call;",
            "- **asdex**: `asdex.jacobian(f, x)` / `asdex.hessian(f, x)`. *From "
            "scratch* is preparation (detect + color + build) plus compile + first "
            "call; *steady state* is a later call of the sparse derivative;",
            "- **sparsejac**: `sparsejac.jacfwd(f, sparsity)` (for Hessians, of "
            "`jax.grad(f)`: forward over reverse, with a column coloring), jitted, "
            "given the pattern that asdex detects as a `BCOO`. *From scratch* is "
            "asdex's detection, sparsejac's own coloring (networkx), compile and "
            "first call.",
            "",
            "Steady state is the best of several calls, taken in turns with a call "
            "of `f` itself (`jax.grad(f)` for Hessians), whose time is `t_f` "
            "(`t_grad`). Times are per Jacobian or Hessian; **bold**: asdex beats "
            "dense. Every sparse result was checked before it was timed: entry by "
            "entry against the dense matrix where there is one, otherwise against "
            "a random JVP and VJP (an HVP for Hessians).",
            "",
        ]
        if not sj["used"]:
            why = (
                "it is not installed in this environment (it comes with the "
                "`benchmark` dependency group: `uv run --group benchmark ...`)"
                if not sj["available"]
                else "`--no-sparsejac` was given"
            )
            md += [f"sparsejac is left out: {why}.", ""]
        jacobian_cases = {}
        with contextlib.suppress(Exception):
            jacobian_cases = _import("jacobians").CASES
        for name in names:
            case = scaling.CASES[name]
            figure = os.path.join(out, f"{name}.png")
            _report.plot_case(name, rows, figure)
            link = os.path.relpath(figure, os.path.dirname(os.path.abspath(report)))
            md += [
                f"### {case.title}",
                "",
                f"![{case.title.replace('`', '')}: time against n]"
                f"({link.replace(os.sep, '/')})",
                "",
                _report.sweep_table(name, rows),
                "",
            ]
            targets = _report.targets_line(name, jacobian_cases)
            if targets and data.get("jacobians") is not None:
                md += [targets, ""]
        md += [
            "### Crossover",
            "",
            "The smallest n on the grid from which the sparse derivative beats dense "
            "AD at every larger size where dense was measured: steady state "
            "(excluding preparation), and from scratch (including preparation, "
            'against dense compile + first call). "> n": not on the grid.',
            "",
            _report.crossover_table(names, rows),
            "",
        ]
        comparison = _report.sparsejac_comparison(names, rows)
        if comparison:
            md += ["### asdex and sparsejac", "", comparison, ""]

    jac = data.get("jacobians")
    if jac is not None:
        jacobians = _import("jacobians")
        md += _section(
            "Targets: sparse Jacobians and Hessians",
            "`benchmarks/jacobians.py` at the target sizes: preparation best of "
            f"{data['config']['jacobian_prep_repeats']}, compile + first call after "
            "`jax.clear_caches()`, steady state best of "
            f"{data['config']['jacobian_repeats']} taken in turns with the baseline; "
            "the check is `asdex.check_jacobian` / `asdex.check_hessian`.",
            jacobians.cases_table(jac, quick) if jac else "(no case ran)",
        )
    det = data.get("detection")
    if det is not None:
        detection = _import("detection")
        where = (
            "each case in a fresh process"
            if data["config"]["detection_isolate"]
            else "all cases in one process"
        )
        md += _section(
            "Targets: sparsity detection",
            f"`benchmarks/detection.py`: {where}, the best of a few calls after a "
            "warm-up.",
            detection.table(det["cases"], quick, det["repeats"])
            if det["cases"]
            else "(no case ran)",
        )
        if det.get("scaling"):
            md += [detection.scaling_table(det["scaling"]), ""]
    sol = data.get("solvers")
    if sol is not None:
        solvers = _import("solvers")
        table = solvers.table(sol) if sol else "(no case ran)"
        where = (
            "in this process."
            if data["config"]["solver_in_process"]
            else "each case in a fresh process."
        )
        md += _section(
            "Targets: sparse solvers",
            f"`benchmarks/solvers.py`, {where}",
            _quick_verdicts(table) if quick and sol else table,
        )
    lin = data.get("linear")
    if lin is not None:
        linear = _import("linear_solvers")
        md += _section(
            "Sparse direct solves",
            "`benchmarks/linear_solvers.py`: the 2-D Laplacian, times in seconds.",
            linear.table(lin) if lin else "(no size ran)",
        )
    big = data.get("scale")
    if big is not None:
        large = _import("large_solves")
        body = large.table(big["cases"], quick) if big["cases"] else "(no case ran)"
        if big.get("slope") is not None:
            body += (
                "\n\nLog–log slope of the whole solve's time against the unknowns, "
                f"2-D: {big['slope']:.2f}."
            )
        if big.get("orderings"):
            body += "\n\n" + large.orderings_table(big["orderings"])
        md += _section(
            "Million-unknown Newton solves",
            "`benchmarks/large_solves.py`, each case in a fresh process; times "
            "include detection, coloring and compilation.",
            body,
        )
        if big.get("detection"):
            at_scale = _import("detection_scale")
            md += _section(
                "Detection and coloring at 10⁷",
                "`benchmarks/detection_scale.py`: `asdex.jacobian_coloring`, each "
                "size in a fresh process; the first call, then the best of two more. "
                "Each size runs again in a process whose allocator keeps freed "
                "memory: this machine is a virtual machine whose host takes freed "
                "memory back, and faulting it in again costs more than the work.",
                at_scale.table(big["detection"], quick),
            )
    bundle_rows = data.get("bundle")
    if bundle_rows is not None:
        bundle = _import("bundle_adjustment")
        md += _section(
            "Bundle adjustment",
            "`benchmarks/bundle_adjustment.py`: synthetic BAL-shaped problems, all "
            "solvers from the same start to `rtol = atol = 1e-8` in one process; "
            "end to end includes detection, coloring and compilation. Targets: "
            f"medium {bundle.TARGETS['medium']}, large {bundle.TARGETS['large']}.",
            bundle.table(bundle_rows) if bundle_rows else "(no size ran)",
        )
    notes = list(data.get("skipped", []))
    notes += [f"{f['step']}: failed, {f['error']}" for f in data.get("failures", [])]
    not_run = [s for s in DEFAULT_SECTIONS if data.get(s) is None]
    if not_run:
        notes.append(f"Not run: {', '.join(not_run)}.")
    if notes:
        md += ["", "## Left out", ""] + [f"- {n}" for n in notes] + [""]
    return "\n".join(md).rstrip() + "\n"


def _section(title: str, description: str, body: str) -> list[str]:
    """The lines of one `##` section of the report."""
    return ["", f"## {title}", "", description, "", body, ""]


def merged(runs: list[dict]) -> dict:
    """The first run's results, with each later run's sections in their place;
    `measured` records which run measured each replaced section."""
    data = runs[0]
    for run in runs[1:]:
        for section in run["sections"]:
            data[section] = run[section]
            if section not in data["sections"]:
                data["sections"].append(section)
            data.setdefault("measured", {})[section] = {
                **run["machine"],
                "elapsed_s": run["elapsed_s"],
            }
        data["failures"] = data.get("failures", []) + run.get("failures", [])
    return data


def write(data: dict, out: str, report: str) -> None:
    os.makedirs(out, exist_ok=True)
    text = render(data, out, report)
    os.makedirs(os.path.dirname(os.path.abspath(report)), exist_ok=True)
    with open(report, "w") as f:
        f.write(text)


# --------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, seconds")
    parser.add_argument(
        "--out", help="directory for figures and data (default docs/benchmarks/)"
    )
    parser.add_argument(
        "--report",
        help="the Markdown file (default docs/benchmarks.md, or OUT/report.md)",
    )
    parser.add_argument(
        "--sections", nargs="*", choices=SECTIONS, default=list(DEFAULT_SECTIONS)
    )
    parser.add_argument("--no-sparsejac", action="store_true")
    parser.add_argument(
        "--max-n", type=int, help="end the scaling section's grid at this size"
    )
    parser.add_argument(
        "--from-json",
        nargs="+",
        metavar="FILE",
        help="redraw the report from these results.json files; a later file's "
        "sections replace an earlier one's",
    )
    args = parser.parse_args(argv)
    out = os.path.abspath(args.out) if args.out else DEFAULT_OUT
    report = args.report or (
        os.path.join(out, "report.md") if args.out else DEFAULT_REPORT
    )

    if args.from_json:
        runs = []
        for path in args.from_json:
            with open(path) as f:
                runs.append(json.load(f))
        data = merged(runs)
        if len(runs) > 1:
            with open(os.path.join(out, "results.json"), "w") as f:
                json.dump(data, f, indent=1, default=str)
        write(data, out, report)
        print(f"report: {report}")
        return 0

    config = QUICK if args.quick else FULL
    available = scaling.sparsejac is not None
    with_sparsejac = available and not args.no_sparsejac
    sections = [s for s in SECTIONS if s in args.sections]

    steps, skipped = ([], [])
    if "scaling" in sections:
        steps, skipped = plan_scaling(config, args.quick, with_sparsejac, args.max_n)
    total = len(steps) + (1 if "scaling" in sections else 0)
    if "jacobians" in sections:
        total += len(config.jacobian_cases)
    if "detection" in sections:
        total += len(config.detection_cases or _import("detection").CASES) + 1
    if "solvers" in sections:
        total += len(config.solver_cases or _import("solvers").CASES)
    if "linear" in sections:
        linear = _import("linear_solvers")
        total += len(linear.QUICK_SIZES if args.quick else linear.SIZES)
    if "scale" in sections:
        total += len(_import("large_solves").CASES) + 2
    if "bundle" in sections:
        total += 1 if args.quick else 3

    import jax

    print(
        f"asdex benchmarks, {'quick' if args.quick else 'full'} run: "
        f"{', '.join(sections)}; jax {jax.__version__} on "
        f"{jax.devices()[0].platform}, {os.cpu_count()} CPUs; sparsejac "
        f"{'included' if with_sparsejac else 'left out'}; writing {report}",
        flush=True,
    )
    log = io.StringIO()
    progress = Progress(total, log)
    data: dict = {
        "quick": args.quick,
        "sections": sections,
        "config": dataclasses.asdict(config),
        "sparsejac": {"available": available, "used": with_sparsejac},
        "scaling_cases": list(config.scaling_cases),
        "skipped": skipped,
    }
    try:
        if "scaling" in sections:
            data["scaling"] = run_scaling(progress, steps, config, with_sparsejac)
        if "jacobians" in sections:
            data["jacobians"] = run_jacobians(progress, config, args.quick)
        if "detection" in sections:
            data["detection"] = run_detection(progress, config, args.quick)
        if "solvers" in sections:
            data["solvers"] = run_solvers(progress, config, args.quick)
        if "linear" in sections:
            data["linear"] = run_linear(progress, args.quick)
        if "scale" in sections:
            data["scale"] = run_scale(progress, args.quick)
        if "bundle" in sections:
            data["bundle"] = run_bundle(progress, args.quick)
    finally:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, "log.txt"), "w") as f:
            f.write(log.getvalue())
    data["failures"] = progress.failures
    data["machine"] = _report.machine()
    data["elapsed_s"] = time.perf_counter() - _STARTED
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(data, f, indent=1, default=str)
    write(data, out, report)
    print(
        f"done in {data['elapsed_s']:.0f} s; report: {os.path.relpath(report)}"
        + (f"; {len(progress.failures)} step(s) FAILED" if progress.failures else ""),
        flush=True,
    )
    return 1 if progress.failures else 0


if __name__ == "__main__":
    sys.exit(main())
