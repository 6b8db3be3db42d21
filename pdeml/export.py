"""Export a trained surrogate (torch.export ``.pt2`` or ONNX, with a model card) and run it."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import os
import re
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from pdeml.checks import (
    InputError,
    check_int,
    check_output,
    check_writable,
    first_nonfinite,
    missing_dirs,
    remove_made,
    write_atomic,
)
from pdeml.datasets.reader import parse_selector, read_selection
from pdeml.datasets.schema import DatasetError, check_problem, open_h5, read_attrs
from pdeml.evaluate import _refuse_point_clouds, find_checkpoint, load_surrogate
from pdeml.precision import EXPORT_PRECISIONS, PARITY, Float32IO

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


FORMATS = (".pt2", ".onnx")


def prepare_for_export(module: torch.nn.Module, precision: str = "fp32") -> torch.nn.Module:
    """A copy of ``module`` in eval mode whose spectral layers use the real DFT path.

    The truncated DFT as matrix products is real arithmetic, traces with symbolic grid sizes
    (so the export keeps a dynamic resolution) and maps onto ONNX MatMul; the FFT path would
    need complex tensors, which ONNX Runtime cannot run. With ``precision="bf16"`` the
    network's weights become bfloat16 (its GEMMs run in bf16) while a surrogate's
    normalization stays float32; input and output stay float32 either way.
    """
    if precision not in EXPORT_PRECISIONS:
        raise ValueError(f"unknown export precision '{precision}'; use one of "
                         f"{', '.join(EXPORT_PRECISIONS)}")
    module = copy.deepcopy(module).eval()
    for layer in module.modules():
        if getattr(layer, "transform", None) in ("auto", "fft") and hasattr(layer, "_use_fft"):
            layer.transform = "dft"
    if precision == "bf16":
        if hasattr(module, "in_normalizer") and hasattr(module, "model"):
            module.model.to(torch.bfloat16)  # the Surrogate feeds it bf16 and decodes in fp32
        else:
            module = Float32IO(module, torch.bfloat16)
    return module


def _dynamic_shapes(example: torch.Tensor, resolution: bool) -> dict[str, dict[int, Any]]:
    """Dynamic batch; with ``resolution``, grids from the traced size up to 8192 per axis.

    Coarser grids are left out: there spectral layers clamp their modes to the grid, which
    is a different graph.
    """
    dims: dict[int, Any] = {0: torch.export.Dim("batch", min=1, max=65536)}
    if resolution:
        for axis in range(2, example.ndim):
            dims[axis] = torch.export.Dim(f"n{axis - 2}", min=example.shape[axis], max=8192)
    return {"x": dims}


def export_module(
    module: torch.nn.Module, example: torch.Tensor, path: str | Path,
    card: dict[str, Any] | None = None, dynamic_resolution: bool | None = None,
    precision: str = "fp32",
) -> dict[str, Any]:
    """Export ``module`` to ``path`` (``.pt2`` or ``.onnx``) with a dynamic batch.

    Parameters
    ----------
    module
        Any ``(batch, channels, *grid)`` model (a trained :class:`Surrogate` or a bare operator).
    example
        An input of the shape to trace at.
    path
        Target file; the suffix picks the format. Written atomically.
    card
        Model card embedded in the file (``.pt2`` extra file / ONNX metadata ``model_card``).
    dynamic_resolution
        Export the grid sizes as dynamic too. ``None`` tries it and falls back to the traced
        grid when the operator cannot be traced with symbolic sizes; the card records which.
        An operator that declares ``dynamic_grid_export = False`` is not tried.
    precision
        ``fp32`` or ``bf16`` (weights and GEMMs in bfloat16; float32 input, output and
        normalization). An ONNX file that ONNX Runtime cannot run is refused.

    Returns
    -------
    dict
        ``{"format", "dynamic_resolution", "precision"}``.

    Raises
    ------
    ValueError
        For an unknown suffix, or when the operator cannot be exported to the format (the
        message says why).
    """
    path = Path(path)
    if path.suffix not in FORMATS:
        raise ValueError(f"export target must end in {' or '.join(FORMATS)}, got {path.name}")
    module = prepare_for_export(module, precision)
    card = dict(card or {}) | {"precision": precision}
    if dynamic_resolution is not None:
        tries = [dynamic_resolution]
    elif getattr(getattr(module, "model", module), "dynamic_grid_export", True):
        tries = [True, False]
    else:  # the operator's graph follows the grid: a symbolic trace would fail, slowly
        tries = [False]
    error: Exception | None = None
    for dynamic in tries:
        try:
            _write(module, example, path, card | {"dynamic_resolution": dynamic}, dynamic)
            if dynamic and dynamic_resolution is None and not _runs_on_a_larger_grid(
                    module, example, path):
                continue  # the exporter specialized a size silently: export the fixed grid
            return {"format": path.suffix[1:], "dynamic_resolution": dynamic,
                    "precision": precision}
        except OSError as err:  # the target cannot be written: no second try
            raise InputError(f"cannot write {path}: {err.strerror or err}") from None
        except RuntimeRefusal as err:  # the runtime cannot run this precision: no retry
            raise ValueError(str(err)) from None
        except Exception as err:  # tracing/lowering errors come in many types
            error = err
    name = type(getattr(module, "model", module)).__name__
    raise ValueError(f"cannot export {name} to {path.suffix[1:]}: {_reason(error)}") from None


def _runs_on_a_larger_grid(module: torch.nn.Module, example: torch.Tensor,
                           path: Path) -> bool:
    """Whether the export at ``path`` matches eager on a grid one point larger per axis."""
    x = torch.randn(example.shape[0], example.shape[1], *(n + 1 for n in example.shape[2:]))
    try:
        exported, _ = load_exported(path)
    except Exception:
        return False
    return _agrees(exported, module, x)


def _agrees(exported: Any, module: torch.nn.Module, x: torch.Tensor) -> bool:
    """Whether the export runs on ``x`` and matches eager (relative max error <= 1e-4; 1e-2
    for a bf16 network, whose eager and exported kernels may round differently)."""
    try:
        with torch.no_grad():
            got, want = exported(x), module(x)
    except Exception:  # a shape error from either runtime
        return False
    low = any(p.dtype == torch.bfloat16 for p in module.parameters())
    scale = float(want.abs().max()) + 1e-12
    tol = 1e-2 if low else 1e-4
    return got.shape == want.shape and float((got - want).abs().max()) <= tol * scale


class RuntimeRefusal(Exception):
    """The export was written but its runtime cannot run it (e.g. bf16 in ONNX Runtime)."""


def _check_onnx_runs(path: Path, example: torch.Tensor) -> None:
    """Raise :class:`RuntimeRefusal` unless ONNX Runtime loads and runs the file at ``path``."""
    try:
        OnnxModule(path)(example)
    except ImportError:
        raise
    except Exception as err:  # ORT raises its own types for graphs it cannot run
        text = " ".join(str(err).split())
        op = re.search(r"of operator \((\w+)\)", text)
        why = (f"its CPU provider has no bfloat16 {op.group(1)}" if op
               else text.split("failed:")[-1][:120])
        raise RuntimeRefusal(f"ONNX Runtime cannot run the bf16 export ({why}); export bf16 "
                             "to .pt2, or fp32 to .onnx") from None


def _embed_card(path: Path, card: dict[str, Any]) -> None:
    """Replace the model card embedded in an export (no new trace: the graph is reloaded)."""
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    text = json.dumps(card, indent=2)
    try:
        if path.suffix == ".pt2":
            torch.export.save(torch.export.load(path), tmp, extra_files={CARD_NAME: text})
        else:
            import onnx

            model = onnx.load(str(path))
            for entry in model.metadata_props:
                if entry.key == "model_card":
                    entry.value = text
            onnx.save(model, tmp)
        os.replace(tmp, path)
    except OSError as err:
        path.unlink(missing_ok=True)  # no export whose card says less than its file
        raise InputError(f"cannot write {path}: {err.strerror or err}") from None
    finally:
        tmp.unlink(missing_ok=True)


def smallest_grid(module: torch.nn.Module, example: torch.Tensor, path: Path) -> list[int]:
    """The smallest of the traced grid halved 0, 1, 2 ... times (down to 4 points per axis)
    on which the export at ``path`` runs and matches eager: a resolution-dynamic export can
    still refuse grids too small for its modes or levels, and the card says where that is."""
    exported, _ = load_exported(path)
    best = list(example.shape[2:])
    grid = [n // 2 for n in best]
    while min(grid) >= 4:
        if not _agrees(exported, module, torch.randn(example.shape[0], example.shape[1], *grid)):
            break  # too small for its modes or levels
        best, grid = grid, [n // 2 for n in grid]
    return best


def _reason(error: Exception | None) -> str:
    """The root cause of an export failure, in one line (ONNX's summary names it first)."""
    text = str(error).strip()
    for line in text.splitlines():
        if line.startswith("<class ") and ">: " in line:
            return line.split(">: ", 1)[1][:300]
    return (text.splitlines() or [repr(error)])[0][:300]


@contextlib.contextmanager
def _quiet_onnx_exporter() -> Iterator[None]:
    """Silence the exporter's progress prints and its warnings about torchvision ops."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _write(module: torch.nn.Module, example: torch.Tensor, path: Path,
           card: dict[str, Any], dynamic: bool) -> None:
    shapes = _dynamic_shapes(example, dynamic)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp" + path.suffix)
    card_text = json.dumps(card, indent=2)
    try:
        if path.suffix == ".pt2":
            program = torch.export.export(module, (example,), dynamic_shapes=shapes)
            torch.export.save(program, tmp, extra_files={CARD_NAME: card_text})
        else:
            import onnx

            with _quiet_onnx_exporter():
                onnx_program = torch.onnx.export(module, (example,), dynamo=True,
                                                 dynamic_shapes=shapes, verbose=False)
            model = onnx_program.model_proto
            entry = model.metadata_props.add()
            entry.key, entry.value = "model_card", card_text
            onnx.save(model, tmp)
            if card.get("precision", "fp32") != "fp32":
                _check_onnx_runs(tmp, example)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # a failed try leaves no partial file


LATENCY_BATCH = 16  # queries per batch of the latency the model card records


def card_path_of(model: str | Path) -> Path:
    """Where :func:`export_run` writes the model card of an exported file."""
    model = Path(model)
    return model.with_name(model.name + ".json")


def measured_latency(path: Path, example: torch.Tensor, batch: int = LATENCY_BATCH
                     ) -> dict[str, Any]:
    """Seconds per query of the export at ``path`` on this machine, at batch 1 and batched
    (``batch`` random inputs of the example's grid), with the threads it ran on."""
    from pdeml.baselines import surrogate_cost

    program, _ = load_exported(path)
    x = torch.randn(batch, *example.shape[1:])
    cost = surrogate_cost(program, x, repeats=3)
    return {**cost, "threads": torch.get_num_threads(), "device": "cpu",
            "grid": list(example.shape[2:])}


PARITY_SAMPLES = 8  # samples of the run's test (else training) file the parity is taken on


def _parity_inputs(cfg: dict[str, Any], card: dict[str, Any],
                   example: torch.Tensor) -> tuple[torch.Tensor, str]:
    """Up to :data:`PARITY_SAMPLES` inputs of the run's test (else training) file, and their
    source; random ones of the example's shape when neither file is there."""
    data = cfg.get("data", {})
    for split in ("test", "train"):
        path = data.get(split)
        if path and Path(path).is_file():
            with open_h5(path) as f:
                n = min(PARITY_SAMPLES, f[parse_selector(card["inputs"][0])[0]].shape[0])
                x = np.concatenate([read_selection(f, v, np.arange(n))
                                    for v in card["inputs"]], axis=1)
            return torch.from_numpy(x), f"first {n} samples of {split} ({Path(path).name})"
    return torch.randn(PARITY_SAMPLES, *example.shape[1:]), "standard normal"


def parity(reference: torch.nn.Module, exported: Any, x: torch.Tensor) -> dict[str, float]:
    """How far an export's output is from the fp32 eager model's on ``x``.

    Parameters
    ----------
    reference
        The eager model in float32.
    exported
        The loaded export (a callable).
    x
        Inputs ``(batch, channels, *grid)``.

    Returns
    -------
    dict
        ``rel_l2`` (the batch's relative L2 distance), ``max_abs`` and ``max_rel`` (the
        largest absolute difference over the largest absolute reference value).
    """
    with torch.no_grad():
        want = reference.eval()(x).float()
        got = torch.as_tensor(exported(x)).float()
    diff = got - want
    return {"rel_l2": float(diff.norm() / want.norm().clamp_min(1e-30)),
            "max_abs": float(diff.abs().max()),
            "max_rel": float(diff.abs().max() / want.abs().max().clamp_min(1e-30))}


def _record_parity(card: dict[str, Any], surrogate: torch.nn.Module, out: Path,
                   cfg: dict[str, Any], example: torch.Tensor, precision: str) -> None:
    """Measure the export against fp32 eager and write it into ``card`` with the tolerance
    for its precision; an export outside that tolerance is removed and refused."""
    x, source = _parity_inputs(cfg, card, example)
    measured = parity(surrogate, load_exported(out)[0], x)
    tolerance = PARITY[precision]
    card["parity"] = {"reference": "eager float32", "inputs": source, "measured": measured,
                      "tolerance": tolerance}
    failed = [k for k, v in tolerance.items() if measured[k] > v]
    if failed:
        out.unlink(missing_ok=True)
        k = failed[0]
        raise ValueError(f"the {precision} export differs from the fp32 model by {k} "
                         f"{measured[k]:.3g} (tolerance {tolerance[k]:g}); not exported")


def export_run(run: str | Path, out: str | Path, batch: int = 2,
               dynamic_resolution: bool | None = None, overwrite: bool = False,
               precision: str = "fp32") -> dict[str, Any]:
    """Export a run's best surrogate to ``out`` (``.pt2`` or ``.onnx``) and ``out.json``.

    The exported graph contains the normalization; the batch dimension is dynamic, and so is
    the grid for operators that trace with symbolic sizes (see :func:`export_module`). The
    model card is embedded in the file and written beside it as ``<out>.json`` (e.g.
    ``fno.pt2.json``), so a ``.pt2`` and an ``.onnx`` of one name keep a card each; the card
    records the export's measured latency on this machine (``latency``: seconds per query at
    batch 1 and batched), its ``precision`` and its ``parity`` with the fp32 eager model on
    samples of the run's data, with the tolerance that precision is held to
    (:data:`pdeml.precision.PARITY`). Existing files are replaced only with ``overwrite``.
    """
    out = Path(out)
    if out.suffix not in FORMATS:
        raise ValueError(f"export target must end in {' or '.join(FORMATS)}, got {out.name}")
    check_output(out, overwrite, "export target")
    card_path = card_path_of(out)
    check_output(card_path, overwrite, "model card")
    check_writable(out)  # before minutes of tracing, not after
    ckpt = find_checkpoint(run)
    run_dir = ckpt.parent.parent
    surrogate, cfg = load_surrogate(run)
    _refuse_point_clouds(cfg.get("data", {}).get("train"), "export")
    card = model_card(surrogate, cfg, run_dir)
    if "grid" not in card:
        raise DatasetError("cannot infer the input grid: the run's training file is missing")
    example = torch.randn(batch, surrogate.model.config["kwargs"]["in_channels"], *card["grid"])
    made = missing_dirs(out.parent)
    if precision not in EXPORT_PRECISIONS:
        raise ValueError(f"unknown export precision '{precision}'; use one of "
                         f"{', '.join(EXPORT_PRECISIONS)}")
    info = export_module(surrogate, example, out, card, dynamic_resolution, precision)
    card["precision"] = precision
    card["dynamic_resolution"] = info["dynamic_resolution"]
    if info["dynamic_resolution"]:
        card["min_grid"] = smallest_grid(prepare_for_export(surrogate, precision), example, out)
    _record_parity(card, surrogate, out, cfg, example, precision)
    card["latency"] = measured_latency(out, example)
    _embed_card(out, card)
    try:
        write_atomic(card_path, lambda fh: fh.write(json.dumps(card, indent=2).encode()))
    except InputError:
        out.unlink(missing_ok=True)  # no model without its card
        remove_made(made, tree=False)
        raise
    return {"program": str(out), "card": str(card_path), **info}


class OnnxModule:
    """An ONNX Runtime session with the call signature of a torch module (CPU provider)."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options,
                                            providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        out = self.session.run(None, {self.input_name: x.detach().cpu().numpy()})[0]
        return torch.from_numpy(out)


def load_exported(path: str | Path) -> tuple[Any, dict[str, Any]]:
    """Load a ``.pt2`` or ``.onnx`` export: a callable ``x -> y`` and its model card."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"model file not found: {path}")
    if path.suffix not in FORMATS:
        raise DatasetError(f"unsupported model format '{path.suffix}'; use .pt2 or .onnx")
    try:
        if path.suffix == ".onnx":
            import onnx

            meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
            return OnnxModule(path), json.loads(meta.get("model_card", "{}"))
        extra = {CARD_NAME: ""}
        program = torch.export.load(path, extra_files=extra)
    except ImportError:
        raise DatasetError("ONNX models need onnx and onnxruntime: "
                           "pip install 'pdeml[onnx]'") from None
    except Exception as err:  # torch/onnx raise several types for a damaged file
        raise DatasetError(f"cannot load {path}: {str(err).splitlines()[0]}") from None
    card = json.loads(extra[CARD_NAME]) if extra[CARD_NAME] else {}
    return program.module(), card


def _load_npy(path: Path) -> np.ndarray:
    """A numeric ``.npy`` array, with one-line errors for missing, empty or foreign files."""
    if not path.exists():
        raise DatasetError(f"input file not found: {path}")
    if path.stat().st_size == 0:
        raise DatasetError(f"{path} is empty; expected a .npy array (N, C, *grid) saved with "
                           "numpy.save")
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DatasetError(f"{path} is not a .npy array (expected (N, C, *grid) saved with "
                           f"numpy.save): {first[:120]}") from None
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "biuf":
        raise DatasetError(f"{path} holds {getattr(x, 'dtype', type(x).__name__)} data; "
                           "expected real numbers (N, C, *grid)")
    if x.ndim == 0 or len(x) == 0:
        raise DatasetError(f"{path} holds no samples (shape {x.shape}); expected (N, C, *grid)")
    x = x.astype(np.float32)
    bad = first_nonfinite(x)
    if bad is not None:
        raise DatasetError(f"{path}: input sample {bad} holds NaN or Inf values (after "
                           "conversion to float32); predict needs finite inputs")
    return x


def _check_input(path: Path) -> np.ndarray | None:
    """What can be checked of a predict input without the model: the ``.npy`` array itself
    (returned), or that an HDF5 file opens; other formats are refused."""
    if path.suffix == ".npy":
        return _load_npy(path)
    if path.suffix in (".h5", ".hdf5", ".nc"):
        open_h5(path).close()
        return None
    raise DatasetError(f"unsupported input format '{path.suffix}'; use .npy or .h5")


def _read_inputs(path: Path, card: dict[str, Any], x: np.ndarray | None = None) -> np.ndarray:
    n_in = card["operator"]["kwargs"]["in_channels"]
    grid = card.get("grid")
    if path.suffix == ".npy":
        x = _load_npy(path) if x is None else x
    elif path.suffix in (".h5", ".hdf5", ".nc"):
        from pdeml.datasets.pointcloud import is_pointcloud

        if is_pointcloud(path):
            raise DatasetError(f"{path} holds point clouds; this {card['operator']['name']} "
                               "model takes grids (train GNOT for point clouds)")
        check_problem(path, card.get("training_data", {}).get("problem"),
                      "the model was trained on")
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
    if len(x) == 0:
        raise DatasetError(f"{path} holds no samples (shape {x.shape})")
    smallest = card.get("min_grid")
    if smallest and any(n < m for n, m in zip(x.shape[2:], smallest, strict=False)):
        raise DatasetError(f"input grid {'x'.join(map(str, x.shape[2:]))} is below the "
                           f"smallest the model takes ({'x'.join(map(str, smallest))}, "
                           "per its card)")
    return x.astype(np.float32)  # HDF5 reads were checked for finiteness by read_selection


def predict(
    model_path: str | Path, input_path: str | Path, output_path: str | Path,
    batch_size: int = 32, progress: bool = True, overwrite: bool = False,
) -> Path:
    """Run an exported surrogate over every sample of a ``.npy`` or HDF5 file.

    The output (``(N, out_channels, *spatial)``) is written atomically as ``.npy``; an
    existing one is replaced only with ``overwrite``. Inputs must be finite, and a
    prediction with a NaN or an infinity stops the run naming the sample (nothing written).
    """
    output_path = Path(output_path)
    if output_path.suffix != ".npy":
        raise DatasetError(f"output must be a .npy file, got {output_path.name}")
    check_int(batch_size, "--batch-size", 1)
    check_output(output_path, overwrite, "output")
    if not Path(model_path).exists():
        raise DatasetError(f"model file not found: {model_path}")
    checked = _check_input(Path(input_path))  # cheap checks before loading the model
    module, card = load_exported(model_path)
    x = _read_inputs(Path(input_path), card, checked)
    outs = []
    starts = range(0, len(x), batch_size)
    with torch.no_grad():
        for s in tqdm(starts, desc="predict", unit="batch", disable=not progress):
            try:
                outs.append(module(torch.from_numpy(x[s : s + batch_size])).numpy())
            except Exception as err:  # the runtimes raise their own types on bad shapes
                first = str(err).strip().splitlines()[0] if str(err).strip() else repr(err)
                raise DatasetError(f"the model rejected input of shape {x.shape}: "
                                   f"{first[:300]}") from None
            bad = first_nonfinite(outs[-1])
            if bad is not None:
                raise DatasetError(f"the model's output for sample {s + bad} of {input_path} "
                                   "holds NaN or Inf values; nothing written")
    result = np.concatenate(outs)
    write_atomic(output_path, lambda fh: np.save(fh, result))
    return output_path
