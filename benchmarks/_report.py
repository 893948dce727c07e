"""Markdown, figures and machine details for `benchmarks/run.py`'s report."""

from __future__ import annotations

import datetime
import math
import os
import platform
import subprocess
import sys
from importlib import metadata

import scaling

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# One colour per tool; solid for the steady-state call, dashed from scratch.
COLORS = {"dense": "tab:blue", "asdex": "tab:orange", "sparsejac": "tab:green"}


# --------------------------------------------------------------------- machine


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return None


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()


def _git_commit() -> str | None:
    try:
        commit = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + (" with uncommitted changes" if dirty else "")


def machine() -> dict:
    """Where and with what the benchmarks ran."""
    import jax

    device = jax.devices()[0]
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "device": f"{device.platform} ({device.device_kind})",
        "versions": {
            name: _version(name)
            for name in ("asdex", "jax", "jaxlib", "numpy", "scipy", "sparsejac")
        },
        "git": _git_commit(),
        "command": " ".join(
            [
                "python",
                os.path.relpath(os.path.abspath(sys.argv[0]), ROOT),
                *sys.argv[1:],
            ]
        ),
    }


def machine_table(info: dict, elapsed_s: float) -> str:
    v = info["versions"]
    memory = f", {info['memory_gib']:.0f} GiB memory" if info["memory_gib"] else ""
    rows = [
        ("date", info["date"]),
        ("command", f"`{info['command']}` ({_duration(elapsed_s)})"),
        (
            "CPU",
            f"{info['cpu']}, {info['cores']} cores "
            f"({info['usable_cores']} usable){memory}",
        ),
        ("JAX device", info["device"]),
        ("platform", f"{info['platform']}, Python {info['python']}"),
        (
            "versions",
            ", ".join(f"{k} {v[k]}" for k in v if v[k] is not None)
            + ("" if v.get("sparsejac") else "; sparsejac not installed"),
        ),
    ]
    if info.get("git"):
        rows.append(("asdex commit", info["git"]))
    lines = ["| | |", "|---|---|"]
    lines += [f"| {k} | {val} |" for k, val in rows]
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{seconds:.0f} s"


# --------------------------------------------------------------------- figures


