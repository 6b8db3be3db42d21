"""The closed loop, online: generator workers solve with the surrogate being trained.

With ``surrogate_every: K`` in a run's ``online:`` data settings, every ``K`` optimizer steps
the trainer sends the current surrogate (the ``Surrogate`` module of the run: normalize,
operator, de-normalize, so physical fields in and out) to the Dask generator workers, and the
tasks submitted after that solve their systems starting from its prediction
(:meth:`pdeml.solvers.problems.linear.LinearProblem.use_surrogate` with ``use="guess"``; see
:func:`pdeml.solvers.hybrid.solve_with_surrogate`). The online run trains on the solution
fields, so its own surrogate is exactly a warm-start model, and it improves as it trains.

How the weights travel: the first publication scatters a CPU copy of the whole module (its
structure, built once per worker thread) to every worker; each later one scatters only its
``state_dict`` (CPU tensors), which the workers load into the module they built. The Dask
futures ride along with each generator task, so a worker that joins later (a restarted or
replacement worker) fetches them when it first needs them. A worker wraps the module in a
:class:`~pdeml.solvers.hybrid.FieldSurrogate` with one torch thread (it shares the machine
with the trainer). A task reports which version it used and a digest of the weights it loaded
(``cost["surrogate"]``), which the trainer compares with the digest of what it published.

What stays and what changes (determinism and resume):

- every sample still satisfies its problem's criterion ``norm(b - A u) <= rtol * norm(b)`` on
  the true residual (a system that misses it falls back to sparse LU, as without a surrogate);
  a bad early surrogate costs its inference time only, since the start is the better, by
  residual, of its prediction and the previous solution of the sorted sequence (or zero);
- the *iterates* differ: a sample's values agree with the cold-start solve (and with a file
  ``pdeml generate`` writes) to within the solver tolerance, not bitwise, and which version of
  the surrogate a task sees depends on timing. A ``fifo`` run with the closed loop on is
  therefore reproducible in *which* samples it draws and in what order, not in their last
  bits; a tee file is no longer bitwise equal to a generated file;
- resume: the checkpoint restores the stream position as before; the surrogate is published
  again at the first step of the resumed run (versions count again from 1). Samples solved
  after the resume are as accurate but not bitwise equal to those of an uninterrupted run.

Only linear problems (those with ``use_surrogate``), an iterative solver (``gcrodr``,
``gmres`` or ``amg``: a warm start cannot speed up sparse LU), the stored grid equal to the
solver grid, plain variable names as ``inputs`` and every solution field among ``outputs``,
and no DataLoader workers (their streams live in other processes).

Throughput: :class:`GenerationMeter` records every delivered task (samples, worker seconds,
Krylov iterations, surrogate inference seconds, the seconds the feeder waited on a full
buffer) for every online run, closed loop or not; :class:`GenerationMonitor` logs a window
every ``log_every_n_steps`` steps (``gen_samples_per_s``, ``gen_iterations_per_sample``,
``gen_surrogate_ms_per_sample`` in ``logs/metrics.csv`` and the progress line), and the run's
``metrics.json`` holds the windows and the four quarters of the run by wall time
(``cost.generation.throughput``).
"""

from __future__ import annotations

import copy
import hashlib
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch

from pdeml.datasets.reader import parse_selector
from pdeml.datasets.schema import DatasetError
from pdeml.datasets.stream import compute_timed
from pdeml.solvers.problems.base import Problem
from pdeml.solvers.problems.linear import LinearProblem

ITERATIVE = ("gcrodr", "gmres", "amg")


# ---------------------------------------------------------------------------------------------
# Settings
# ---------------------------------------------------------------------------------------------

