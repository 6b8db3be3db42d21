"""Evaluation reports: figures (fields, spectra, error growth), result tables, index page.

Package-private helpers of :mod:`pdeml.evaluate` and :mod:`pdeml.suite`.
"""

from __future__ import annotations

import csv
import html
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


def _image(ax: Any, field: np.ndarray, cmap: str, fig: Any) -> None:
    if field.ndim == 1:
        ax.plot(field)
        return
    im = ax.imshow(field, origin="lower", cmap=cmap)
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_xticks([]), ax.set_yticks([])


def plot_fields(
    truth: np.ndarray, pred: np.ndarray, names: Sequence[str], path: str | Path, title: str = ""
) -> Path:
    """Truth / prediction / error panels of one sample ``(channels, *grid)``, a row per channel."""
    n = len(names)
    fig, axes = plt.subplots(n, 3, figsize=(10, 2.8 * n), squeeze=False)
    for c, name in enumerate(names):
        for j, (label, field) in enumerate((("truth", truth[c]), ("prediction", pred[c]),
                                            ("error", pred[c] - truth[c]))):
            _image(axes[c, j], field, "RdBu_r" if j == 2 else "viridis", fig)
            axes[c, j].set_title(f"{name}: {label}")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


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
    fig.savefig(path, dpi=80)
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


def write_index(
    path: str | Path, title: str, rows: list[dict[str, Any]], columns: Sequence[str],
    figures: dict[str, list[Path]], links: Sequence[Path] = (),
) -> Path:
    """An HTML page with the results table, links to the table files, and every figure."""
    path = Path(path)
    root = path.parent

    def rel(p: Path) -> str:
        return html.escape(str(Path(p).resolve().relative_to(root.resolve())))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c, '')))}</td>"
                                     for c in columns) + "</tr>" for r in rows)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
             "</title><style>table{border-collapse:collapse}td,th{border:1px solid #999;"
             "padding:2px 6px;font:12px monospace}img{max-width:32%}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>",
             "<p>" + " · ".join(f"<a href='{rel(p)}'>{html.escape(Path(p).name)}</a>"
                                for p in links) + "</p>",
             f"<table><tr>{head}</tr>{body}</table>"]
    for section, images in figures.items():
        parts.append(f"<h2>{html.escape(section)}</h2><p>")
        parts += [f"<a href='{rel(p)}'><img src='{rel(p)}' alt='{html.escape(p.name)}'></a>"
                  for p in images]
        parts.append("</p>")
    path.write_text("\n".join(parts) + "</body></html>\n")
    return path


# ------------------------------------------------------------------------------- CFDBench
def plot_masked_fields(
    truth: np.ndarray, pred: np.ndarray, mask: np.ndarray, names: Sequence[str],
    path: str | Path, title: str = "",
) -> Path:
    """:func:`plot_fields` with the solid (``mask == 0``) blanked out in grey, so colour
    scales and errors show the fluid only."""
    solid = np.asarray(mask) == 0
    fig, axes = plt.subplots(len(names), 3, figsize=(10, 2.8 * len(names)), squeeze=False)
    for c, name in enumerate(names):
        panels = (("truth", truth[c]), ("prediction", pred[c]),
                  ("error", pred[c] - truth[c]))
        for j, (label, field) in enumerate(panels):
            cmap = plt.get_cmap("RdBu_r" if j == 2 else "viridis").copy()
            cmap.set_bad("0.6")
            _image(axes[c, j], np.ma.masked_where(solid, field), cmap, fig)
            axes[c, j].set_title(f"{name}: {label}")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


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
