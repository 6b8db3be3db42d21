"""Train an operator from a config: data -> model (sizes linked from data) -> Lightning."""

from __future__ import annotations

import inspect
import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from pdeml.config import ConfigError, dump
from pdeml.datasets.datamodule import PDEDataModule, make_datamodule
from pdeml.operators import build
from pdeml.trainers.guards import (
    check_config,
    check_model_memory,
    launched_rank,
    remove_outputs,
)
from pdeml.trainers.module import OperatorModule


def _kwargs_error(what: str, err: TypeError) -> ConfigError:
    return ConfigError(f"bad {what} settings: {err}")


def build_model(model_cfg: dict[str, Any], dm: PDEDataModule) -> torch.nn.Module:
    """Build the operator, linking ``in_channels``/``out_channels`` from the data."""
    kwargs = dict(model_cfg)
    name = kwargs.pop("name", "FNO")
    for key, value in (("in_channels", dm.in_channels), ("out_channels", dm.out_channels)):
        if kwargs.setdefault(key, value) != value:
            raise ConfigError(f"model.{key}={kwargs[key]} but the data has {value}")
    space_dim = getattr(dm, "space_dim", None)  # point-cloud data only
    if space_dim is not None:
        kwargs.setdefault("space_dim", space_dim)
    check_model_memory(name, kwargs)  # before allocating: a huge model fails cleanly
    try:
        return build({"name": name, "kwargs": kwargs})
    except TypeError as err:
        if space_dim is not None and "space_dim" in str(err):
            raise ConfigError(f"model '{name}' does not take point clouds; use GNOT") from None
        raise _kwargs_error(f"model '{name}'", err) from None


def _make_trainer(out: Path, trainer_cfg: dict[str, Any], has_val: bool) -> L.Trainer:
    monitor = "val_l2" if has_val else "train_loss"
    ckpt = ModelCheckpoint(dirpath=out / "checkpoints", filename="best", monitor=monitor,
                           mode="min", save_last=True)
    kwargs = {"accelerator": "cpu", "devices": 1, "max_epochs": 20, "log_every_n_steps": 10,
              "enable_model_summary": False, **trainer_cfg}
    allowed = inspect.signature(L.Trainer.__init__).parameters
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        raise ConfigError(f"unknown trainer setting(s): {', '.join(unknown)}")
    return L.Trainer(default_root_dir=out, callbacks=[ckpt],
                     logger=CSVLogger(out, name="logs", version=""), **kwargs)


RUN_OUTPUTS = ("checkpoints", "logs", "config.yaml", "metrics.json")


def train(cfg: dict[str, Any], out: str | Path, resume: bool = False,
          overwrite: bool = False) -> dict[str, Any]:
    """Train from a composed config; artifacts go to ``out``.

    ``out`` receives ``config.yaml`` (resolved), ``checkpoints/{best,last}.ckpt``, ``logs/``
    and ``metrics.json``. With ``resume``, training continues from ``checkpoints/last.ckpt``.
    A folder that already holds any of these is refused unless ``resume`` or ``overwrite``
    (which deletes those entries, and only those, once every setting was accepted).

    Returns
    -------
    dict
        Test metrics (when a test file is configured) and the checkpoint path.
    """
    out = Path(out)
    if not {"train", "online"} & set(cfg.get("data", {})):
        raise ConfigError("config needs data.train (the training HDF5 file) or data.online")
    last = out / "checkpoints" / "last.ckpt"
    # Lightning's DDP launcher re-runs this command for ranks > 0 after rank 0 created the
    # folder: only the first process judges what was there before.
    first = launched_rank() == 0
    existing = [] if resume or not first else [n for n in RUN_OUTPUTS if (out / n).exists()]
    if existing and not overwrite:
        raise ConfigError(f"{out} already holds a run ({', '.join(existing)}); pass --resume "
                          "to continue it, --overwrite to replace it, or choose another --out")
    check_config(cfg)
    L.seed_everything(int(cfg.get("seed", 0)), workers=True, verbose=False)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    try:
        dm = make_datamodule(**cfg["data"])
    except TypeError as err:
        raise _kwargs_error("data", err) from None
    dm.setup("fit")
    net = build_model(cfg.get("model", {}), dm)
    try:
        module = OperatorModule(net, **cfg.get("module", {}))
    except TypeError as err:
        raise _kwargs_error("module", err) from None
    trainer = _make_trainer(out, cfg.get("trainer", {}), dm.val_set is not None)
    remove_outputs(out, existing)
    out.mkdir(parents=True, exist_ok=True)  # only once every setting was accepted
    resolved = {**cfg, "model": net.config["kwargs"] | {"name": net.config["name"]}}
    if first:
        dump(resolved, out / "config.yaml")
    trainer.fit(module, dm, ckpt_path=last if resume and last.exists() else None)
    result: dict[str, Any] = {"checkpoint": str(out / "checkpoints" / "best.ckpt")}
    if dm.test_path:
        metrics = trainer.test(module, dm, ckpt_path="best", verbose=False)[0]
        result.update({k: float(v) for k, v in metrics.items()})
    if trainer.is_global_zero:  # one metrics.json; the values are reduced over the ranks
        (out / "metrics.json").write_text(json.dumps(result, indent=2))
    return result