def make_closed_loop(problem: Problem, every: Any, smooth: Any, inputs: Sequence[str],
                     outputs: Sequence[str], num_workers: int) -> ClosedLoop | None:
    """The :class:`ClosedLoop` of an online run (``None`` when ``every`` is 0), or a one-line
    ``ValueError`` naming the setting that does not fit. ``smooth`` ``None``: 2 symmetric
    Gauss-Seidel sweeps on each prediction."""
    for name, value in (("surrogate_every", every), ("surrogate_smooth", smooth)):
        if value is None and name == "surrogate_smooth":
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) \
                or int(value) != value or value < 0:
            raise ValueError(f"online {name} must be an integer >= 0, got {value!r}")
    if not every:
        return None
    what = problem.name or type(problem).__name__
    if not isinstance(problem, LinearProblem):
        raise ValueError(f"online surrogate_every needs a linear problem (darcy, poisson, "
                         f"helmholtz, heat, darcy3d, helmholtz3d), not {what}")
    if problem.solver not in ITERATIVE:
        raise ValueError(f"online surrogate_every warm-starts an iterative solver; set "
                         f"{what}'s solver to one of {', '.join(ITERATIVE)} (it is "
                         f"'{problem.solver}'; sparse LU gains nothing from a start)")
    if getattr(problem, "stride", 1) != 1:
        raise ValueError("online surrogate_every needs the stored grid to be the solver grid "
                         "(solver_resolution = resolution)")
    plain = [parse_selector(s)[1] is None for s in [*inputs, *outputs]]
    missing = [v for v in problem.output_vars if v not in outputs]
    if not all(plain) or missing or not set(inputs) <= set(problem.input_vars):
        raise ValueError(f"online surrogate_every needs plain input names among "
                         f"{list(problem.input_vars)} and outputs with {list(problem.output_vars)}"
                         f", got inputs {list(inputs)} and outputs {list(outputs)}")
    if smooth is None:
        smooth = 2
    if num_workers:
        raise ValueError("online surrogate_every needs num_workers=0 (DataLoader workers run "
                         "their streams in other processes)")
    return ClosedLoop(int(every), list(inputs), list(outputs), smooth=int(smooth))


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """A short digest of a state dict's names and values (the same on trainer and worker)."""
    h = hashlib.blake2b(digest_size=8)
    for name in sorted(state):
        t = state[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Trainer side
# ---------------------------------------------------------------------------------------------

class ClosedLoop:
    """The latest published surrogate, as Dask futures that generator tasks carry.

    Parameters
    ----------
    every
        Publish every ``every`` optimizer steps.
    inputs, outputs
        The surrogate's input and output variable names (the run's).
    smooth
        Symmetric Gauss-Seidel sweeps on the prediction before it competes as a start (a raw
        prediction's high-frequency error gives it a residual of about ``norm(b)``, see
        :func:`pdeml.solvers.warmstart.smooth_guess`).
    """

    def __init__(self, every: int, inputs: Sequence[str], outputs: Sequence[str],
                 smooth: int = 2) -> None:
        self.every, self.smooth = int(every), int(smooth)
        self.inputs, self.outputs = list(inputs), list(outputs)
        self.version, self.step = 0, -1
        self.published: list[dict[str, Any]] = []  # version, step, digest, seconds
        self._lock = threading.Lock()
        self._payload: dict[str, Any] | None = None
        self._module_id: str | None = None
        self._module: Any = None  # future of the module (structure), scattered once
        self._signature: tuple | None = None

    def publish(self, client: Any, module: torch.nn.Module, step: int) -> int:
        """Send ``module``'s current weights to the workers; the new version number."""
        t0 = time.perf_counter()
        state = {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}
        signature = tuple((k, tuple(v.shape), str(v.dtype)) for k, v in state.items())
        if signature != self._signature:  # first time (or another model): the structure
            skeleton = copy.deepcopy(module).to("cpu").eval()
            self._module = client.scatter([skeleton], broadcast=True, hash=False)[0]
            self._module_id, self._signature = uuid.uuid4().hex, signature
        state_future = client.scatter([state], broadcast=True, hash=False)[0]
        digest = state_digest(state)
        with self._lock:
            self.version += 1
            self.step = int(step)
            self._payload = {"id": self._module_id, "module": self._module,
                             "state": state_future, "version": self.version, "step": self.step,
                             "digest": digest, "smooth": self.smooth,
                             "inputs": self.inputs, "outputs": self.outputs}
            self.published.append({"version": self.version, "step": self.step,
                                   "digest": digest,
                                   "seconds": round(time.perf_counter() - t0, 4)})
            return self.version

    def task(self) -> tuple[Callable[..., Any], tuple]:
        """What the next generator task runs: the function and its extra arguments."""
        with self._lock:
            payload = self._payload
        if payload is None:  # nothing published yet: the plain solve
            return compute_timed, ()
        return compute_with_surrogate, (payload,)

    def close(self) -> None:
        """Drop the futures (the workers then release the weights)."""
        with self._lock:
            self._payload = self._module = None
            self._signature = None


# ---------------------------------------------------------------------------------------------
# Worker side
# ---------------------------------------------------------------------------------------------

_WORKER = threading.local()  # per worker thread: id, module, version, digest


class _Timed:
    """A module call that adds its seconds up (the surrogate's inference time)."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module, self.seconds, self.calls = module, 0.0, 0

    def eval(self) -> _Timed:
        self.module.eval()
        return self

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        t0 = time.perf_counter()
        try:
            return self.module(x)
        finally:
            self.seconds += time.perf_counter() - t0
            self.calls += 1


def worker_surrogate(payload: dict[str, Any]) -> tuple[torch.nn.Module, dict[str, Any]]:
    """This worker thread's module with the payload's weights: built once per published
    structure, then only loaded when the version changes. Also what was done."""
    rebuilt = getattr(_WORKER, "id", None) != payload["id"]
    if rebuilt:
        _WORKER.module = copy.deepcopy(payload["module"]).eval()
        _WORKER.id, _WORKER.version, _WORKER.digest = payload["id"], None, None
    loaded = _WORKER.version != payload["version"]
    if loaded:
        _WORKER.module.load_state_dict(payload["state"])
        _WORKER.version = payload["version"]
        _WORKER.digest = state_digest(_WORKER.module.state_dict())
    return _WORKER.module, {"version": _WORKER.version, "step": payload["step"],
                            "digest": _WORKER.digest, "rebuilt": rebuilt, "loaded": loaded}


def compute_with_surrogate(problem: LinearProblem, seed: int, split: str, indices: list[int],
                           payload: dict[str, Any]
                           ) -> tuple[dict[str, np.ndarray], float, dict[str, Any]]:
    """:func:`~pdeml.datasets.stream.compute_timed` with the payload's surrogate as the start
    of every solve; the cost record gains ``surrogate`` (version, digest, inference seconds)."""
    from pdeml.solvers.hybrid import FieldSurrogate

    module, info = worker_surrogate(payload)
    timed = _Timed(module)
    problem.use_surrogate(FieldSurrogate(timed, payload["inputs"], payload["outputs"],
                                         threads=1), use="guess", smooth=payload["smooth"])
    try:
        out, seconds, cost = compute_timed(problem, seed, split, indices)
    finally:
        problem.use_surrogate(None)
    cost["surrogate"] = {**info, "seconds": round(timed.seconds, 6), "calls": timed.calls}
    return out, seconds, cost


# ---------------------------------------------------------------------------------------------
# Throughput
# ---------------------------------------------------------------------------------------------

# One delivered task: time, samples, worker seconds, iterations (and samples that report
# them), surrogate seconds, samples solved with a surrogate, its version, seconds blocked.
_FIELDS = ("t", "n", "worker_s", "iters", "n_iters", "sur_s", "n_sur", "version", "blocked_s")


class GenerationMeter:
    """Samples delivered by a stream over time, with their solver and surrogate costs.

    :meth:`add` is the feeder's ``on_task`` hook. ``samples_per_s`` counts samples entering
    the buffer per wall second (the generation rate while the feeder is not blocked on a full
    buffer, see ``blocked_seconds``); ``worker_seconds_per_sample`` is the Dask workers'
    compute time per sample, whatever the buffer does.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.t0 = clock()
        self.events: list[tuple] = []
        self.windows: list[dict[str, Any]] = []
        self.versions: dict[int, str] = {}  # surrogate version -> digest the workers loaded
        self._lock = threading.Lock()
        self._mark = (0.0, 0)  # (seconds since t0, events before the window)

    def add(self, records: Sequence[dict[str, Any]], cost: dict[str, Any],
            blocked: float) -> None:
        """A task's ``records`` entered the buffer (``cost``: the task's whole record)."""
        n = len(records)
        if not n:
            return
        iters = [r["iterations"] for r in records if r.get("iterations") is not None]
        sur = cost.get("surrogate")
        share = n / max(len(cost.get("samples", records)), 1)
        event = (self.clock() - self.t0, n, sum(r.get("wall_seconds") or 0.0 for r in records),
                 sum(iters), len(iters), share * sur["seconds"] if sur else 0.0,
                 n if sur else 0, sur["version"] if sur else 0, blocked)
        with self._lock:
            self.events.append(event)
            if sur:
                self.versions[sur["version"]] = sur["digest"]

    def window(self, step: int) -> dict[str, Any]:
        """Close the window since the last call (or the start) at optimizer step ``step``."""
        now = self.clock() - self.t0
        with self._lock:
            since, first = self._mark
            events = self.events[first:]
            self._mark = (now, len(self.events))
        row = {"step": int(step), "t": round(now, 3), **_rates(events, now - since)}
        self.windows.append(row)
        return row

    def quarters(self) -> list[dict[str, Any]] | None:
        """The four quarters of the span from the first to the last delivery, by wall time
        (a quarter counts the samples delivered after its start up to its end)."""
        with self._lock:
            events = list(self.events)
        if len(events) < 2 or events[-1][0] <= events[0][0]:
            return None
        t_a, t_b = events[0][0], events[-1][0]
        edges = [t_a + (t_b - t_a) * q / 4 for q in range(5)]
        return [{"from_s": round(edges[q], 3), "to_s": round(edges[q + 1], 3),
                 **_rates([e for e in events if edges[q] < e[0] <= edges[q + 1]],
                          edges[q + 1] - edges[q])} for q in range(4)]

    def summary(self) -> dict[str, Any]:
        """Windows, quarters and the last quarter's rate over the first's."""
        quarters = self.quarters()
        ratio = None
        if quarters and quarters[0]["samples_per_s"]:
            ratio = round(quarters[3]["samples_per_s"] / quarters[0]["samples_per_s"], 4)
        with self._lock:
            total = _rates(self.events, self.events[-1][0] if self.events else 0.0)
        return {"total": total, "quarters": quarters, "last_over_first_quarter": ratio,
                "windows": list(self.windows),
                "surrogate_versions": {str(k): v for k, v in sorted(self.versions.items())}}


def _rates(events: Sequence[tuple], seconds: float) -> dict[str, Any]:
    """Rates of a run of delivery events over ``seconds`` of wall time."""
    col = {f: [e[i] for e in events] for i, f in enumerate(_FIELDS)}
    n, n_it = sum(col["n"]), sum(col["n_iters"])

    def per(total: float, count: int, digits: int = 6) -> float | None:
        return round(total / count, digits) if count else None

    return {"samples": n, "seconds": round(seconds, 3),
            "samples_per_s": per(n, seconds, 4) if seconds > 0 else None,
            "worker_seconds_per_sample": per(sum(col["worker_s"]), n),
            "iterations_per_sample": per(sum(col["iters"]), n_it, 3),
            "surrogate_seconds_per_sample": per(sum(col["sur_s"]), n),
            "surrogate_share": per(sum(col["n_sur"]), n, 4),
            "surrogate_version": max(col["version"], default=0),
            "blocked_seconds": round(sum(col["blocked_s"]), 3)}


# ---------------------------------------------------------------------------------------------
# The Lightning side
# ---------------------------------------------------------------------------------------------

class GenerationMonitor(L.Callback):
    """Publishes the surrogate every ``surrogate_every`` steps and logs generation windows.

    :class:`~pdeml.datasets.online.OnlineDataModule` adds one to its Trainer in
    ``setup("fit")``. ``every`` is the window in optimizer steps (default: the Trainer's
    ``log_every_n_steps``). The published module is the LightningModule's ``surrogate``
    (pdeml's :class:`~pdeml.trainers.module.OperatorModule` has one), which must map physical
    input fields to physical output fields.
    """

    def __init__(self, datamodule: Any, every: int | None = None) -> None:
        self.dm, self.every = datamodule, every
        self._last_window = -1

    def _meter(self) -> GenerationMeter | None:
        return getattr(self.dm.train_set, "meter", None)

    def _publish(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        surrogate = getattr(module, "surrogate", None)
        if not isinstance(surrogate, torch.nn.Module):
            raise DatasetError("online surrogate_every needs a LightningModule with a "
                               "`surrogate` module (pdeml's OperatorModule)")
        self.dm.closed_loop.publish(self.dm.client, surrogate, trainer.global_step)

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.dm.closed_loop is not None and trainer.global_step > 0:
            self._publish(trainer, module)  # a resumed run: its weights are worth using now
        self._last_window = trainer.global_step

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        step, loop = trainer.global_step, self.dm.closed_loop
        final = 0 < trainer.max_steps <= step  # no generation left to speed up
        if loop is not None and step > 0 and step % loop.every == 0 and loop.step != step \
                and not final:
            self._publish(trainer, module)
        every = self.every or max(1, int(trainer.log_every_n_steps))
        meter = self._meter()
        if meter is None or step <= self._last_window or step % every:
            return
        self._last_window = step
        row = meter.window(step)
        values = {"gen_samples_per_s": row["samples_per_s"],
                  "gen_iterations_per_sample": row["iterations_per_sample"],
                  "gen_surrogate_ms_per_sample": (None if row["surrogate_seconds_per_sample"]
                                                  is None else
                                                  1e3 * row["surrogate_seconds_per_sample"])}
        for name, value in values.items():
            if value is not None:
                module.log(name, float(value), on_step=True, on_epoch=False, batch_size=1,
                           prog_bar=name == "gen_samples_per_s")

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        meter = self._meter()
        if meter is not None and trainer.global_step > self._last_window:
            meter.window(trainer.global_step)  # the last, partial window (not logged)
            self._last_window = trainer.global_step


def attach_monitor(trainer: L.Trainer, datamodule: Any) -> None:
    """Add a :class:`GenerationMonitor` for ``datamodule`` unless the Trainer has one."""
    if not any(isinstance(cb, GenerationMonitor) and cb.dm is datamodule
               for cb in trainer.callbacks):
        trainer.callbacks.append(GenerationMonitor(datamodule))


class DataWaitMonitor(L.Callback):
    """Time the training loop waits for batches (between a step's end and the next start).

    ``wait`` and ``compute`` are seconds summed over training batches; ``fraction`` is the
    share of waiting. Validation is not counted. Works for any DataLoader (offline too).
    """

    def __init__(self) -> None:
        self.wait = self.compute = 0.0
        self.n_batches = 0
        self._mark: float | None = None
        self._t0 = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        import time

        self._mark = time.perf_counter()

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        import time

        self._t0 = time.perf_counter()
        if self._mark is not None:
            self.wait += self._t0 - self._mark

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        import time

        self._mark = time.perf_counter()
        self.compute += self._mark - self._t0
        self.n_batches += 1

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._mark = None

    @property
    def fraction(self) -> float:
        """Share of the training loop's time spent waiting for data."""
        total = self.wait + self.compute
        return self.wait / total if total else 0.0
