"""Train an operator from a config: data -> model (sizes linked from data) -> Lightning.

The composer gives what LightningCLI gives (``pdeml train --print-config``, typed validation
with per-key help from the docstrings, ``trainer.logger`` / ``trainer.callbacks``,
``accelerator: auto``, ``in_channels``/``out_channels``/``space_dim`` linked from the data)
without LightningCLI's dump of every Trainer default into the saved config.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException

from pdeml.checks import missing_dirs, remove_made
from pdeml.config import ConfigError, load_yaml, merge, validate_section
from pdeml.datasets.datamodule import PDEDataModule, check_eval_files
from pdeml.datasets.dispatch import make_datamodule
from pdeml.operators import build, link_grid, list_operators
from pdeml.operators.base import _REGISTRY
from pdeml.precision import bf16_support
from pdeml.progress import note
from pdeml.trainers.callbacks import (
    GracefulStop,
    TrainingInterrupted,
    make_callbacks,
    make_logger,
    progress_callback,
)
from pdeml.trainers.guards import (
    check_config,
    check_model_memory,
    check_precision,
    launched_rank,
    remove_outputs,
)
from pdeml.trainers.module import OperatorModule

__all__ = ["DEFAULTS", "TrainingInterrupted", "build_model", "resolve_config", "train"]

DEFAULTS: dict[str, Any] = {
    "seed": 0,
    "data": {},
    "model": {"name": "FNO"},
    "module": {},
    "trainer": {"accelerator": "auto", "devices": 1, "max_epochs": 20, "log_every_n_steps": 10,
                "enable_model_summary": False, "logger": "csv", "callbacks": []},
}
# Settings that change the number of optimizer steps, which a saved LR schedule depends on.
SCHEDULE_KEYS = (("trainer", "max_epochs"), ("trainer", "max_steps"),
                 ("trainer", "limit_train_batches"), ("trainer", "accumulate_grad_batches"),
                 ("data", "batch_size"), ("data", "train"), ("data", "val_fraction"))
OWN_TRAINER_KEYS = ("logger", "callbacks", "default_root_dir")


def _kwargs_error(what: str, err: TypeError) -> ConfigError:
    return ConfigError(f"bad {what} settings: {err}")


def validate_config(cfg: dict[str, Any]) -> None:
    """Unknown keys and mistyped values in any section -> one-line :class:`ConfigError`."""
    if not isinstance(cfg.get("seed", 0), int):
        raise ConfigError(f"seed must be an integer, got {cfg['seed']!r}")
    data = cfg.get("data", {})
    if "online" not in data:  # online data take the stream's settings (datasets.online)
        validate_section("data", data, PDEDataModule)
    validate_section("module", cfg.get("module", {}), OperatorModule, skip=("model",))
    model = dict(cfg.get("model", {}))
    name = model.pop("name", "FNO")
    if name not in _REGISTRY:
        raise ConfigError(f"unknown operator '{name}' (model.name); available: "
                          f"{', '.join(list_operators())}")
    validate_section("model", model, _REGISTRY[name])
    validate_section("trainer", cfg.get("trainer", {}), L.Trainer, skip=OWN_TRAINER_KEYS)


def resolve_config(cfg: dict[str, Any], link: bool = False) -> dict[str, Any]:
    """Defaults merged under ``cfg`` and validated; with ``link``, the model's data-derived
    sizes are filled in from the training file when it can be read."""
    out = merge(DEFAULTS, cfg)
    validate_config(out)
    if link and "online" not in out["data"] and Path(str(out["data"].get("train"))).exists():
        dm = make_datamodule(**out["data"])
        dm.setup("fit")
        out["model"] = _linked_model(out["model"], dm)
    return out


def _linked_model(model_cfg: dict[str, Any], dm: PDEDataModule) -> dict[str, Any]:
    kwargs = dict(model_cfg)
    for key, value in (("in_channels", dm.in_channels), ("out_channels", dm.out_channels)):
        if kwargs.setdefault(key, value) != value:
            raise ConfigError(f"model.{key}={kwargs[key]} but the data has {value}")
    space_dim = getattr(dm, "space_dim", None)  # point-cloud data only
    if space_dim is not None:
        kwargs.setdefault("space_dim", space_dim)
    else:
        kwargs = link_grid(kwargs.get("name", "FNO"), kwargs, dm.spatial_shape)
    return kwargs


def build_model(model_cfg: dict[str, Any], dm: PDEDataModule) -> torch.nn.Module:
    """Build the operator, linking ``in_channels``/``out_channels`` from the data."""
    kwargs = _linked_model(model_cfg, dm)
    name = kwargs.pop("name", "FNO")
    check_model_memory(name, kwargs)  # before allocating: a huge model fails cleanly
    try:
        net = build({"name": name, "kwargs": kwargs})
    except TypeError as err:
        if "space_dim" in kwargs and "space_dim" in str(err):
            raise ConfigError(f"model '{name}' does not take point clouds; use GNOT") from None
        raise _kwargs_error(f"model '{name}'", err) from None
    n_dim, grid = getattr(net, "n_dim", None), getattr(dm, "spatial_shape", None)
    if "space_dim" not in kwargs and n_dim is not None and grid is not None \
            and n_dim != len(grid):
        shown = f" (model.n_modes={kwargs['n_modes']})" if "n_modes" in kwargs else ""
        raise ConfigError(f"model {name} is set up for {n_dim}-D grids{shown} but the data is "
                          f"{len(grid)}-D ({'x'.join(map(str, grid))})")
    return net


def _resume_config(out: Path, overrides: dict[str, Any]) -> dict[str, Any]:
    """The run's saved config with explicit ``overrides`` on top; a change of the number of
    optimizer steps is refused when the learning-rate schedule depends on it."""
    saved_path = out / "config.yaml"
    if not saved_path.exists():
        raise ConfigError(f"cannot resume: {saved_path} is missing")
    saved = load_yaml(saved_path)
    cfg = merge(saved, overrides or {})
    for key in sorted(set(saved.get("model", {})) | set(cfg.get("model", {}))):
        before, after = saved.get("model", {}).get(key), cfg.get("model", {}).get(key)
        if before != after:
            raise ConfigError(f"cannot change model.{key} ({before} -> {after}) on --resume: "
                              "the checkpoint holds weights of the saved model; start a new run")
    scheduler = cfg.get("module", {}).get("scheduler", "cosine")
    for section, key in SCHEDULE_KEYS:
        before, after = saved.get(section, {}).get(key), cfg.get(section, {}).get(key)
        if before != after and scheduler != "none":
            raise ConfigError(
                f"cannot change {section}.{key} ({before} -> {after}) on --resume: the run's "
                f"'{scheduler}' learning-rate schedule was laid out for the saved value; start a "
                "new run (or train with module.scheduler=none to extend runs)")
    return cfg


def _read_checkpoint(path: Path) -> dict[str, Any]:
    """A Lightning checkpoint's contents, or a one-line error naming the file."""
    try:
        held = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise ConfigError(f"cannot resume: {path} is not a readable checkpoint "
                          f"({' '.join(str(err).split())[:200]})") from None
    if not isinstance(held, dict) or not {"global_step", "state_dict"} <= set(held):
        raise ConfigError(f"cannot resume: {path} is not a Lightning checkpoint")
    return held