def plot_case(name: str, rows: list[dict], path: str) -> None:
    """Time against n on log-log axes: dense, asdex and sparsejac, steady state
    (solid) and from scratch (dashed), with the function itself for scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    case = scaling.CASES[name]
    entries = scaling.by_size(rows, name)
    fig, ax = plt.subplots(figsize=(8.4, 4.4), dpi=100)
    ns = [e["n"] for e in entries]
    label = "∇f" if case.hessian else "f"
    ax.plot(
        ns,
        [e["t_base"] for e in entries],
        ":",
        color="gray",
        label=f"{label} alone ({case.baseline})",
    )
    names = {
        "dense": f"dense {case.dense_name}",
        "asdex": "asdex",
        "sparsejac": "sparsejac",
    }
    for method in scaling.METHODS:
        have = [e for e in entries if method in e]
        if not have:
            continue
        x = [e["n"] for e in have]
        color = COLORS[method]
        ax.plot(
            x,
            [e[method]["steady_s"] for e in have],
            "-o",
            color=color,
            markersize=3,
            label=f"{names[method]}, steady state",
        )
        from_scratch = "compile + first call" if method == "dense" else "from scratch"
        ax.plot(
            x,
            [e[method]["prep_s"] + e[method]["first_s"] for e in have],
            "--",
            color=color,
            label=f"{names[method]}, {from_scratch}",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("n (number of inputs)")
    ax.set_ylabel("time (s)")
    ax.set_title(case.title.replace("`", ""), fontsize=11)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# --------------------------------------------------------------------- tables


def _t(seconds: float | None) -> str:
    return "—" if seconds is None else scaling.format_time(seconds)


def _bold(text: str, yes: bool) -> str:
    return f"**{text}**" if yes else text


def sweep_table(name: str, rows: list[dict]) -> str:
    case = scaling.CASES[name]
    base = case.baseline
    lines = [
        f"| n | colors: asdex (sparsejac) | {base} | dense | dense compile + first call "
        f"| asdex | asdex / {base} | asdex from scratch (prep + first call) "
        f"| sparsejac | sparsejac / {base} | sparsejac from scratch |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for e in scaling.by_size(rows, name):
        dense, a, s = e.get("dense"), e.get("asdex"), e.get("sparsejac")
        cells = [f"{e['n']:,}"]
        colors = f"{a['mode']}, {a['colors']}" if a else "—"
        if s and s.get("colors"):
            colors += f" (sparsejac {s['colors']})"
        cells.append(colors)
        cells.append(_t(e["t_base"]))
        cells.append(_t(dense["steady_s"]) if dense else "—")
        cells.append(_t(dense["first_s"]) if dense else "—")
        if a:
            faster = dense is not None and a["steady_s"] < dense["steady_s"]
            scratch = a["prep_s"] + a["first_s"]
            faster_scratch = dense is not None and scratch < dense["first_s"]
            cells.append(_bold(_t(a["steady_s"]), faster))
            cells.append(f"{a['steady_s'] / e['t_base']:.1f}×")
            cells.append(
                _bold(_t(scratch), faster_scratch)
                + f" ({_t(a['prep_s'])} + {_t(a['first_s'])})"
            )
        else:
            cells += ["—"] * 3
        if s:
            cells.append(_t(s["steady_s"]))
            cells.append(f"{s['steady_s'] / e['t_base']:.1f}×")
            cells.append(_t(s["prep_s"] + s["first_s"]))
        else:
            cells += ["—"] * 3
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def crossover_table(names: list[str], rows: list[dict]) -> str:
    lines = [
        "| case | dense measured up to | asdex beats dense from n: steady state "
        "| from scratch | sparsejac beats dense from n: steady state | from scratch |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name in names:
        cells = [scaling.CASES[name].title]
        a = scaling.crossover(rows, name, "asdex")
        largest = a["largest_dense_n"]
        cells.append(f"{largest:,}" if largest else "—")

        def fmt(n, largest=largest):
            if largest is None:
                return "—"
            return f"{n:,}" if n is not None else f"> {largest:,}"

        cells += [fmt(a["excluding_prep"]), fmt(a["including_prep"])]
        if any(r["case"] == name and r["method"] == "sparsejac" for r in rows):
            s = scaling.crossover(rows, name, "sparsejac")
            cells += [fmt(s["excluding_prep"]), fmt(s["including_prep"])]
        else:
            cells += ["—", "—"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def sparsejac_comparison(names: list[str], rows: list[dict]) -> str:
    """asdex against sparsejac at the largest size both ran."""
    lines = []
    for name in names:
        common = [
            e for e in scaling.by_size(rows, name) if "asdex" in e and "sparsejac" in e
        ]
        if not common:
            continue
        e = common[-1]
        a, s = e["asdex"], e["sparsejac"]
        lines.append(
            f"- {scaling.CASES[name].title}, n = {e['n']:,}: steady state asdex "
            f"{_t(a['steady_s'])}, sparsejac {_t(s['steady_s'])} "
            f"(asdex / sparsejac = {a['steady_s'] / s['steady_s']:.2f}); from scratch "
            f"asdex {_t(a['prep_s'] + a['first_s'])}, sparsejac "
            f"{_t(s['prep_s'] + s['first_s'])}, of which sparsejac's own coloring "
            f"{_t(s['sparsejac_prep_s'])}."
        )
    return "\n".join(lines)


def targets_line(name: str, jacobian_cases: dict) -> str | None:
    """The targets of `benchmarks/jacobians.py` for this case, if it has one."""
    case = jacobian_cases.get(name)
    if case is None:
        return None
    n = math.prod(case.shape(case.size))
    base = "t_grad" if case.hessian else "t_f"
    return (
        f"Targets (from `benchmarks/jacobians.py`, at n = {n:,}): steady state "
        f"≤ {case.target_ratio:g}× {base}, preparation ≤ {case.target_prep_s:g} s, "
        f"compile + first call ≤ {case.target_first_s:g} s; the verdicts are in "
        "[the targets table](#targets-sparse-jacobians-and-hessians)."
    )
