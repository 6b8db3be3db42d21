"""Problems that fail on purpose, for the fault-tolerance tests of online streaming.

Importable by Dask workers: they are spawned with the test process's ``sys.path``, which
holds this folder (pytest puts a rootdir conftest's folder there).
"""

from __future__ import annotations

import os
import time
from typing import Any, ClassVar

import numpy as np

from pdeml.solvers.problems import DarcyFlow


class FaultyDarcy(DarcyFlow):
    """Darcy whose next task fails once after the file ``trigger`` appears (or always).

    ``mode``: ``raise`` (an exception), ``hang`` (sleeps for ten minutes), ``exit`` (the
    worker process dies), ``always`` (every task raises). Renaming the trigger file is atomic,
    so exactly one task across all workers claims the fault.
    """

    name: ClassVar[str] = ""  # not registered: make_problem("darcy") stays the real one

    def __init__(self, trigger: str, mode: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.trigger, self.mode = trigger, mode

    def _maybe_fault(self) -> None:
        if self.mode == "always":
            raise RuntimeError("simulated solver crash")
        try:
            os.rename(self.trigger, self.trigger + ".claimed")
        except FileNotFoundError:
            return
        if self.mode == "raise":
            raise RuntimeError("simulated solver crash")
        if self.mode == "hang":
            time.sleep(600)
        if self.mode == "exit":
            os._exit(1)

    def sample_batch(self, rngs: list[np.random.Generator]) -> list[dict[str, np.ndarray]]:
        self._maybe_fault()
        return super().sample_batch(rngs)

class SlowDarcy(DarcyFlow):
    """Darcy that takes at least ``seconds`` per sample (an expensive solver, for chunk sizing)."""

    name: ClassVar[str] = ""

    def __init__(self, seconds: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.seconds = seconds

    def sample_batch(self, rngs: list[np.random.Generator]) -> list[dict[str, np.ndarray]]:
        time.sleep(self.seconds * len(rngs))
        return super().sample_batch(rngs)
