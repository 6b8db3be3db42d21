"""Checks of a training config before anything is built, trained or written.

:func:`check_config` validates the types of every section's settings against the signatures
they go to (``L.Trainer``, :class:`OperatorModule`, the operator class, the datamodule) and
the ranges Lightning would otherwise reject halfway through a run; :func:`check_model_memory`
refuses a model whose weights and optimizer state cannot fit in memory, measured on the
``meta`` device (no memory is allocated to find out).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import lightning as L
import torch

from pdeml.checks import InputError, check_int, check_memory, check_options
from pdeml.operators.base import _REGISTRY
from pdeml.precision import precision_problem

# Lightning's ranges for its integer settings: (minimum, other allowed values).
TRAINER_RANGES: dict[str, tuple[int, tuple[int, ...]]] = {
    "max_epochs": (0, (-1,)), "min_epochs": (0, ()), "max_steps": (0, (-1,)),
    "min_steps": (0, ()), "check_val_every_n_epoch": (1, ()), "log_every_n_steps": (1, ()),
    "accumulate_grad_batches": (1, ()), "num_nodes": (1, ()), "num_sanity_val_steps": (0, (-1,)),
}


def check_config(cfg: dict[str, Any]) -> None:
    """Types and ranges of a composed training config; one-line :class:`InputError` otherwise."""
    from pdeml.datasets.datamodule import PDEDataModule
    from pdeml.trainers.module import OperatorModule

    if "seed" in cfg:
        check_int(cfg["seed"], "seed", 0)
    trainer = cfg.get("trainer") or {}
    check_options(L.Trainer.__init__, trainer, "trainer")
    for key, (low, allowed) in TRAINER_RANGES.items():
        if trainer.get(key) is not None:
            check_int(trainer[key], f"trainer.{key}", low, allowed)
    devices = trainer.get("devices")
    if isinstance(devices, int) and not isinstance(devices, bool) and devices < 1 \
            and devices != -1:
        raise InputError(f"trainer.devices must be a positive integer, -1 or 'auto', "
                         f"got {devices}")
    check_options(OperatorModule.__init__, cfg.get("module") or {}, "module")
    data = cfg.get("data") or {}
    if "online" not in data:
        check_options(PDEDataModule.__init__, data, "data")
        if data.get("batch_size") is not None:
            check_int(data["batch_size"], "data.batch_size", 1)
    model = dict(cfg.get("model") or {})
    cls = _REGISTRY.get(model.pop("name", "FNO"))
    if cls is not None:
        check_options(cls.__init__, model, "model")


def check_precision(trainer: dict[str, Any]) -> str | None:
    """Refuse a precision the run's device cannot train in; a note where it is only slow.

    The device is the one ``trainer.accelerator`` resolves to (``auto``: a GPU when there is
    one). float16 autocast on CPU is refused rather than silently turned into bf16, as
    Lightning would; bf16 on a CPU (or GPU) without bf16 arithmetic runs, with a note.

    Parameters
    ----------
    trainer
        The ``trainer`` section.

    Returns
    -------
    str or None
        The note to show, if any.
    """
    accelerator = str(trainer.get("accelerator", "auto"))
    if accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available()):
        device = "cuda"
    else:
        device = "cpu" if accelerator in ("auto", "cpu") else accelerator
    error, note = precision_problem(trainer.get("precision"), device)
    if error:
        raise InputError(error)
    return note


def check_model_memory(name: str, kwargs: dict[str, Any]) -> None:
    """Refuse a model whose parameters, gradients and two Adam moments exceed free memory.

    The model is built on the ``meta`` device, which records shapes without allocating; an
    operator that cannot be built there (it computes with its weights in ``__init__``) is
    not checked here and left to the real build.
    """
    try:
        with torch.device("meta"):
            net = _REGISTRY[name](**kwargs)
    except Exception:  # any failure: the real build reports it with its own message
        return
    n_params = sum(p.numel() for p in net.parameters())
    n_bytes = sum(p.numel() * p.element_size() for p in net.parameters())
    n_bytes += sum(b.numel() * b.element_size() for b in net.buffers())
    shown = ", ".join(f"{k}={v}" for k, v in kwargs.items() if k not in (
        "in_channels", "out_channels"))
    check_memory(4 * n_bytes, f"model {name}({shown}) with {n_params:.3g} parameters "
                 "(weights, gradients and Adam state)")


def remove_outputs(out: Path, names: list[str]) -> None:
    """Delete the named entries of a run folder (``--overwrite``); nothing else in it."""
    for name in names:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def launched_rank() -> int:
    """This process's global rank as the launcher set it (0 when not launched for DDP).

    Read from the environment (``RANK`` from torchrun/SLURM setups, ``LOCAL_RANK`` from
    Lightning's own launcher, which starts ranks > 0 as copies of the command) because it is
    needed before the Trainer exists.
    """
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID"):
        value = os.environ.get(key)
        if value not in (None, ""):
            try:
                return int(value)
            except ValueError:
                return 0
    return 0
