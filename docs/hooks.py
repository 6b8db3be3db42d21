"""MkDocs hook: benchmark tables rendered from the benchmark scripts' JSON at build time.

A page writes a marker line such as ``<!-- bench-table: precision_steps -->``; the build
replaces it with a Markdown table computed from the JSON files under ``docs/data/bench/``
(copies of what ``scripts/bench_*.py`` wrote under ``runs/bench/``), followed by a line that
names those files. The numbers are therefore never retyped: to refresh a table, copy the new
JSON over the old one. :data:`TABLES` lists every table with the files it reads; an unknown
name or a missing file stops the build.

Registered in ``mkdocs.yml`` under ``hooks:``. :func:`render` is importable on its own (the
tests call it without MkDocs).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data" / "bench"
MARKER = re.compile(r"^<!-- bench-table: (?P<name>[\w-]+) -->[ \t]*$", re.MULTILINE)


def _load(name: str, data: Path) -> dict[str, Any]:
    path = data / name
    if not path.is_file():
        raise FileNotFoundError(f"bench table data {path} is missing")
    return json.loads(path.read_text())


def _table(head: list[str], align: list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "|" + "|".join(f" {c} " if c else " " for c in cells) + "|"

    return "\n".join([line(head), "|" + "|".join(align) + "|"] + [line(r) for r in rows])


# --- scripts/bench_precision.py steps ---------------------------------------------------

OPERATOR_LABELS = {"MGTFNO": "MG-TFNO", "LSM": "LSM (default)", "GNOT": "GNOT (default)"}


def precision_steps(data: Path, name: str = "precision_steps.json") -> str:
    """fp32 against bf16-mixed training steps (`bench_precision.py steps`, quiet machine)."""
    rows = []
    for r in _load(name, data)["rows"]:
        change = -100.0 * r["bf16-mixed_memory_saving"]
        rows.append([
            OPERATOR_LABELS.get(r["operator"], r["operator"]), f"{r['grid']}²", str(r["batch"]),
            f"{r['fp32_s']:.3f}", f"{r['bf16-mixed_s']:.3f}", f"{r['bf16-mixed_speedup']:.2f}x",
            f"{r['fp32_peak_MiB']:.0f}",
            f"{r['bf16-mixed_peak_MiB']:.0f} ({change:+.0f}%)", str(r["loadavg"][0]),
        ])
    head = ["operator", "grid", "batch", "fp32 s", "bf16-mixed s", "bf16 speed", "fp32 peak MiB",
            "bf16-mixed peak MiB", "load"]
    return _table(head, ["---", "---"] + ["---:"] * 7, rows)


# --- scripts/bench_auto.py (the amg-fresh re-run) ------------------------------------------

METHOD_LABELS = {"direct": "LU", "amg": "AMG", "amg-fresh": "AMG fresh", "gmres": "GMRES",
                 "gcrodr": "GCRO-DR"}
AUTO_COLUMNS = ["direct", "amg", "amg-fresh", "gmres", "gcrodr"]


def _case_label(case: str) -> str:
    problem, kind, size = case.split("_")
    kinds = {"pwc": "pwc", "lognormal": "log-normal"}
    return f"{problem.capitalize()} {kinds.get(kind, kind)} {size}²"


def auto_amgfresh(data: Path) -> str:
    """`solver=auto`'s planner with AMG rebuilt per system as a candidate (ms per system)."""
    rows = []
    for r in _load("auto_amgfresh.json", data)["rows"].values():
        times = r["seconds_per_system"]
        cells = [_case_label(r["case"])]
        for method in AUTO_COLUMNS:
            ms = f"{1e3 * times[method]:.1f}"
            cells.append(f"**{ms}**" if method == r["fastest"] else ms)
        cells.append(f"{METHOD_LABELS[r['static_choice']]} ({r['static_ratio']:.2f})")
        cells.append(f"{METHOD_LABELS[r['planned']]} ({r['planned_ratio']:.2f}; "
                     f"{r['planned_ratio_with_planning']:.2f})")
        rows.append(cells)
    head = ["case", "LU", "AMG reused", "**AMG fresh**", "GMRES", "GCRO-DR", "old static (ratio)",
            "planner (ratio; with planning)"]
    return _table(head, ["---"] * len(head), rows)


# --- scripts/bench_surrogate_solver.py (3-D Helmholtz 32³) ---------------------------------