def _check_resumed_model(held: dict[str, Any], module: OperatorModule, path: Path) -> None:
    """Refuse a checkpoint whose operator is not the one the run's config builds."""
    theirs = (held.get("hyper_parameters") or {}).get("model") or {}
    ours = module.hparams["model"]
    if theirs.get("name") != ours["name"]:
        raise ConfigError(f"cannot resume: {path} holds {theirs.get('name', 'no pdeml model')}; "
                          f"this run is {ours['name']}")
    a, b = theirs.get("kwargs") or {}, ours["kwargs"]
    diff = [f"{k}={a.get(k)} (checkpoint) vs {b.get(k)} (run)" for k in sorted(set(a) | set(b))
            if a.get(k) != b.get(k)]
    if diff:
        raise ConfigError(f"cannot resume: {path} holds another {ours['name']}: {diff[0]}")
    try:
        module.load_state_dict(held["state_dict"])
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise ConfigError(f"cannot resume: the weights in {path} do not fit this run: "
                          f"{first}") from None


def _make_trainer(out: Path, trainer_cfg: dict[str, Any], has_val: bool,
                  extra: list[Any], keep_step: int | None) -> L.Trainer:
    monitor = "val_l2" if has_val else "train_loss"
    ckpt = ModelCheckpoint(dirpath=out / "checkpoints", filename="best", monitor=monitor,
                           mode="min")
    # Lightning's save_last writes last.ckpt only when `best` improved, so a run whose last
    # epochs did not improve left a stale last.ckpt (and --resume lost those epochs): the
    # latest epoch is saved by its own callback instead.
    last = ModelCheckpoint(dirpath=out / "checkpoints", filename="last", monitor=None,
                           save_top_k=1, enable_version_counter=False)
    kwargs = {k: v for k, v in trainer_cfg.items() if k not in OWN_TRAINER_KEYS}
    try:
        logger = make_logger(trainer_cfg.get("logger", "csv"), out, keep_step)
        callbacks = make_callbacks(trainer_cfg.get("callbacks")) + [ckpt, last] + extra
    except ValueError as err:
        raise ConfigError(str(err)) from None
    bar = progress_callback(kwargs.get("enable_progress_bar", True))
    kwargs["enable_progress_bar"] = bar is not None
    if bar is not None:
        callbacks.append(bar)
    try:
        return L.Trainer(default_root_dir=out, callbacks=callbacks, logger=logger, **kwargs)
    except (TypeError, ValueError) as err:
        raise _kwargs_error("trainer", err) from None


