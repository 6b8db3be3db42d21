"""Metrics over whole test sets, sample figures, and evaluation of a trained run."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from torch.utils.data import DataLoader, Dataset  # noqa: E402

from pdeml.config import load_yaml  # noqa: E402
from pdeml.datasets.reader import H5Dataset  # noqa: E402
from pdeml.datasets.schema import DatasetError  # noqa: E402
from pdeml.trainers.module import OperatorModule, Surrogate  # noqa: E402


class MetricAccumulator:
    """Relative L2 and MSE accumulated in float64 over any number of batches."""

    def __init__(self) -> None:
        self.rel_l2: list[np.ndarray] = []
        self.sq_err, self.count = 0.0, 0

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add one batch of ``(batch, channels, *spatial)`` predictions and targets."""
        p, t = pred.detach().double().flatten(1), target.detach().double().flatten(1)
        err = torch.linalg.vector_norm(p - t, dim=1)
        ref = torch.linalg.vector_norm(t, dim=1).clamp_min(1e-300)
        self.rel_l2.append((err / ref).cpu().numpy())
        self.sq_err += float(((p - t) ** 2).sum())
        self.count += p.numel()

    def compute(self) -> dict[str, float]:
        """The metrics as plain floats."""
        if not self.rel_l2:
            raise ValueError("no samples were evaluated")
        rel = np.concatenate(self.rel_l2)
        mse = self.sq_err / self.count
        return {
            "n_samples": int(rel.size),
            "rel_l2": float(rel.mean()),
            "rel_l2_median": float(np.median(rel)),
            "rel_l2_max": float(rel.max()),
            "mse": mse,
            "rmse": float(np.sqrt(mse)),
        }


@torch.no_grad()
def evaluate_model(
    model: Callable[[torch.Tensor], torch.Tensor], dataset: Dataset, batch_size: int = 32
) -> dict[str, float]:
    """Metrics of ``model`` over every sample of ``dataset`` (pairs ``(x, y)``)."""
    acc = MetricAccumulator()
    for x, y in DataLoader(dataset, batch_size=batch_size, shuffle=False):
        acc.update(model(x), y)
    return acc.compute()


def plot_samples(
    x: np.ndarray, y: np.ndarray, pred: np.ndarray, path: str | Path, titles: tuple = ()
) -> Path:
    """Input / truth / prediction / error panels, one row per sample (1-D or 2-D, channel 0)."""
    n = len(x)
    fig, axes = plt.subplots(n, 4, figsize=(12, 2.8 * n), squeeze=False)
    names = titles or ("input", "truth", "prediction", "error")
    for i in range(n):
        fields = (x[i, 0], y[i, 0], pred[i, 0], pred[i, 0] - y[i, 0])
        for j, (ax, field) in enumerate(zip(axes[i], fields, strict=True)):
            if field.ndim == 1:
                ax.plot(field)
            else:
                im = ax.imshow(field, origin="lower", cmap="RdBu_r" if j == 3 else "viridis")
                fig.colorbar(im, ax=ax, fraction=0.046)
                ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(names[j])
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def find_checkpoint(run: str | Path) -> Path:
    """The best checkpoint of a run directory, or the given checkpoint file."""
    run = Path(run)
    if run.is_file():
        return run
    for name in ("best.ckpt", "last.ckpt"):
        if (run / "checkpoints" / name).exists():
            return run / "checkpoints" / name
    raise DatasetError(f"no checkpoint found in {run} (expected checkpoints/best.ckpt)")


def load_surrogate(run: str | Path) -> tuple[Surrogate, dict[str, Any]]:
    """The trained surrogate of a run (or checkpoint) and the run's config (if present)."""
    ckpt = find_checkpoint(run)
    try:
        module = OperatorModule.load_from_checkpoint(ckpt, map_location="cpu", weights_only=False)
    except (RuntimeError, KeyError, EOFError) as err:
        raise DatasetError(f"cannot load checkpoint {ckpt}: {str(err).splitlines()[0]}") from None
    cfg_path = ckpt.parent.parent / "config.yaml"
    cfg = load_yaml(cfg_path) if cfg_path.exists() else {}
    return module.surrogate.eval(), cfg


def evaluate_run(
    run: str | Path, data: str | Path | None = None, out: str | Path | None = None,
    n_plots: int = 4, batch_size: int = 32,
) -> dict[str, Any]:
    """Evaluate a trained run on a test file: ``metrics.json`` and ``samples.png`` in ``out``."""
    surrogate, cfg = load_surrogate(run)
    data_cfg = cfg.get("data", {})
    data = data or data_cfg.get("test")
    if data is None:
        raise DatasetError("no test data: pass --data or train with data.test set")
    inputs = data_cfg.get("inputs") or json.loads(_attr(data, "input_vars"))
    outputs = data_cfg.get("outputs") or json.loads(_attr(data, "output_vars"))
    dataset = H5Dataset(data, inputs, outputs)
    metrics = evaluate_model(surrogate, dataset, batch_size)
    out = Path(out) if out else Path(run if Path(run).is_dir() else Path(run).parent) / "eval"
    out.mkdir(parents=True, exist_ok=True)
    metrics["data"] = str(data)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    k = min(n_plots, len(dataset))
    if k:
        xs, ys = zip(*(dataset[i] for i in range(k)), strict=True)
        x, y = torch.stack(xs), torch.stack(ys)
        with torch.no_grad():
            pred = surrogate(x)
        plot_samples(x.numpy(), y.numpy(), pred.numpy(), out / "samples.png")
    return {"metrics": metrics, "out": str(out)}


def _attr(path: str | Path, name: str) -> str:
    from pdeml.datasets.schema import read_attrs

    attrs = read_attrs(path)
    if name not in attrs:
        raise DatasetError(f"{path} has no '{name}' attribute; configure data.inputs/outputs")
    return attrs[name]
