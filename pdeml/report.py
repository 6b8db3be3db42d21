"""Evaluation reports: figures (fields, spectra, error growth), result tables, index page.

Package-private helpers of :mod:`pdeml.evaluate` and :mod:`pdeml.suite`.
"""

from __future__ import annotations

import csv
import html
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from pdeml.metrics import radial_wavenumber  # noqa: E402


def energy_spectrum(fields: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Radially binned spectrum of ``(n, channels, *grid)`` fields, summed over channels.

    ``E(k) = sum_{floor|k'| = k} |F(k')|^2 / N^2`` (``N`` grid points; summed over ``k`` it
    is the mean square of the fields, by Parseval), averaged over the ``n`` samples.

    Returns
    -------
    k, E
        Integer wavenumbers ``0..kmax`` and the spectrum.
    """
    fields = np.asarray(fields, np.float64)
    spatial = fields.shape[2:]
    power = np.abs(np.fft.fftn(fields, axes=tuple(range(2, fields.ndim)))) ** 2
    power = power.sum(axis=1).mean(axis=0) / float(np.prod(spatial)) ** 2
    k = radial_wavenumber(spatial).ravel()
    spectrum = np.bincount(k, weights=power.ravel())
    return np.arange(len(spectrum)), spectrum


SOLID_COLOUR = "0.45"  # grey: solid cells (mask == 0) in every field panel
PANELS_KEY = "pdeml:panels"  # PNG text chunk with each panel's colour limits (tests read it)


def physical_extent(path: str | Path, index: int = 0) -> tuple[float, float, float, float] | None:
    """``(x0, x1, y0, y1)`` of sample ``index`` of a pdeml file, in physical units.

    CFD files store ``x, y`` as fractions of each case's domain and the domain size as
    per-sample parameters (``length`` or ``width``, ``height``); other grids give ``x, y``.
    """
    import h5py

    with h5py.File(path, "r") as f:
        lx = next((f[k][index] for k in ("length", "width") if k in f and f[k].ndim == 1), None)
        ly = f["height"][index] if "height" in f and f["height"].ndim == 1 else None
        if "x" not in f or "y" not in f:
            return None
        x, y = np.asarray(f["x"][...], float), np.asarray(f["y"][...], float)
    if lx is not None and ly is not None:
        x, y = x * float(lx), y * float(ly)
    return _edges(x) + _edges(y)


def _edges(c: np.ndarray) -> tuple[float, float]:
    h = float(c[1] - c[0]) if len(c) > 1 else 1.0
    return float(c[0] - h / 2), float(c[-1] + h / 2)  # imshow's extent is the pixels' edges


def sample_mask(path: str | Path, index: int = 0) -> np.ndarray | None:
    """The fluid ``mask`` (1 fluid, 0 solid) of sample ``index``, when the file has one."""
    import h5py

    with h5py.File(path, "r") as f:
        if "mask" not in f:
            return None
        m = f["mask"]
        return np.asarray(m[index] if m.ndim == 3 else m[...]) != 0


def rel_l2(truth: np.ndarray, pred: np.ndarray, mask: np.ndarray | None = None) -> float:
    """``||pred - truth|| / ||truth||`` over the fluid cells."""
    t, p = np.asarray(truth, float), np.asarray(pred, float)
    if mask is not None and mask.shape == t.shape:
        t, p = t[mask], p[mask]
    return float(np.linalg.norm(p - t) / max(np.linalg.norm(t), 1e-30))


def _masked(field: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    if mask is None or mask.shape != field.shape:
        return np.asarray(field, float)
    return np.ma.masked_array(np.asarray(field, float), mask=~mask)


def _limits(*fields: np.ndarray, symmetric: bool = False) -> tuple[float, float]:
    values = np.concatenate([np.ma.compressed(np.ma.asarray(f)).ravel() for f in fields])
    values = values[np.isfinite(values)]
    if not values.size:
        return (-1.0, 1.0)
    if symmetric:
        m = float(np.abs(values).max()) or 1.0
        return (-m, m)
    lo, hi = float(values.min()), float(values.max())
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


def draw_field(ax: Any, fig: Any, field: np.ndarray, clim: tuple[float, float], kind: str,
               title: str, extent: Sequence[float] | None = None,
               mask: np.ndarray | None = None) -> None:
    """One panel: fixed colour limits, physical extent and aspect, solid cells in grey.

    ``kind`` (input / truth / prediction / error) is stored on the image so that
    :func:`figure_panels` can report what each panel shows.
    """
    ax.set_title(title, fontsize=9)
    if field.ndim == 1:
        x = np.linspace(*(extent[:2] if extent else (0, 1)), len(field))
        ax.plot(x, field, label=kind)
        ax.set_ylim(*clim), ax.set_xlabel("x")
        ax.set_gid(json.dumps({"kind": kind, "clim": list(clim)}))
        return
    cmap = plt.get_cmap("RdBu_r" if kind == "error" else "viridis").with_extremes(
        bad=SOLID_COLOUR)
    im = ax.imshow(_masked(field, mask), origin="lower", cmap=cmap, vmin=clim[0], vmax=clim[1],
                   extent=tuple(extent) if extent else None, aspect="equal",
                   interpolation="nearest")
    im.set_label(kind)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.03)
    ax.set_xlabel("x", fontsize=8), ax.set_ylabel("y", fontsize=8)
    ax.tick_params(labelsize=7)


def comparison_row(axes: Sequence[Any], fig: Any, name: str, truth: np.ndarray,
                   pred: np.ndarray, extent: Sequence[float] | None = None,
                   mask: np.ndarray | None = None, label: str = "") -> float:
    """Truth | prediction (one shared colour scale) | error (symmetric about zero).

    Returns the relative L2 error of the prediction (over fluid cells), shown in the title.
    """
    t, p = _masked(truth, mask), _masked(pred, mask)
    err = rel_l2(truth, pred, mask)
    shared = _limits(t, p)
    draw_field(axes[0], fig, truth, shared, "truth", f"{label}{name}: truth", extent, mask)
    draw_field(axes[1], fig, pred, shared, "prediction", f"{label}{name}: prediction", extent,
               mask)
    draw_field(axes[2], fig, pred - truth, _limits(p - t, symmetric=True), "error",
               f"{name}: error (rel. L2 {err:.3g})", extent, mask)
    return err


def _panel_size(extent: Sequence[float] | None) -> tuple[float, float]:
    if not extent:
        return 3.4, 2.9
    aspect = (extent[3] - extent[2]) / max(extent[1] - extent[0], 1e-12)
    return 3.4, max(1.4, min(4.5, 2.8 * aspect + 0.6))


def plot_fields(
    truth: np.ndarray, pred: np.ndarray, names: Sequence[str], path: str | Path, title: str = "",
    extent: Sequence[float] | None = None, mask: np.ndarray | None = None,
) -> Path:
    """Truth / prediction / error panels of one sample ``(channels, *grid)``, a row per channel.

    Truth and prediction share one colour scale, the error's is symmetric about zero; panels
    keep the physical aspect (``extent = (x0, x1, y0, y1)``), solid cells (``mask == 0``)
    are grey, titles name the variable and its relative L2 error.
    """
    n = len(names)
    w, h = _panel_size(extent)
    fig, axes = plt.subplots(n, 3, figsize=(3 * w, h * n), squeeze=False)
    for c, name in enumerate(names):
        comparison_row(axes[c], fig, name, truth[c], pred[c], extent, mask)
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def figure_panels(path: str | Path) -> list[dict[str, Any]]:
    """What :func:`_save` recorded of a saved figure: each panel's title, kind, colour limits
    and extent, read from the PNG's text chunk (so tests check the figure, not pixels)."""
    from PIL import Image

    with Image.open(path) as img:
        return json.loads(img.text.get(PANELS_KEY, "[]"))


def _panel_records(fig: Any) -> list[dict[str, Any]]:
    records = []
    for ax in fig.axes:
        for im in ax.get_images():
            records.append({"title": ax.get_title(), "kind": im.get_label(),
                            "clim": [float(v) for v in im.get_clim()],
                            "extent": [float(v) for v in im.get_extent()],
                            "aspect": ax.get_aspect() if isinstance(ax.get_aspect(), str)
                            else float(ax.get_aspect()),
                            "xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(),
                            "solid_cells": int(np.ma.count_masked(im.get_array()))})
        if ax.get_gid():
            records.append({"title": ax.get_title(), **json.loads(ax.get_gid())})
    return records


def plot_spectra(
    truth: np.ndarray, pred: np.ndarray, path: str | Path, title: str = ""
) -> Path:
    """Energy spectra (see :func:`energy_spectrum`) of truth and prediction, log-log."""
    fig, ax = plt.subplots(figsize=(5, 4))
    for label, fields, style in (("truth", truth, "k-"), ("prediction", pred, "C1--")):
        k, e = energy_spectrum(fields)
        ax.loglog(k[1:], np.maximum(e[1:], 1e-30), style, label=label)
    ax.loglog(*_error_spectrum(truth, pred), "C3:", label="error")
    ax.set_xlabel("wavenumber |k|"), ax.set_ylabel("energy E(k)")
    ax.legend(), ax.set_title(title or "energy spectrum")
    return _save(fig, path)


def _error_spectrum(truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    k, e = energy_spectrum(np.asarray(pred, np.float64) - np.asarray(truth, np.float64))
    return k[1:], np.maximum(e[1:], 1e-30)


def plot_error_growth(
    curves: dict[str, Sequence[float]], path: str | Path, ylabel: str = "relative L2 error",
    title: str = "",
) -> Path:
    """Error against rollout step, one line per curve."""
    fig, ax = plt.subplots(figsize=(5, 4))
    for label, values in curves.items():
        ax.plot(np.arange(1, len(values) + 1), values, marker="o", ms=3, label=label)
    ax.set_xlabel("rollout step"), ax.set_ylabel(ylabel), ax.set_yscale("log")
    ax.legend(), ax.set_title(title or "error growth")
    return _save(fig, path)


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    metadata = {PANELS_KEY: json.dumps(_panel_records(fig))} if path.suffix == ".png" else None
    fig.savefig(path, dpi=80, metadata=metadata)
    plt.close(fig)
    return path


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "nan" if np.isnan(value) else f"{value:.4g}"
    return str(value)


def write_markdown(rows: list[dict[str, Any]], columns: Sequence[str], path: str | Path) -> Path:
    """A Markdown table of ``rows`` (dicts) with the given columns."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


def write_csv(rows: list[dict[str, Any]], columns: Sequence[str], path: str | Path) -> Path:
    """The same table as CSV (full precision)."""
    path = Path(path)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


METRIC_DEFINITIONS = {
    "rel_l2": "mean over samples of ||pred - y|| / ||y|| (the training metric)",
    "nrmse": "PDEBench nRMSE: mean over samples, steps, variables of RMSE / RMS(y)",
    "nmse": "sum of squared errors / sum of squared targets",
    "mse": "mean squared error over every point of every sample",
    "rmse": "root of the pooled mean squared error",
    "mae": "mean absolute error, pooled",
    "max_error": "largest absolute error anywhere",
    "brmse": "RMSE over the grid's outermost layer (boundary)",
    "frmse_low": "share of the MSE in radial wavenumbers |k| <= 4",
    "frmse_mid": "share of the MSE in 5 <= |k| <= 12",
    "frmse_high": "share of the MSE in |k| >= 13",
    "vrmse": "The Well's VRMSE: mean over samples, steps, variables of "
             "sqrt(MSE / (var(y) + 1e-7))",
    **{f"bs{n}mse_{b}": f"The Well's binned spectral {n.upper()}MSE, {b} wavenumber bin"
       for n in ("", "n") for b in ("low", "mid", "high")},
    "rollout_rel_l2": "rel_l2 of the free rollout from the first frame, mean over steps",
    "rollout_rmse": "RMSE of the free rollout, pooled over steps",
    "rollout_final_rel_l2": "rel_l2 of the free rollout at its last step",
    "params": "trainable parameters",
    "train_s": "training wall time in seconds",
}
KEY_COLUMNS = ("operator", "params", "train_s", "rel_l2", "nrmse", "rmse", "max_error",
               "rollout_rel_l2", "rollout_final_rel_l2")
CAPTIONS = {
    "fields": "truth, prediction (one colour scale) and error (symmetric scale), sample 0",
    "spectrum": "energy spectra of truth, prediction and error",
    "rollout": "relative L2 error against rollout step",
    "growth": "rollout error of every model against step",
    "samples": "input, truth, prediction and error of test samples",
}
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2433;
background:#f6f7f9}main{max-width:1200px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:28px 0 8px;border-bottom:2px solid
#d8dce3;padding-bottom:4px}h3{font-size:15px;margin:16px 0 6px;color:#3a4357}
.links a{margin-right:12px}.scroll{overflow-x:auto;background:#fff;border:1px solid #d8dce3;
border-radius:6px}table{border-collapse:collapse;width:100%;font-size:12.5px}
th,td{padding:4px 8px;border-bottom:1px solid #eceef2;text-align:right;white-space:nowrap}
th{background:#eef1f5;position:sticky;top:0}td.t,th.t{text-align:left}
td.best{font-weight:700;color:#0b6b3a;background:#e6f5ec}
tr.group td{background:#fafbfc;font-weight:600;text-align:left;color:#3a4357}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:12px}
figure{margin:0;background:#fff;border:1px solid #d8dce3;border-radius:6px;padding:6px}
figure.wide{grid-column:span 2}figure img{width:100%;height:auto;display:block}
figcaption{font-size:12px;color:#4a5468;
padding-top:4px}details{margin:8px 0}pre{background:#fff;border:1px solid #d8dce3;
padding:8px;border-radius:6px;overflow-x:auto;font-size:12px}.note{color:#5a6478;font-size:12px}
"""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)


def _best(rows: list[dict[str, Any]], columns: Sequence[str]) -> dict[str, float]:
    """Lowest value per error column (lower is better for every metric listed)."""
    out = {}
    for c in columns:
        if c in METRIC_DEFINITIONS and c not in ("params", "train_s"):
            values = [r[c] for r in rows if _is_number(r.get(c))]
            if values:
                out[c] = min(values)
    return out


def _html_table(rows: list[dict[str, Any]], columns: Sequence[str],
                group_keys: Sequence[str]) -> str:
    """Rows grouped by ``group_keys`` (a header row per group), the best value of each error
    column within a group in bold."""
    shown = [c for c in columns if c not in group_keys]
    head = "".join(f"<th class='{'t' if c == 'operator' else ''}' title='"
                   f"{html.escape(METRIC_DEFINITIONS.get(c, c))}'>{html.escape(c)}</th>"
                   for c in shown)
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(r.get(k, "") for k in group_keys), []).append(r)
    body = []
    for key, members in groups.items():
        if group_keys:
            label = " / ".join(f"{k} {v}" for k, v in zip(group_keys, key, strict=True))
            body.append(f"<tr class='group'><td colspan='{len(shown)}'>{html.escape(label)}"
                        "</td></tr>")
        best = _best(members, shown)
        for r in members:
            cells = []
            for c in shown:
                v = r.get(c, "")
                cls = "best" if c in best and _is_number(v) and v == best[c] else (
                    "t" if not _is_number(v) else "")
                cells.append(f"<td class='{cls}'>{html.escape(_cell(v))}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<div class='scroll'><table><tr>{head}</tr>{''.join(body)}</table></div>"


def _data_uri(path: Path) -> str:
    import base64

    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def _caption(path: Path) -> tuple[str, str]:
    """(model or group label, caption) from a figure's file name ``<prefix>_<kind>.png``."""
    stem = Path(path).stem
    for kind, text in CAPTIONS.items():
        if stem == kind or stem.endswith("_" + kind):
            prefix = stem[: -len(kind)].strip("_").replace("_", " ")
            return prefix, f"{prefix}: {text}" if prefix else text
    return "", stem.replace("_", " ")


def _figure_grid(images: Sequence[Path], rel: Any) -> str:
    """Figures grouped by model (one grid row each), every figure captioned and embedded
    (with a link to the PNG file beside the page)."""
    groups: dict[str, list[str]] = {}
    for p in images:
        label, caption = _caption(p)
        model = label.split(" ")[-1] if label else ""
        wide = " class='wide'" if Path(p).stem.endswith(("fields", "samples")) else ""
        groups.setdefault(model, []).append(
            f"<figure{wide}><img src='{_data_uri(p)}' alt='{html.escape(caption)}'>"
            f"<figcaption>{html.escape(caption)} (<a href='{rel(p)}'>png</a>)</figcaption>"
            "</figure>")
    return "".join(f"<div class='grid'>{''.join(figs)}</div><div style='height:10px'></div>"
                   for figs in groups.values())


def write_index(
    path: str | Path, title: str, rows: list[dict[str, Any]], columns: Sequence[str],
    figures: dict[str, list[Path]], links: Sequence[Path] = (),
    settings: dict[str, Any] | None = None, group_by: str | None = "case",
) -> Path:
    """A self-contained, styled HTML report (figures embedded as data URIs).

    One results table per ``group_by`` value (e.g. per case: rows grouped by sweep, the key
    metric columns, the best value of each error column per group in bold; every column in a
    collapsed full table), the metric definitions, the run ``settings`` and one captioned
    figure grid per entry of ``figures`` (a row per model).
    """
    import yaml

    path = Path(path)
    root = path.parent

    def rel(p: Path) -> str:
        return html.escape(str(Path(p).resolve().relative_to(root.resolve())))

    key_cols = [c for c in KEY_COLUMNS if c in columns] or list(columns)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             f"</title><style>{_CSS}</style></head><body><main>",
             f"<h1>{html.escape(title)}</h1>",
             "<p class='links'>" + "".join(f"<a href='{rel(p)}'>{html.escape(Path(p).name)}</a>"
                                           for p in links) + "</p>",
             "<h2>Results</h2><p class='note'>Test-set errors, lower is better; the best value "
             "of each column within a group is <b>bold</b>. Hover a header for its meaning.</p>"]
    problems: dict[Any, list[dict[str, Any]]] = {}
    for r in rows:
        problems.setdefault(r.get(group_by) if group_by else "", []).append(r)
    inner = [k for k in ("sweep",) if k in columns and k != group_by]
    for problem, members in problems.items():
        if group_by:
            parts.append(f"<h3>{html.escape(str(problem))}</h3>")
        parts.append(_html_table(members, [c for c in columns if c in key_cols or c in inner],
                                 inner))
    parts.append("<details><summary>All columns</summary>"
                 + _html_table(rows, columns, ()) + "</details>")
    used = [c for c in columns if c in METRIC_DEFINITIONS]
    parts.append("<h2>Metric definitions</h2><div class='scroll'><table>" + "".join(
        f"<tr><td class='t'><code>{html.escape(c)}</code></td><td class='t'>"
        f"{html.escape(METRIC_DEFINITIONS[c])}</td></tr>" for c in used) + "</table></div>")
    if settings:
        parts.append("<h2>Run settings</h2><pre>" + html.escape(
            yaml.safe_dump(settings, sort_keys=False, default_flow_style=None)) + "</pre>")
    parts.append("<h2>Figures</h2>")
    for section, images in figures.items():
        parts.append(f"<h3>{html.escape(section)}</h3>{_figure_grid(images, rel)}")
    path.write_text("\n".join(parts) + "</main></body></html>\n")
    return path