def _write_config(cfg: dict[str, Any], path: Path) -> None:
    import yaml

    tmp = path.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(cfg, sort_keys=False))
    os.replace(tmp, path)


RUN_OUTPUTS = ("checkpoints", "logs", "config.yaml", "metrics.json")


def train(cfg: dict[str, Any], out: str | Path, resume: bool = False,
          overwrite: bool = False) -> dict[str, Any]:
    """Train from a composed config; artifacts go to ``out``.

    ``out`` receives ``config.yaml`` (resolved: defaults, linked sizes, model arguments),
    ``checkpoints/{best,last}.ckpt``, ``logs/metrics.csv`` and ``metrics.json``. Progress goes to
    stderr (a bar on a terminal, a line per epoch otherwise). SIGTERM/SIGINT save
    ``checkpoints/last.ckpt`` after the current batch (an epoch's last batch: after that epoch's
    validation and logging) and raise :class:`TrainingInterrupted`.

    Parameters
    ----------
    cfg
        Sections ``seed``, ``data``, ``model``, ``module``, ``trainer``. With ``resume`` only
        the settings to change (usually none): the run's saved ``config.yaml`` is the base.
    out
        Run folder.
    resume
        Continue from ``out/checkpoints/last.ckpt`` with the run's own config; its learning-rate
        schedule continues and ``logs/metrics.csv`` is appended to.
    overwrite
        Replace a run already in ``out`` (its checkpoints, logs, config and metrics, nothing
        else), once every setting was accepted. Without it (and without ``resume``) a folder
        that holds any of these is refused.

    Returns
    -------
    dict
        Test metrics (when a test file is configured) and the checkpoint path.
    """
    out = Path(out)
    last = out / "checkpoints" / "last.ckpt"
    keep_step = None
    if resume:
        if not last.exists():
            raise ConfigError(f"nothing to resume: {last} does not exist (drop --resume to start "
                              "a new run)")
        cfg = _resume_config(out, cfg)
        held = _read_checkpoint(last)
        keep_step = int(held["global_step"])
    # Lightning's DDP launcher re-runs this command for ranks > 0 after rank 0 created the
    # folder: only the first process judges what was there before.
    first = launched_rank() == 0
    existing = [] if resume or not first else [n for n in RUN_OUTPUTS if (out / n).exists()]
    if existing and not overwrite:
        raise ConfigError(f"{out} already holds a run ({', '.join(existing)}); pass --resume "
                          "to continue it, --overwrite to replace it, or choose another --out")
    cfg = resolve_config(cfg)  # defaults, then typed validation with per-key help
    trainer_cfg = {k: v for k, v in cfg["trainer"].items()
                   if k not in OWN_TRAINER_KEYS}  # logger/callbacks: pdeml's own spellings
    check_config({**cfg, "trainer": trainer_cfg})  # ranges, devices, model memory bounds
    precision_note = check_precision(trainer_cfg)  # float16 on CPU: refused here, not later
    if not {"train", "online"} & set(cfg["data"]):
        raise ConfigError("config needs data.train (the training HDF5 file) or data.online")
    L.seed_everything(int(cfg["seed"]), workers=True, verbose=False)
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    try:
        dm = make_datamodule(**cfg["data"])
    except TypeError as err:
        raise _kwargs_error("data", err) from None
    dm.setup("fit")
    check_eval_files(dm)  # a wrong data.test is found now, not after the whole training
    net = build_model(cfg["model"], dm)
    try:
        module = OperatorModule(net, **cfg["module"])
    except TypeError as err:
        raise _kwargs_error("module", err) from None
    if resume:  # before the logger trims metrics.csv to the checkpoint's step
        _check_resumed_model(held, module, last)
    stop = GracefulStop(last)
    trainer = _make_trainer(out, cfg["trainer"], dm.val_set is not None, [stop], keep_step)
    remove_outputs(out, existing)
    made = missing_dirs(out)
    created = [n for n in RUN_OUTPUTS if not (out / n).exists()]
    out.mkdir(parents=True, exist_ok=True)  # only once every setting was accepted
    if first:
        _write_config({**cfg, "model": net.config["kwargs"] | {"name": net.config["name"]}},
                      out / "config.yaml")
    if precision_note and first:
        note(f"pdeml: note: {precision_note}")
    stop.install()
    try:
        return _fit_and_test(trainer, module, dm, stop, out, resume)
    except Exception:
        # A new run that failed before its first checkpoint has nothing to resume: remove
        # what this call wrote, so that the corrected command is not refused.
        if not resume and first and not last.exists():
            remove_outputs(out, created)
            remove_made(made, tree=False)
        raise
    finally:
        stop.restore()