SOLVER_ROWS = [  # (key in the JSON, method, detail, note after the iteration ratio)
    ("lu", "LU", "", ""), ("amg", "AMG", "GMRES, hierarchy reused", ""),
    ("cold", "GMRES + ILU, cold", "", ""), ("gmres", "GMRES + ILU, reused, warm", "", ""),
    ("recycled", "GCRO-DR + ILU, recycled", "", ""), ("guess", "guess", "GCRO-DR", ""),
    ("guess+amg", "guess + AMG", "", ""), ("space", "space", "predicted only", ""),
    ("space+recycled", "space + recycled", "", ""),
    ("twosweep", "two sweeps, no network", "control", ""),
    ("correct", "correct, ILU smoother", "", " (vs the control)"),
    ("correct/4", "correct every 4th", "", ""), ("correct+amg", "correct, AMG smoother", "", ""),
]


def surrogate_solver(data: Path) -> str:
    """The trained operator inside the linear solves against classical methods."""
    d = _load("surrogate_solver_helmholtz3d.json", data)
    methods, targets = d["methods"], d["targets"]
    fastest_ms = targets["fastest_classical_ms"]
    rows = []
    for key, method, detail, note in SOLVER_ROWS:
        m = methods[key]
        label, ms = method, f"{m['ms_per_system']:.0f}"
        if key == targets["fastest_classical"]:  # the method to beat, in bold
            label, ms = f"**{label}**", f"**{ms}**"
        label += f" ({detail})" if detail else ""
        ratio = targets["per_method"].get(key, {}).get("iteration_ratio_vs_same_krylov")
        rows.append([
            label, ms, f"{m['inference_ms']:.0f}" if m["inference_ms"] else "",
            f"{m['iterations_mean']:.3g}", f"{fastest_ms / m['ms_per_system']:.2f}x",
            "" if ratio is None else f"{ratio:.2f}{note}",
        ])
    head = ["method", "ms/system", "of which inference", "mean iterations",
            "vs AMG (fastest classical)", "iterations: same Krylov without / with"]
    return _table(head, ["---"] * len(head), rows)


# --- scripts/bench_closed_loop.py (two runs of the off/on pair) ----------------------------

def closed_loop(data: Path) -> str:
    """Generation throughput with the surrogate fed back into the generators, off and on."""
    rows = []
    for n, name in (("1st", "closed_loop_1.json"), ("2nd", "closed_loop_2.json")):
        for run in ("off", "on"):
            r = _load(name, data)["results"][run]
            q1, q4 = r["quarters"][0], r["quarters"][-1]
            surrogate = q4["surrogate_seconds_per_sample"]
            rows.append([
                f"{run} ({n})", f"{q1['samples_per_s']:.1f} -> {q4['samples_per_s']:.1f}",
                f"{r['last_over_first_quarter']:.2f}",
                f"{q1['iterations_per_sample']:.1f} -> {q4['iterations_per_sample']:.1f}",
                f"{1e3 * q1['worker_seconds_per_sample']:.0f} -> "
                f"{1e3 * q4['worker_seconds_per_sample']:.0f}",
                f"{1e3 * surrogate:.1f}" if surrogate else "-",
            ])
    head = ["run", "samples/s Q1 -> Q4", "Q4/Q1", "iterations/sample Q1 -> Q4",
            "worker ms/sample Q1 -> Q4", "surrogate ms/sample Q4"]
    return _table(head, ["---"] * len(head), rows)


TABLES: dict[str, tuple[Callable[[Path], str], tuple[str, ...]]] = {
    "precision_steps": (precision_steps, ("precision_steps.json",)),
    "precision_steps_amx": (lambda data: precision_steps(data, "precision_steps_amx.json"),
                            ("precision_steps_amx.json",)),
    "auto_amgfresh": (auto_amgfresh, ("auto_amgfresh.json",)),
    "surrogate_solver": (surrogate_solver, ("surrogate_solver_helmholtz3d.json",)),
    "closed_loop": (closed_loop, ("closed_loop_1.json", "closed_loop_2.json")),
}


def render(name: str, data: Path = DATA) -> str:
    """The Markdown table ``name`` of :data:`TABLES`, with a line naming its JSON files."""
    if name not in TABLES:
        raise KeyError(f"unknown bench table {name!r}; known: {', '.join(sorted(TABLES))}")
    make, files = TABLES[name]
    sources = ", ".join(f"`docs/data/bench/{f}`" for f in files)
    return f"{make(data)}\n\n*Generated at build time from {sources}.*"


def replace_markers(markdown: str, data: Path = DATA) -> str:
    """``markdown`` with every bench-table marker line replaced by its table."""
    return MARKER.sub(lambda m: render(m.group("name"), data), markdown)


def on_page_markdown(markdown: str, page: Any = None, **kwargs: Any) -> str:
    """MkDocs event: render the page's bench-table markers; any error aborts the build."""
    try:
        return replace_markers(markdown)
    except (KeyError, FileNotFoundError, ValueError) as error:
        from mkdocs.exceptions import PluginError

        where = getattr(getattr(page, "file", None), "src_path", "a page")
        raise PluginError(f"{where}: {error}") from error
