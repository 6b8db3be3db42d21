"""Loading a trained run: its checkpoint and its surrogate.

Below :mod:`pdeml.evaluate`, :mod:`pdeml.export` and the refiner, which all load runs
(:mod:`pdeml.evaluate` re-exports both names).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pdeml.config import load_yaml
from pdeml.datasets.schema import DatasetError
from pdeml.trainers.module import OperatorModule, Surrogate


def find_checkpoint(run: str | Path) -> Path:
    """The best checkpoint of a run directory, or the given checkpoint file.

    Parameters
    ----------
    run
        A run directory (``checkpoints/best.ckpt``, else ``checkpoints/last.ckpt``) or a
        checkpoint file.

    Returns
    -------
    pathlib.Path
        The checkpoint.

    Raises
    ------
    DatasetError
        The run has no checkpoint.
    """
    run = Path(run)
    if run.is_file():
        return run
    for name in ("best.ckpt", "last.ckpt"):
        if (run / "checkpoints" / name).exists():
            return run / "checkpoints" / name
    raise DatasetError(f"no checkpoint found in {run} (expected checkpoints/best.ckpt)")


def load_surrogate(run: str | Path) -> tuple[Surrogate, dict[str, Any]]:
    """The trained surrogate of a run (or checkpoint) and the run's config (if present).

    Parameters
    ----------
    run
        A run directory or a checkpoint file.

    Returns
    -------
    surrogate, config
        The :class:`~pdeml.trainers.module.Surrogate` in eval mode on CPU, and the run's
        ``config.yaml`` (``{}`` without one).
    """
    ckpt = find_checkpoint(run)
    try:
        module = OperatorModule.load_from_checkpoint(ckpt, map_location="cpu", weights_only=False)
    except (RuntimeError, KeyError, EOFError) as err:
        raise DatasetError(f"cannot load checkpoint {ckpt}: {str(err).splitlines()[0]}") from None
    cfg_path = ckpt.parent.parent / "config.yaml"
    cfg = load_yaml(cfg_path) if cfg_path.exists() else {}
    return module.surrogate.eval(), cfg
