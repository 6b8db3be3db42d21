"""Lightning callbacks and loggers of ``pdeml train``: progress on stderr, stops on signals,
a CSV log that survives a resume, and callbacks built from config entries.
"""

from __future__ import annotations

import csv
import importlib
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch import callbacks as pl_callbacks
from lightning.pytorch.callbacks import Callback, ProgressBar, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter
from lightning.pytorch.utilities.exceptions import SIGTERMException

SIGNAL_NAMES = {signal.SIGTERM: "SIGTERM", signal.SIGINT: "SIGINT"}


class TrainingInterrupted(Exception):
    """Training stopped on a signal after saving a checkpoint (exit code ``128 + signum``)."""

    def __init__(self, signum: int, checkpoint: Path, epoch: int, step: int) -> None:
        self.signum, self.checkpoint, self.epoch, self.step = signum, checkpoint, epoch, step
        name = SIGNAL_NAMES.get(signum, f"signal {signum}")
        super().__init__(f"interrupted by {name} at epoch {epoch}, step {step}; checkpoint saved "
                         f"to {checkpoint} (continue with --resume)")


class GracefulStop(Callback):
    """On SIGTERM/SIGINT: save ``path`` at the next clean point and raise TrainingInterrupted.

    The clean point is the end of the current training batch when more batches of the epoch
    follow (Lightning resumes mid-epoch). A signal that arrives during an epoch's last batch,
    its validation or its end-of-epoch logging lets the epoch finish (validation, the epoch's
    log row, ``best.ckpt``) and stops at the start of the next one; after the final epoch it
    stops in ``on_train_end``, before any test. During the test that follows training it stops
    after the current test batch (``last.ckpt`` already holds the finished training; a resume
    runs the test). Stopping right after an epoch's last batch instead would checkpoint an
    epoch whose validation and log row never ran, and a resume would not redo them.

    A second SIGINT raises ``KeyboardInterrupt`` at once. Handlers are installed by
    :meth:`install` and put back by :meth:`restore` (signals can only be caught in the main
    thread; elsewhere nothing is installed). Lightning keeps an installed SIGTERM handler and
    adds none of its own, so its ``received_sigterm`` checks (which raise mid-epoch-end, before
    the epoch's metrics are logged) never fire.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def install(self) -> None:
        import threading

        if threading.current_thread() is not threading.main_thread():
            return
        for sig in SIGNAL_NAMES:
            self._previous[sig] = signal.signal(sig, self._handler)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _handler(self, signum: int, frame: Any) -> None:
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signum = signum

    def _stop(self, trainer: L.Trainer) -> None:
        signum = self.signum or signal.SIGTERM
        trainer.save_checkpoint(self.path)
        raise TrainingInterrupted(signum, self.path, trainer.current_epoch, trainer.global_step)

    def on_train_batch_end(self, trainer: L.Trainer, module: Any, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.signum is not None and batch_idx + 1 < trainer.num_training_batches:
            self._stop(trainer)

    def on_train_epoch_start(self, trainer: L.Trainer, *args: Any) -> None:
        if self.signum is not None:  # the previous epoch finished with its logging
            self._stop(trainer)

    def on_train_end(self, trainer: L.Trainer, *args: Any) -> None:
        if self.signum is not None:  # the last epoch finished: stop before the test
            self._stop(trainer)

    def on_test_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if self.signum is not None:  # training finished and last.ckpt holds it: no new save
            raise TrainingInterrupted(self.signum, self.path, trainer.current_epoch,
                                      trainer.global_step)

    def on_exception(self, trainer: L.Trainer, module: Any, exception: BaseException) -> None:
        # Lightning's own SIGTERM check (only when another handler set received_sigterm).
        if isinstance(exception, SIGTERMException):
            self.signum = self.signum or signal.SIGTERM
            trainer.save_checkpoint(self.path)


class LineProgress(ProgressBar):
    """One line per epoch on stderr (and at most every ``every_s`` seconds within an epoch):
    the progress report for logs and pipes, where a redrawn bar would write thousands of lines.
    A ``ProgressBar``, so Lightning adds no bar of its own.
    """

    def __init__(self, every_s: float = 30.0) -> None:
        super().__init__()
        self.every_s = every_s
        self._enabled = True
        self._t0 = self._last = 0.0

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def on_train_start(self, trainer: L.Trainer, *args: Any) -> None:
        self._t0 = self._last = time.perf_counter()

    def _line(self, trainer: L.Trainer, what: str) -> None:
        if not self._enabled:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
        shown = "  ".join(f"{k} {v:.4g}" for k, v in sorted(metrics.items()))
        total = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else "?"
        print(f"epoch {trainer.current_epoch + 1}/{total} {what} step {trainer.global_step}  "
              f"{shown}  ({time.perf_counter() - self._t0:.0f} s)", file=sys.stderr, flush=True)
        self._last = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if time.perf_counter() - self._last >= self.every_s:
            self._line(trainer, f"batch {args[-1] + 1}/{trainer.num_training_batches}")

    def on_train_epoch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self._line(trainer, "done")


def progress_callback(enabled: bool) -> Callback | None:
    """A bar on a terminal, one line per epoch otherwise, nothing when disabled.

    Lightning's bar writes to ``sys.stdout``; :func:`pdeml.trainers.fit.train` points that at
    stderr while it trains, so stdout carries only results.
    """
    from pdeml.progress import enabled as progress_enabled

    if not (enabled and progress_enabled()):
        return None
    return TQDMProgressBar() if sys.stderr.isatty() else LineProgress()


class _AppendingWriter(ExperimentWriter):
    """A CSV writer that keeps an existing ``metrics.csv`` (rows up to ``keep_step``)."""

    keep_step: int | None = None

    def _check_log_dir_exists(self) -> None:
        path = self.metrics_file_path
        if not os.path.isfile(path):
            return
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            keys, rows = list(reader.fieldnames or []), list(reader)
        if self.keep_step is not None:  # rows logged after the checkpoint are redone
            rows = [r for r in rows if not r.get("step") or int(float(r["step"])) <= self.keep_step]
        tmp = path + ".tmp"
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(tmp, path)
        self.metrics_keys = keys


class AppendingCSVLogger(CSVLogger):
    """Lightning's ``CSVLogger`` that appends to the run's ``metrics.csv`` on resume
    (Lightning's deletes it), dropping rows logged after the checkpoint being resumed."""

    def __init__(self, *args: Any, keep_step: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._keep_step = keep_step

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            writer = type("_Writer", (_AppendingWriter,), {"keep_step": self._keep_step})
            self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = writer(log_dir=self.log_dir)
        return self._experiment


def make_logger(spec: Any, out: Path, keep_step: int | None) -> Any:
    """``trainer.logger``: ``false``, ``csv`` (default), ``tensorboard`` (or a list of them)."""
    if spec in (False, None, "none", "false"):
        return False
    if isinstance(spec, list):
        return [make_logger(s, out, keep_step) for s in spec]
    if spec in (True, "csv"):
        return AppendingCSVLogger(out, name="logs", version="", keep_step=keep_step)
    if spec == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        try:
            return TensorBoardLogger(out, name="tb", version="")
        except ModuleNotFoundError:
            raise ValueError("trainer.logger=tensorboard needs the tensorboard package "
                             "(pip install tensorboard)") from None
    raise ValueError(f"trainer.logger must be false, csv or tensorboard (or a list), got {spec!r}")


def _resolve_class(path: str) -> type:
    if "." not in path:
        cls = getattr(pl_callbacks, path, None)
        if cls is None:
            names = sorted(n for n in dir(pl_callbacks) if n[0].isupper())
            raise ValueError(f"unknown callback '{path}'; Lightning's are: {', '.join(names)}")
        return cls
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise ValueError(f"cannot import callback '{path}'") from None


def make_callbacks(specs: Any) -> list[Callback]:
    """``trainer.callbacks``: a list of names, ``{class_path, init_args}`` (LightningCLI's form)
    or ``{name: EarlyStopping, monitor: val_l2, patience: 5}``."""
    if specs in (None, False):
        return []
    if not isinstance(specs, list):
        specs = [specs]
    out = []
    for spec in specs:
        if isinstance(spec, str):
            path, kwargs = spec, {}
        elif isinstance(spec, dict) and ("class_path" in spec or "name" in spec):
            rest = {k: v for k, v in spec.items() if k not in ("class_path", "name", "init_args")}
            path, kwargs = spec.get("class_path") or spec["name"], {**spec.get("init_args", {}),
                                                                     **rest}
        else:
            raise ValueError(f"trainer.callbacks entry {spec!r} needs a class_path or name")
        cls = _resolve_class(str(path))
        try:
            out.append(cls(**kwargs))
        except TypeError as err:
            raise ValueError(f"callback {path}: {err}") from None
    return out
