"""Export a trained surrogate (torch.export ``.pt2`` with a model card) and run it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from pdeml.datasets.reader import parse_selector, read_selection
from pdeml.datasets.schema import DatasetError, open_h5, read_attrs
from pdeml.evaluate import find_checkpoint, load_surrogate

CARD_NAME = "model_card.json"


def model_card(surrogate: torch.nn.Module, cfg: dict[str, Any], run: Path) -> dict[str, Any]:
    """Inputs, outputs, grid, training data provenance and test metrics of a run."""
    data = cfg.get("data", {})
    card: dict[str, Any] = {
        "format": "pdeml-surrogate",
        "operator": surrogate.model.config,
        "inputs": data.get("inputs"),
        "outputs": data.get("outputs"),
        "layout": "(batch, channels, *spatial)",
        "normalization": {
            "input_mean": surrogate.in_normalizer.mean.tolist(),
            "input_std": surrogate.in_normalizer.std.tolist(),
            "output_mean": surrogate.out_normalizer.mean.tolist(),
            "output_std": surrogate.out_normalizer.std.tolist(),
        },
    }
    train = data.get("train")
    if train and Path(train).exists():
        attrs = read_attrs(train)
        card["inputs"] = card["inputs"] or json.loads(attrs.get("input_vars", "null"))
        card["outputs"] = card["outputs"] or json.loads(attrs.get("output_vars", "null"))
        card["training_data"] = {k: v for k, v in attrs.items() if not k.startswith("_")}
        with open_h5(train) as f:
            card["grid"] = list(read_selection(f, card["inputs"][0], 0).shape[1:])
    for candidate in (run / "eval" / "metrics.json", run / "metrics.json"):
        if candidate.exists():
            card["test_metrics"] = json.loads(candidate.read_text())
            break
    return card


def export_run(run: str | Path, out: str | Path, batch: int = 2) -> dict[str, str]:
    """Export a run's best surrogate to ``out`` (``.pt2``) and ``out`` with ``.json``.

    The exported program contains normalization; the batch dimension is dynamic. The model
    card is written beside it and embedded in the archive.
    """
    out = Path(out)
    if out.suffix != ".pt2":
        raise ValueError(f"export target must end in .pt2, got {out.name}")
    ckpt = find_checkpoint(run)
    run_dir = ckpt.parent.parent
    surrogate, cfg = load_surrogate(run)
    card = model_card(surrogate, cfg, run_dir)
    if "grid" not in card:
        raise DatasetError("cannot infer the input grid: the run's training file is missing")
    example = torch.randn(batch, surrogate.model.config["kwargs"]["in_channels"], *card["grid"])
    dims = {"x": {0: torch.export.Dim("batch", min=1, max=65536)}}
    program = torch.export.export(surrogate, (example,), dynamic_shapes=dims)
    out.parent.mkdir(parents=True, exist_ok=True)
    card_text = json.dumps(card, indent=2)
    tmp = out.with_name(out.stem + ".tmp.pt2")
    torch.export.save(program, tmp, extra_files={CARD_NAME: card_text})
    os.replace(tmp, out)
    card_path = out.with_suffix(".json")
    card_path.write_text(card_text)
    return {"program": str(out), "card": str(card_path)}


def load_exported(path: str | Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Load a ``.pt2`` export: the callable module and its embedded model card."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"model file not found: {path}")
    extra = {CARD_NAME: ""}
    try:
        program = torch.export.load(path, extra_files=extra)
    except Exception as err:  # torch raises several types for a damaged archive
        raise DatasetError(f"cannot load {path}: {str(err).splitlines()[0]}") from None
    card = json.loads(extra[CARD_NAME]) if extra[CARD_NAME] else {}
    return program.module(), card


def _read_inputs(path: Path, card: dict[str, Any]) -> np.ndarray:
    n_in = card["operator"]["kwargs"]["in_channels"]
    grid = card.get("grid")
    if path.suffix == ".npy":
        try:
            x = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise DatasetError(f"cannot read {path}: {err}") from None
    elif path.suffix in (".h5", ".hdf5", ".nc"):
        with open_h5(path) as f:
            missing = [v for v in card["inputs"] if parse_selector(v)[0] not in f]
            if missing:
                raise DatasetError(f"{path} has no input variable {', '.join(missing)}")
            rows = np.arange(f[parse_selector(card["inputs"][0])[0]].shape[0])
            x = np.concatenate([read_selection(f, v, rows) for v in card["inputs"]], axis=1)
    else:
        raise DatasetError(f"unsupported input format '{path.suffix}'; use .npy or .h5")
    if grid and x.ndim == len(grid) + 1 and n_in == 1:
        x = x[:, None]
    if x.ndim < 3 or x.shape[1] != n_in or (grid and len(x.shape[2:]) != len(grid)):
        raise DatasetError(
            f"input of shape {x.shape} does not fit the model: expected (N, {n_in}, "
            f"{', '.join(map(str, grid or ['...']))})"
        )
    return x.astype(np.float32)


def predict(
    model_path: str | Path, input_path: str | Path, output_path: str | Path,
    batch_size: int = 32, progress: bool = True,
) -> Path:
    """Run an exported surrogate over every sample of a ``.npy`` or HDF5 file.

    The output (``(N, out_channels, *spatial)``) is written atomically as ``.npy``.
    """
    module, card = load_exported(model_path)
    x = _read_inputs(Path(input_path), card)
    output_path = Path(output_path)
    if output_path.suffix != ".npy":
        raise DatasetError(f"output must be a .npy file, got {output_path.name}")
    outs = []
    starts = range(0, len(x), batch_size)
    with torch.no_grad():
        for s in tqdm(starts, desc="predict", unit="batch", disable=not progress):
            outs.append(module(torch.from_numpy(x[s : s + batch_size])).numpy())
    output_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = output_path.with_name(output_path.name + ".tmp.npy")
    np.save(tmp, np.concatenate(outs))
    os.replace(tmp, output_path)
    return output_path