def _training_cost(trainer: L.Trainer, module: OperatorModule, wall: float, cpu: float,
                   resume: bool) -> dict[str, Any]:
    """What ``trainer.fit`` cost in this process (a resumed run: this invocation's part)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"train_wall_seconds": round(time.perf_counter() - wall, 3),
            "train_cpu_seconds": round(time.process_time() - cpu, 3),
            "threads": torch.get_num_threads(), "device": str(module.device),
            "precision": str(trainer.precision), "bf16_native": _bf16_native(module),
            "peak_rss_mib": round(peak, 1),
            "resumed": resume, "global_step": int(trainer.global_step)}


def _bf16_native(module: OperatorModule) -> bool:
    """Whether the training device has bf16 arithmetic (a bf16 run there can be faster)."""
    device = module.device.type
    return bool(device in ("cpu", "cuda") and bf16_support(device)["native"])


def _fit_and_test(trainer: L.Trainer, module: OperatorModule, dm: Any, stop: GracefulStop,
                  out: Path, resume: bool) -> dict[str, Any]:
    """``trainer.fit``, then the test on the best checkpoint; writes ``metrics.json``."""
    last = out / "checkpoints" / "last.ckpt"
    # Lightning's bars write to sys.stdout: stdout is kept for results
    with contextlib.redirect_stdout(sys.stderr):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            trainer.fit(module, dm, ckpt_path=last if resume else None)
        except SIGTERMException:  # Lightning's own check (a SystemExit: exit code 0)
            raise TrainingInterrupted(stop.signum or signal.SIGTERM, last,
                                      trainer.current_epoch, trainer.global_step) from None
        result: dict[str, Any] = {"checkpoint": str(out / "checkpoints" / "best.ckpt"),
                                  "cost": _training_cost(trainer, module, wall, cpu, resume)}
        if hasattr(dm, "generation_cost"):  # online: what the stream's solvers spent
            result["cost"]["generation"] = dm.generation_cost()
        if dm.test_path:
            metrics = trainer.test(module, dm, ckpt_path="best", verbose=False)[0]
            result.update({k: float(v) for k, v in metrics.items()})
    if trainer.is_global_zero:  # one metrics.json; the values are reduced over the ranks
        (out / "metrics.json").write_text(json.dumps(result, indent=2))
    return result