# ------------------------------------------------------------------------------- CFDBench
def plot_masked_fields(
    truth: np.ndarray, pred: np.ndarray, mask: np.ndarray, names: Sequence[str],
    path: str | Path, title: str = "",
) -> Path:
    """:func:`plot_fields` with the solid (``mask == 0``) drawn grey, so colour scales and
    errors show the fluid only."""
    return plot_fields(truth, pred, names, path, title, mask=np.asarray(mask) != 0)


CFDBENCH_TABLE_METRICS = ("nmse", "mse", "rmse", "mae")


def cfdbench_table(rows: list[dict[str, Any]], metrics: Sequence[str] = CFDBENCH_TABLE_METRICS,
                   ) -> str:
    """CFDBench's result layout as Markdown: one row per model, a column per problem x
    subset x metric (``rows`` carry ``case``, ``sweep``, ``operator`` and ``cfdbench_<m>``;
    the identity baseline row comes first)."""
    groups = list(dict.fromkeys((r["case"], r["sweep"]) for r in rows))
    models = list(dict.fromkeys(r["operator"] for r in rows))
    models.sort(key=lambda m: m != "identity")
    value = {(r["case"], r["sweep"], r["operator"]): r for r in rows}
    head = ["model"] + [f"{c} {s} {m.upper()}" for c, s in groups for m in metrics]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for op in models:
        cells = [op]
        for c, s in groups:
            r = value.get((c, s, op), {})
            cells += [_cell(r.get(f"cfdbench_{m}", float("nan"))) for m in metrics]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
