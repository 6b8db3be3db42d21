"""Shared-weights spectral fine-tuning of a trained operator (after Spectral-Refiner).

This is the data-fitting variant: one refined layer for a whole dataset, early-stopped on
labelled validation data. The paper's own recipe -- per trajectory, at inference, label-free,
on a finer grid -- is :mod:`pdeml.trainers.refine` (``pdeml finetune RUN --per-trajectory``),
whose docstring lists each point where pdeml follows or departs from the authors' code.

The trained network is frozen; its last spectral layer is rebuilt with more (or all) Fourier
modes, the trained low modes copied in and the new ones zero, so the rebuilt network starts as
the trained one exactly. Only that layer is then optimized:

* ``mode="data"``: against labelled data with a training loss (relative L2 by default);
* ``mode="residual"``: without labels, against the ``H^-1`` norm of the PDE residual of the
  prediction (the periodic 2-D Navier-Stokes vorticity equation, :class:`VorticityResidual`).

A labelled validation set stops the optimization early and the best state is kept: the
residual's minimizer is the time-discretized equation's solution, not the data's, so run long
enough it drifts away from the truth.

For :class:`~pdeml.operators.FNO` the frozen part before the last layer is evaluated once and
its output cached, so an epoch costs only the last layer and the projection. Other operators
built on :class:`~pdeml.operators.layers.SpectralConv` run their full (frozen) forward each step.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pdeml.operators.fno import FNO
from pdeml.operators.layers.spectral import SpectralConv, resolved_k_max
from pdeml.progress import note
from pdeml.trainers.losses import LpLoss, make_loss
from pdeml.trainers.residuals import VorticityResidual, residual_for_data

MODES = ("data", "residual")
__all__ = [
    "VorticityResidual", "apply_refined_modes", "expand_spectral_conv", "finetune",
    "finetune_run", "refine_last_spectral_layer", "residual_for_data", "spectral_layer_names",
]


# ----------------------------------------------------------------------------------------------
# Rebuilding the last spectral layer
# ----------------------------------------------------------------------------------------------

def spectral_layer_names(model: nn.Module, example: torch.Tensor) -> list[str]:
    """Names of the model's :class:`SpectralConv` layers in the order a forward pass calls them.

    Parameters
    ----------
    model
        The operator.
    example
        An input batch, e.g. one sample.

    Returns
    -------
    list of str
        Module names (``model.get_submodule(name)``), first called first.
    """
    order: list[str] = []
    handles = [
        module.register_forward_hook(lambda m, i, o, name=name: order.append(name))
        for name, module in model.named_modules() if isinstance(module, SpectralConv)
    ]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return list(dict.fromkeys(order))


def expand_spectral_conv(layer: SpectralConv, n_modes: Sequence[int]) -> SpectralConv:
    """A copy of ``layer`` keeping more modes: trained weights copied in, new modes zero.

    Parameters
    ----------
    layer
        A trained layer.
    n_modes
        Modes per axis, counted as in :class:`SpectralConv`; at least the layer's own.

    Returns
    -------
    SpectralConv
        Computes exactly what ``layer`` does until its new weights change; ``layer`` itself
        when ``n_modes`` equals its own.
    """
    if type(layer) is not SpectralConv:
        raise ValueError(f"spectral fine-tuning supports SpectralConv layers (FNO), not "
                         f"{type(layer).__name__}")
    n_modes = tuple(int(m) for m in n_modes)
    if len(n_modes) != layer.n_dim:
        raise ValueError(f"n_modes {n_modes} has {len(n_modes)} axes; the layer has {layer.n_dim}")
    if n_modes == layer.n_modes:
        return layer
    k_new, k_old = tuple(m // 2 for m in n_modes), layer.k_max
    if any(a < b for a, b in zip(k_new, k_old, strict=True)):
        raise ValueError(f"fine-tuning cannot keep fewer modes than the trained layer: "
                         f"n_modes {n_modes} against {layer.n_modes}")
    new = SpectralConv(layer.in_channels, layer.out_channels, n_modes, layer.transform,
                       init_std=0.0).to(layer.weight.device, layer.weight.dtype)
    # Non-last axes store frequencies -k..k (zero at index k), the last axis 0..k.
    index = [slice(None), slice(None)]
    index += [slice(kn - ko, kn + ko + 1) for kn, ko in zip(k_new[:-1], k_old[:-1], strict=True)]
    index += [slice(0, k_old[-1] + 1), slice(None)]
    with torch.no_grad():
        new.weight[tuple(index)] = layer.weight
    return new


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def apply_refined_modes(model: nn.Module, refined: Mapping[str, Sequence[int]]) -> None:
    """Rebuild the named spectral layers of ``model`` in place with the given ``n_modes``.

    How a fine-tuned checkpoint's operator gets its parameter layout back (see
    ``OperatorModule(refined_modes=...)``).
    """
    for name, n_modes in refined.items():
        try:
            layer = model.get_submodule(name)
        except AttributeError:
            raise ValueError(f"{type(model).__name__} has no layer '{name}' to refine") from None
        _set_submodule(model, name, expand_spectral_conv(layer, n_modes))


def full_modes(sizes: Sequence[int]) -> tuple[int, ...]:
    """``n_modes`` keeping every frequency a grid of ``sizes`` resolves (Nyquist excluded)."""
    return tuple(2 * ((n - 1) // 2) + 1 for n in sizes)


def resolve_modes(n_modes: str | int | Sequence[int], sizes: Sequence[int]) -> tuple[int, ...]:
    """``"all"``, one int for every axis, or one per axis -> a tuple per axis."""
    if n_modes == "all":
        return full_modes(sizes)
    if isinstance(n_modes, int):
        return (n_modes,) * len(sizes)
    if isinstance(n_modes, str):
        raise ValueError(f"n_modes must be 'all', an int or one int per axis, got '{n_modes}'")
    return tuple(int(m) for m in n_modes)


def refine_last_spectral_layer(
    model: nn.Module, n_modes: str | int | Sequence[int], example: torch.Tensor
) -> tuple[str, tuple[int, ...]]:
    """Freeze ``model`` and rebuild its last spectral layer with ``n_modes`` (trainable).

    Parameters
    ----------
    model
        A trained operator with :class:`SpectralConv` layers.
    n_modes
        ``"all"`` (every mode the example's grid resolves), an int, or one int per axis.
    example
        An input batch on the fine-tuning grid (finds the last layer, sizes ``"all"``).

    Returns
    -------
    name, n_modes
        The rebuilt layer's name and its modes (what ``refined_modes`` records).
    """
    names = spectral_layer_names(model, example)
    if not names:
        raise ValueError(f"{type(model).__name__} has no SpectralConv layer to fine-tune")
    name = names[-1]
    modes = resolve_modes(n_modes, example.shape[2:])
    for p in model.parameters():
        p.requires_grad_(False)
    layer = expand_spectral_conv(model.get_submodule(name), modes)
    if layer is model.get_submodule(name):
        layer = copy.deepcopy(layer)  # same modes: still a separate, trainable layer
    layer.weight.requires_grad_(True)
    _set_submodule(model, name, layer)
    return name, modes


# ----------------------------------------------------------------------------------------------
# Optimization
# ----------------------------------------------------------------------------------------------

def _kept_spectrum(x: torch.Tensor, ks: Sequence[int]) -> torch.Tensor:
    """The modes a :class:`SpectralConv` keeps, as its mixing takes them: ``(b, c, 2, *m)``
    real, non-last axes ``-k..k``, the last ``0..k``."""
    d, sizes = len(ks), x.shape[2:]
    xf = torch.fft.rfftn(x, dim=tuple(range(2, 2 + d))).narrow(-1, 0, ks[-1] + 1)
    for axis, k in enumerate(ks[:-1]):
        n = sizes[axis]
        xf = torch.cat([xf.narrow(2 + axis, n - k, k), xf.narrow(2 + axis, 0, k + 1)], 2 + axis)
    return torch.view_as_real(xf).movedim(-1, 2).contiguous()


def _mixed_field(layer: SpectralConv, z: torch.Tensor, ks: Sequence[int],
                 sizes: Sequence[int]) -> torch.Tensor:
    """``layer`` applied to a kept spectrum ``z``: its forward after its own FFT."""
    yf = torch.view_as_complex(layer._mix(z, tuple(ks)).movedim(2, -1).contiguous())
    for axis, k in enumerate(ks[:-1]):
        dim, gap = 2 + axis, list(yf.shape)
        gap[dim] = sizes[axis] - 2 * k - 1
        yf = torch.cat([yf.narrow(dim, k, k + 1), yf.new_zeros(gap), yf.narrow(dim, 0, k)], dim)
    return torch.fft.irfftn(yf, s=tuple(sizes), dim=tuple(range(2, 2 + len(ks))))


class _Fixed(nn.Module):
    """Stands in for the refined layer inside the FNO's own layer code: returns ``value``."""

    def __init__(self, value: torch.Tensor) -> None:
        super().__init__()
        self.value = value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.value


class _Split:
    """``decode(*encode(x)) == surrogate(x)``: ``encode`` is frozen and cached, ``decode`` trains.

    For an FNO whose last Fourier layer is the refined one, ``encode`` runs the FNO's own
    layers before it and returns the kept spectrum of that layer's input and the layer input
    itself; ``decode`` mixes the spectrum and runs the FNO's own last-layer code (skip, norm,
    channel MLP) and projection. So a step costs the mixing, one inverse FFT and the rest of
    the last layer. Otherwise ``encode`` is the identity and ``decode`` the whole (mostly
    frozen) model.
    """

    def __init__(self, surrogate: nn.Module, layer: str) -> None:
        self.surrogate, net = surrogate, surrogate.model
        self.fno = (isinstance(net, FNO) and hasattr(net, "_layer")
                    and layer == f"spectral.{len(net.spectral) - 1}")

    @torch.no_grad()
    def encode(self, x: torch.Tensor, chunk: int = 32) -> tuple[torch.Tensor, ...]:
        if not self.fno:
            return (x,)
        parts = [self._features(x[i:i + chunk]) for i in range(0, len(x), chunk)]
        return tuple(torch.cat(p) for p in zip(*parts, strict=True))

    def _features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        net = self.surrogate.model
        x = self.surrogate.in_normalizer.encode(x)
        net.check_input(x, net.in_channels)
        if net.embedding is not None:
            x = net.embedding(x)
        v = net.padding.pad(net.lifting(x))
        last = len(net.spectral) - 1
        for i in range(last):
            v = net._layer(i, v)
        seen: list[torch.Tensor] = []  # what the layer itself receives (after any stabilizer)
        handle = net.spectral[last].register_forward_pre_hook(lambda m, a: seen.append(a[0]))
        try:
            net._layer(last, v)
        finally:
            handle.remove()
        ks = resolved_k_max(net.spectral[last].k_max, v.shape[2:])
        return _kept_spectrum(seen[0], ks), v

    def decode(self, *z: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
        if not self.fno:
            return self.surrogate(z[0])
        net, (spectrum, v) = self.surrogate.model, z
        last = len(net.spectral) - 1
        layer = net.spectral[last]
        mixed = _mixed_field(layer, spectrum, resolved_k_max(layer.k_max, v.shape[2:]),
                             v.shape[2:])
        net.spectral[last] = _Fixed(mixed)
        try:
            out = net._layer(last, v)
        finally:
            net.spectral[last] = layer
        return self.surrogate.out_normalizer.decode(
            net.projection(net.padding.unpad(out, tuple(sizes))))


def _batch_loss(mode: str, loss_fn: nn.Module, residual: VorticityResidual | None
                ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    if mode == "data":
        return loss_fn
    if getattr(loss_fn, "relative", False):
        raise ValueError("residual fine-tuning needs an absolute loss (relative=False): the "
                         "target residual is zero")
    zero_like = torch.zeros_like

    def residual_loss(pred: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        r = residual(start, pred)
        return loss_fn(r, zero_like(r))

    return residual_loss


@torch.no_grad()
def _val_error(split: _Split, z: tuple[torch.Tensor, ...], y: torch.Tensor,
               sizes: Sequence[int], chunk: int = 32) -> float:
    errs = [LpLoss(2.0, reduction="none")(
        split.decode(*(t[i:i + chunk] for t in z), sizes=sizes), y[i:i + chunk])
        for i in range(0, len(y), chunk)]
    return float(torch.cat(errs).mean())


def _check_inputs(mode: str, train: tuple, val: tuple, residual: Any) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown fine-tuning mode '{mode}'; use one of {', '.join(MODES)}")
    if mode == "data" and train[1] is None:
        raise ValueError("data fine-tuning needs training targets")
    if mode == "residual" and residual is None:
        raise ValueError("residual fine-tuning needs a residual (e.g. VorticityResidual)")
    if val[0] is None or val[1] is None or len(val[0]) == 0:
        raise ValueError("fine-tuning needs a labelled validation set for early stopping")


def _optimize(split: _Split, data: dict[str, torch.Tensor], batch_loss: Callable,
              params: list[nn.Parameter], opts: dict[str, Any]) -> dict[str, Any]:
    """Adam over mini-batches with validation after each epoch; keeps the best state."""
    opt = torch.optim.Adam(params, lr=opts["lr"])
    gen = torch.Generator().manual_seed(int(opts["seed"]))
    sizes, n = data["sizes"], len(data["target"])
    t0 = time.perf_counter()
    best = _val_error(split, data["z_val"], data["y_val"], sizes)
    best_state = [p.detach().clone() for p in params]
    history: dict[str, list[float]] = {"train_loss": [], "val_l2": [best]}
    max_time = opts.get("max_time")
    if max_time is not None:  # keep room for the closing validation
        max_time -= 2 * (time.perf_counter() - t0)
    bad, best_epoch, t0 = 0, 0, time.perf_counter()
    out_of_time = False
    for epoch in range(1, int(opts["epochs"]) + 1):
        total, seen = 0.0, 0
        for idx in torch.randperm(n, generator=gen).split(int(opts["batch_size"])):
            pred = split.decode(*(t[idx] for t in data["z"]), sizes=sizes)
            loss = batch_loss(pred, data["target"][idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, seen = total + float(loss.detach()) * len(idx), seen + len(idx)
            # The budget is checked per step: one epoch can outlast a short budget.
            out_of_time = max_time is not None and time.perf_counter() - t0 > max_time
            if out_of_time:
                break
        history["train_loss"].append(total / seen)
        val = _val_error(split, data["z_val"], data["y_val"], sizes)
        history["val_l2"].append(val)
        note(f"finetune epoch {epoch}/{opts['epochs']}: train loss {total / seen:.4g}, "
             f"val rel. L2 {val:.4g} (best {min(best, val):.4g}), "
             f"{time.perf_counter() - t0:.0f} s")
        if val < best:
            best, best_epoch, bad = val, epoch, 0
            best_state = [p.detach().clone() for p in params]
        else:
            bad += 1
        if bad >= int(opts["patience"]) or out_of_time:
            break
    with torch.no_grad():
        for p, b in zip(params, best_state, strict=True):
            p.copy_(b)
    return {"epochs": len(history["train_loss"]), "best_epoch": best_epoch, "best_val_l2": best,
            "history": history}


def finetune(
    surrogate: nn.Module,
    train: tuple[torch.Tensor, torch.Tensor | None],
    val: tuple[torch.Tensor, torch.Tensor],
    mode: str = "data",
    n_modes: str | int | Sequence[int] = "all",
    loss: str | Mapping[str, Any] | nn.Module | None = None,
    residual: VorticityResidual | None = None,
    lr: float = 1e-3,
    epochs: int = 50,
    batch_size: int = 16,
    patience: int = 5,
    max_time: float | None = None,
    seed: int = 0,
) -> tuple[nn.Module, dict[str, Any]]:
    """Fine-tune the last spectral layer of a trained surrogate, all else frozen.

    Parameters
    ----------
    surrogate
        A trained :class:`~pdeml.trainers.module.Surrogate` (normalizers + operator); it is
        copied, not modified.
    train
        ``(x, y)`` in physical units; ``y`` may be ``None`` in ``residual`` mode, where ``x``'s
        last channel is the state the outputs continue from.
    val
        Labelled ``(x, y)``: early stopping on its relative L2 error.
    mode
        ``"data"`` (fit ``y`` with ``loss``) or ``"residual"`` (no labels: minimize ``loss`` of
        ``residual(x[:, -1], prediction)`` against zero).
    n_modes
        Modes of the rebuilt layer: ``"all"`` the training grid resolves, an int, or per axis.
    loss
        Any :func:`~pdeml.trainers.losses.make_loss` spec. Default: relative L2 (``data``) or
        the absolute ``H^-1`` norm (``residual``).
    residual
        The PDE residual, e.g. :func:`residual_for_data`.
    lr, epochs, batch_size, patience, max_time, seed
        Adam's step, the epoch limit, mini-batch size, epochs without a better validation
        error before stopping, a wall-clock limit in seconds, the shuffling seed.

    Returns
    -------
    surrogate, info
        The fine-tuned copy, and ``refined_modes`` (``{layer: n_modes}``), timings
        (``time_s``, ``cache_s``), ``epochs``, ``best_epoch``, ``best_val_l2``, ``history``.
    """
    _check_inputs(mode, train, val, residual)
    if min(lr, epochs, batch_size, patience) <= 0:
        raise ValueError("lr, epochs, batch_size and patience must be positive")
    t0 = time.perf_counter()
    tuned = copy.deepcopy(surrogate).eval()
    x, y = train
    name, modes = refine_last_spectral_layer(tuned.model, n_modes,
                                             tuned.in_normalizer.encode(x[:1]))
    params = [p for p in tuned.parameters() if p.requires_grad]
    split = _Split(tuned, name)
    if loss is None:
        loss = "l2" if mode == "data" else {"name": "sobolev", "s": -1.0, "relative": False}
    data = {"z": split.encode(x), "z_val": split.encode(val[0]), "y_val": val[1],
            "target": y if mode == "data" else x[:, -1], "sizes": tuple(x.shape[2:])}
    cache_s = time.perf_counter() - t0
    opts = {"lr": lr, "epochs": epochs, "batch_size": batch_size, "patience": patience,
            "max_time": None if max_time is None else max(0.0, max_time - cache_s), "seed": seed}
    info = _optimize(split, data, _batch_loss(mode, make_loss(loss), residual), params, opts)
    for p in tuned.parameters():
        p.requires_grad_(True)
    info.update({"refined_modes": {name: list(modes)}, "mode": mode, "cache_s": cache_s,
                 "time_s": time.perf_counter() - t0})
    return tuned, info


# ----------------------------------------------------------------------------------------------
# Runs (the `pdeml finetune` verb)
# ----------------------------------------------------------------------------------------------

def _load_module(run: str | Path) -> tuple[Any, Path]:
    from pdeml.datasets.schema import DatasetError
    from pdeml.evaluate import find_checkpoint
    from pdeml.trainers.module import OperatorModule

    ckpt = find_checkpoint(run)
    try:
        module = OperatorModule.load_from_checkpoint(ckpt, map_location="cpu", weights_only=False)
    except (RuntimeError, KeyError, EOFError) as err:
        raise DatasetError(f"cannot load checkpoint {ckpt}: {str(err).splitlines()[0]}") from None
    return module, ckpt


def _tensors(dataset: Any) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*(dataset[i] for i in range(len(dataset))), strict=True)
    return torch.stack(xs), torch.stack(ys)


def _metrics(surrogate: nn.Module, dataset: Any) -> dict[str, float] | None:
    from pdeml.evaluate import evaluate_model

    return None if dataset is None else evaluate_model(surrogate, dataset)


def _residual_inputs(dm: Any, which: str) -> tuple[torch.Tensor, None]:
    """Inputs only (labels dropped) of the named splits."""
    names = which.split("+")
    if not names or any(n not in ("train", "test") for n in names):
        raise ValueError(f"residual_inputs must be train, test or train+test, got '{which}'")
    if "test" in names and dm.test_set is None:
        raise ValueError("residual_inputs includes 'test' but the run has no data.test")
    sets = [dm.train_set if n == "train" else dm.test_set for n in names]
    return torch.cat([_tensors(d)[0] for d in sets]), None


def _save(module: Any, surrogate: nn.Module, refined: dict[str, list[int]], path: Path) -> None:
    """A checkpoint ``OperatorModule.load_from_checkpoint`` (and so evaluate/export) reads."""
    import lightning as L

    from pdeml.trainers.module import OperatorModule

    hp = dict(module.hparams)
    merged = {**(hp.get("refined_modes") or {}), **refined}
    out = OperatorModule(hp["model"], loss=hp.get("loss", "l2"), lr=hp["lr"],
                         weight_decay=hp["weight_decay"], scheduler=hp["scheduler"],
                         refined_modes=merged)
    out.surrogate.load_state_dict(surrogate.state_dict())
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"state_dict": out.state_dict(), "hyper_parameters": dict(out.hparams),
                "pytorch-lightning_version": L.__version__}, tmp)
    tmp.replace(path)


def finetune_run(
    run: str | Path, out: str | Path, mode: str = "data", residual_inputs: str = "train",
    **options: Any,
) -> dict[str, Any]:
    """Fine-tune a trained run on its own data and write a new run folder ``out``.

    The data (and the training/validation split) are the run's ``config.yaml``; the validation
    split stops early; the test split (if any) is evaluated before and after. ``out`` gets
    ``checkpoints/best.ckpt`` (``pdeml evaluate`` / ``export`` read it like any run),
    ``config.yaml`` and ``metrics.json``.

    Parameters
    ----------
    run
        A run folder (or checkpoint) written by ``pdeml train`` or by this function.
    out
        New run folder; must not hold a run yet.
    mode
        ``"data"`` or ``"residual"`` (Navier-Stokes vorticity data, time steps as channels).
    residual_inputs
        Residual mode: the inputs whose residual is minimized, ``"train"``, ``"test"`` or
        ``"train+test"``. The residual needs no labels, so refining on the very inputs to be
        predicted (``test``; their labels are never read for it) is legitimate, and it is what
        a solver does; the validation split still decides when to stop.
    **options
        Passed to :func:`finetune` (``n_modes``, ``loss``, ``lr``, ``epochs``, ``batch_size``,
        ``patience``, ``max_time``, ``seed``).

    Returns
    -------
    dict
        What ``metrics.json`` holds: test/validation metrics before and after, timings,
        epochs, the refined layer.
    """
    import json

    from pdeml.config import ConfigError, dump, load_yaml
    from pdeml.datasets.datamodule import PDEDataModule

    out = Path(out)
    if (out / "checkpoints" / "best.ckpt").exists():
        raise ConfigError(f"{out} already holds a run; choose another --out")
    module, ckpt = _load_module(run)
    cfg_path = ckpt.parent.parent / "config.yaml"
    cfg = load_yaml(cfg_path) if cfg_path.exists() else {}
    if "train" not in cfg.get("data", {}):
        raise ConfigError(f"{run} has no config.yaml with data.train to fine-tune on")
    dm = PDEDataModule(**cfg["data"])
    dm.setup(None)
    if dm.val_set is None:
        raise ConfigError("fine-tuning needs a validation set for early stopping: set data.val "
                          "or data.val_fraction > 0 in the run")
    residual = residual_for_data(dm.train_path, dm.inputs, dm.outputs) if (
        mode == "residual") else None
    surrogate = module.surrogate.eval()
    x, y = _residual_inputs(dm, residual_inputs) if mode == "residual" else _tensors(dm.train_set)
    tuned, info = finetune(surrogate, (x, y), _tensors(dm.val_set), mode=mode,
                           residual=residual, **options)
    result = {"run": str(run), **{k: v for k, v in info.items() if k != "history"},
              **({"residual_inputs": residual_inputs} if mode == "residual" else {}),
              "test_before": _metrics(surrogate, dm.test_set),
              "test_after": _metrics(tuned.eval(), dm.test_set), "history": info["history"]}
    _save(module, tuned, info["refined_modes"], out / "checkpoints" / "best.ckpt")
    dump(cfg, out / "config.yaml")
    (out / "metrics.json").write_text(json.dumps(result, indent=2))
    return result
