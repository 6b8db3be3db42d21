"""The documentation site: it builds under ``--strict``, its generated tables render, the README
stays short.

The pages' ``bash`` and ``python`` blocks run in ``tests/test_readme.py`` (after the README's,
in the order of :data:`test_readme.DOC_ORDER`); this module checks the rest:

- ``mkdocs build --strict`` passes (broken links or anchors, pages missing from the nav and
  docstrings mkdocstrings cannot parse are warnings, so errors here), with no network: the
  proxies point at a closed local port, so a build that tried to fetch anything would fail.
- every ``<!-- bench-table: NAME -->`` marker names a table of ``docs/hooks.py``, every table
  renders from its JSON under ``docs/data/bench/`` (kept small), and a few rows are pinned to the
  numbers the README printed when the tables were typed by hand.
- every figure under ``docs/`` is shown on some page; README.md has at most 250 lines.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_readme import DOC_ORDER, MKDOCS, README, ROOT

DOCS = ROOT / "docs"
README_MAX_LINES = 250
BENCH_DATA_MAX_BYTES = 200_000


def _hooks():
    spec = importlib.util.spec_from_file_location("pdeml_docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _pages() -> list[Path]:
    return sorted(DOCS.rglob("*.md"))


def test_readme_is_at_most_250_lines() -> None:
    n = len(README.read_text().splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines; move detail into docs/"


def test_every_page_is_in_the_nav_and_so_in_the_doc_order() -> None:
    pages = {p.relative_to(ROOT).as_posix() for p in _pages()}
    assert pages == set(DOC_ORDER[1:]), "docs/*.md and mkdocs.yml's nav differ"


def test_every_figure_is_shown_on_a_page() -> None:
    text = "\n".join(p.read_text() for p in _pages())
    shown = {(page.parent / m).resolve() for page in _pages()
             for m in re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)", page.read_text())}
    figures = {p.resolve() for p in DOCS.rglob("*.png")}
    assert figures, "no figures under docs/"
    assert figures <= shown, f"not shown on any page: {sorted(figures - shown)}"
    assert "](docs/" not in text  # README-relative paths do not resolve inside the site


def test_every_marker_names_a_table_and_every_table_is_used() -> None:
    hooks = _hooks()
    used = {m.group("name") for p in _pages() for m in hooks.MARKER.finditer(p.read_text())}
    assert used == set(hooks.TABLES)


def test_bench_tables_render_from_small_json() -> None:
    hooks = _hooks()
    files = {f for _, names in hooks.TABLES.values() for f in names}
    assert all((hooks.DATA / f).is_file() for f in files)
    assert sum((hooks.DATA / f).stat().st_size for f in files) < BENCH_DATA_MAX_BYTES
    for name in hooks.TABLES:
        table = hooks.render(name).split("\n\n")[0].splitlines()
        widths = {line.count("|") for line in table}
        assert len(table) > 2 and len(widths) == 1, f"{name}: ragged table"


# Rows as the README printed them when the tables were typed by hand (issue 31, item 3).
PINNED_ROWS = {
    "precision_steps": [
        "| FNO | 64² | 8 | 0.123 | 1.282 | 0.10x | 59 | 30 (-49%) | 0.6 |",
        "| T1 | 256² | 4 | 0.017 | 0.058 | 0.30x | 6 | 7 (+17%) | 0.91 |",
        "| GNOT (default) | 64² | 8 | 2.147 | 17.153 | 0.13x | 1056 | 531 (-50%) | 1.05 |",
    ],
    "auto_amgfresh": [
        "| Darcy pwc 192² | 132.8 | 163.8 | **97.7** | 190.1 | 301.7 | LU (1.36) "
        "| AMG fresh (1.00; 1.06) |",
    ],
    "surrogate_solver": [
        "| **AMG** (GMRES, hierarchy reused) | **242** | | 25.2 | 1.00x | |",
        "| correct, ILU smoother | 891 | 364 | 19.2 | 0.27x | 0.97 (vs the control) |",
    ],
    "closed_loop": [
        "| on (2nd) | 12.3 -> 11.5 | 0.93 | 10.7 -> 9.8 | 79 -> 85 | 13.7 |",
    ],
}


@pytest.mark.parametrize("name", sorted(PINNED_ROWS))
def test_generated_tables_keep_the_published_numbers(name: str) -> None:
    table = _hooks().render(name)
    for row in PINNED_ROWS[name]:
        assert row in table.splitlines(), f"{name}: {row!r} not in\n{table}"


def test_markers_are_replaced_and_unknown_ones_refused() -> None:
    hooks = _hooks()
    page = "text\n\n<!-- bench-table: closed_loop -->\n\nmore\n"
    out = hooks.replace_markers(page)
    assert "<!-- bench-table" not in out and "| off (1st) | 14.1 -> 13.3 |" in out
    assert "`docs/data/bench/closed_loop_1.json`" in out
    with pytest.raises(KeyError, match="unknown bench table"):
        hooks.replace_markers("<!-- bench-table: no_such_table -->\n")


def test_mkdocs_build_strict_offline(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    pytest.importorskip("mkdocstrings_handlers.python")
    dead = "http://127.0.0.1:9"  # the discard port: nothing listens, every fetch fails at once
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONDONTWRITEBYTECODE="1",
               http_proxy=dead, https_proxy=dead, HTTP_PROXY=dead, HTTPS_PROXY=dead,
               ALL_PROXY=dead, all_proxy=dead, no_proxy="", NO_PROXY="")
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(MKDOCS),
         "--site-dir", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    log = proc.stderr + proc.stdout
    assert proc.returncode == 0, "mkdocs build --strict failed:\n" + "\n".join(
        line for line in log.splitlines() if "WARNING" in line or "ERROR" in line or
        "Aborted" in line)
    precision = (site / "guide" / "precision" / "index.html").read_text()
    assert "Generated at build time from" in precision and "bench-table" not in precision
    assert (site / "api" / "operators" / "index.html").read_text().count("doc-heading") > 8
