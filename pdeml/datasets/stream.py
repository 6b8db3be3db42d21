"""Online buffers: simulations stream from Dask tasks into training with no disk in between.

A :class:`StreamFeeder` (a thread in the trainer process) keeps a bounded number of Dask tasks
in flight; each task draws and solves a few samples (:func:`pdeml.datasets.writer.
compute_samples`: sample ``i`` comes from ``sample_rng(seed, split, i)``, exactly as in a
written file). With ``chunk="auto"`` the number of samples per task follows the compute times
the workers report (a task runs ~0.25 s), since each task costs milliseconds of scheduling
and transfer. Results enter a :class:`SampleBuffer` in submission order, which the training
loop drains:

- ``fifo``: first in, first out; every sample is used once, in stream order;
- ``firo``: first in, random out (the Melissa "FIRO" buffer); every sample is used once, drawn
  at random from a pool of at least ``watermark`` samples;
- ``reservoir``: draws at random *without* removal, so samples are reused while generation
  lags; a new sample replaces a random one that was already drawn (never an unseen one).

Training starts once the buffer holds ``watermark`` samples; ``firo`` and ``reservoir`` keep
that floor while the stream lives (a well-mixed pool), ``fifo`` only at the start.

Reproducibility: a ``fifo`` run is bitwise reproducible (and resumable exactly): the feeder
delivers tasks in submission order whatever order Dask finishes them in, so the trainer's
batch ``k`` is always samples ``k*B .. k*B+B-1``. ``firo`` and ``reservoir`` draws use a seeded
RNG, but *which* samples sit in the pool when a draw happens depends on how far generation has
got by then, i.e. on the relative speed of the generators and the trainer (machine load,
worker count, a lost worker): two runs with the same seed draw different batches. A
checkpoint restores pool and RNG exactly, but the arrivals after it are timed by the machine
again. Making them reproducible would need the draw to wait for a fixed arrival count, i.e.
``fifo``'s lock-step, which is what the random buffers exist to avoid.

How this relates to Melissa's buffers: see :mod:`pdeml.datasets.online`.

Faults: a task that raises is retried by Dask (``retries``); a killed worker's tasks are
resubmitted at once when a :class:`~pdeml.datasets.supervisor.WorkerSupervisor` reports the
loss (:meth:`StreamFeeder.notify_lost`; without one, Dask reschedules them); a task that
runs longer than ``task_timeout`` is cancelled, its worker is restarted (its thread cannot
be interrupted) and the task resubmitted; after ``max_attempts`` failures of one task the
stream fails and :meth:`SampleBuffer.get` raises :class:`StreamError` in the trainer, which
also happens when no sample arrives within ``data_timeout``: training
stops with a message, never hangs. The feeder's position (next index, submitted but
undelivered indices) and the buffer's contents are one consistent snapshot
(:meth:`StreamFeeder.state_dict`), which a checkpoint stores so that a resumed run continues
the same stream.

Costs: each task returns its samples' cost records with their arrays (wall and CPU seconds in
the worker, method, iterations: :mod:`pdeml.datasets.costs`). The feeder counts them as it
delivers (:attr:`StreamFeeder.costs`: samples generated, and those the trainer has drawn),
and a tee keeps them per sample in its file's ``.cost.json`` sidecar.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from pdeml.datasets.costs import StreamCosts, shard_record
from pdeml.datasets.reader import parse_selector
from pdeml.datasets.schema import DatasetError
from pdeml.datasets.tee import StreamTee
from pdeml.solvers.problems.base import Problem

log = logging.getLogger("pdeml.stream")

BUFFERS = ("fifo", "firo", "reservoir")
_POLL = 0.1  # seconds between checks of the stop flag while blocked
_TICK = 0.005  # seconds between checks of the task at the head of the queue
# chunk="auto": samples per task so that a task computes for about this long (a task costs
# ~8 ms of scheduling and transfer besides its samples), at most MAX_AUTO_CHUNK samples.
AUTO_TASK_SECONDS = 0.25
MAX_AUTO_CHUNK = 64
# Delivered samples whose solved parameters the feeder keeps for the trainer's feedback (a
# sample is trained on long before this many more arrive, unless a buffer is larger).
SOLVED_KEPT = 65536


class StreamError(DatasetError):
    """The sample stream failed for good (or stalled): training cannot continue."""


class StreamExhausted(Exception):
    """A finite stream (``max_samples``) has delivered and drained every sample."""


# ---------------------------------------------------------------------------------------------
# Variable selectors on in-memory samples (the same rules as the HDF5 reader)
# ---------------------------------------------------------------------------------------------

def timed_variables(problem: Problem) -> dict[str, bool]:
    """Which of a problem's variables have a leading ``time`` axis."""
    return {name: bool(v.dims) and v.dims[0] == "time" for name, v in problem.variables().items()}


def select_batch(arrays: dict[str, np.ndarray], specs: Sequence[str],
                 timed: dict[str, bool]) -> np.ndarray:
    """Apply reader selectors (``"a"``, ``"w[-1]"``, ``"w[0:10]"``) to stacked sample arrays.

    ``arrays`` maps each variable to ``(sample, [time,] *spatial)``; the result is float32
    ``(sample, channels, *spatial)``, identical to what :class:`~pdeml.datasets.reader.H5Dataset`
    reads from a file holding the same samples.
    """
    out = []
    for spec in specs:
        name, index = parse_selector(spec)
        if name not in arrays:
            raise DatasetError(f"the stream has no variable {name} (has: {', '.join(arrays)})")
        a = np.asarray(arrays[name], np.float32)
        if index is None:
            out.append(a[:, None])
            continue
        if not timed.get(name, False):
            raise DatasetError(f"'{spec}' selects time steps but {name} has no time axis")
        n_time = a.shape[1]
        if isinstance(index, slice):
            if not len(range(*index.indices(n_time))):
                raise DatasetError(f"'{spec}' selects no time step (the stream has {n_time})")
            out.append(a[:, index])
        elif -n_time <= index < n_time:
            out.append(a[:, index][:, None])
        else:
            raise DatasetError(f"'{spec}' is out of range (the stream has {n_time} time steps)")
    grids = {o.shape[2:] for o in out if o.ndim > 2}  # (sample, 1): a per-sample scalar
    if len(grids) > 1:
        raise DatasetError(f"selected variables live on different grids {sorted(grids)}")
    if grids and any(o.ndim == 2 for o in out):  # broadcast scalars as H5Dataset does
        (grid,) = grids
        out = [np.broadcast_to(o.reshape(*o.shape, *[1] * len(grid)), (*o.shape, *grid))
               if o.ndim == 2 else o for o in out]
    return np.concatenate(out, axis=1)


# ---------------------------------------------------------------------------------------------
# Buffers
# ---------------------------------------------------------------------------------------------

Item = tuple[int, torch.Tensor, torch.Tensor]  # (stream index, x, y)


class SampleBuffer:
    """Thread-safe sample buffer between a producer (the feeder) and the training loop.

    Parameters
    ----------
    kind
        ``"fifo"``, ``"firo"`` or ``"reservoir"`` (see the module docstring).
    capacity
        Most samples held; a producer blocks while the buffer is full (``reservoir``: while
        it is full of samples never drawn).
    watermark
        Samples needed before the first draw (and, for ``firo``/``reservoir``, before every
        draw while the stream is live). Default: 1 for ``fifo``, ``capacity // 4`` otherwise.
    seed
        Seed of the random draws (their state is part of :meth:`state_dict`).
    """

    def __init__(self, kind: str = "firo", capacity: int = 1024, watermark: int | None = None,
                 seed: int | str = 0) -> None:
        if kind not in BUFFERS:
            raise ValueError(f"unknown buffer '{kind}'; use one of {', '.join(BUFFERS)}")
        if int(capacity) != capacity or capacity < 1:
            raise ValueError(f"buffer capacity must be a positive integer, got {capacity}")
        if watermark is None:
            watermark = 1 if kind == "fifo" else max(1, capacity // 4)
        if not 1 <= watermark <= capacity:
            raise ValueError(f"watermark must be in [1, capacity={capacity}], got {watermark}")
        self.kind, self.capacity, self.watermark = kind, int(capacity), int(watermark)
        self.lock = threading.Condition(threading.RLock())  # also guards the feeder's position
        self._items: list[Item] = []
        self._seen: list[int] = []  # times each item was drawn (reservoir)
        self._fifo: deque[Item] = deque()
        self._rng = random.Random(str(seed))
        self._started = False  # the watermark was reached once
        self._closed, self._error = False, None
        self.n_put = self.n_get = 0
        self.wait_time = 0.0  # seconds consumers spent blocked in get()

    def __len__(self) -> int:
        return len(self._fifo) if self.kind == "fifo" else len(self._items)

    def _full(self) -> bool:
        if self.kind == "reservoir":
            return len(self._items) >= self.capacity and not any(self._seen)
        return len(self) >= self.capacity

    def put(self, item: Item, stop: threading.Event | None = None,
            on_put: Callable[[], None] | None = None) -> bool:
        """Add a sample, blocking while the buffer is full; ``False`` if ``stop`` was set.

        ``on_put`` runs under the buffer's lock together with the insertion, so a producer's
        bookkeeping and the buffer contents always form one consistent snapshot.
        """
        with self.lock:
            while self._full():
                if (stop is not None and stop.is_set()) or self._closed:
                    return False
                self.lock.wait(_POLL)
            if self.kind == "fifo":
                self._fifo.append(item)
            elif self.kind == "reservoir" and len(self._items) >= self.capacity:
                seen = [i for i, c in enumerate(self._seen) if c]
                j = seen[self._rng.randrange(len(seen))]
                self._items[j], self._seen[j] = item, 0
            else:
                self._items.append(item)
                self._seen.append(0)
            self.n_put += 1
            if on_put is not None:
                on_put()
            self.lock.notify_all()
            return True

    def _ready(self) -> bool:
        if self._closed or (self.kind == "fifo" and self._started):
            return len(self) >= 1
        return len(self) >= self.watermark

    def get(self, timeout: float | None = None) -> Item:
        """Draw one sample, waiting for the watermark; raise instead of waiting forever.

        Raises
        ------
        StreamError
            The producer failed, or nothing became available within ``timeout`` seconds.
        StreamExhausted
            A finite stream ended and the buffer is drained.
        """
        t0 = time.perf_counter()
        with self.lock:
            while not self._ready():
                if self._error is not None:
                    raise StreamError(self._error)
                if self._closed:
                    raise StreamExhausted
                waited = time.perf_counter() - t0
                if timeout is not None and waited >= timeout:
                    self.wait_time += waited
                    raise StreamError(
                        f"no sample reached the {self.kind} buffer in {timeout:.0f} s (it holds "
                        f"{len(self)}, needs {self.watermark}); the generators are stalled")
                self.lock.wait(_POLL)
            if self._error is not None:
                raise StreamError(self._error)
            self._started = True
            item = self._take()
            self.n_get += 1
            self.wait_time += time.perf_counter() - t0
            self.lock.notify_all()
            return item

    def _take(self) -> Item:
        if self.kind == "fifo":
            return self._fifo.popleft()
        j = self._rng.randrange(len(self._items))
        if self.kind == "reservoir":
            self._seen[j] += 1
            return self._items[j]
        self._items[j], self._items[-1] = self._items[-1], self._items[j]
        self._seen.pop()
        return self._items.pop()

    def close(self, error: str | None = None) -> None:
        """The producer is done (``error=None``) or failed for good (consumers then raise)."""
        with self.lock:
            self._closed = True
            if error is not None:
                self._error = error
            self.lock.notify_all()

    @property
    def closed(self) -> bool:
        """Whether the producer has finished or failed."""
        return self._closed

    def state_dict(self) -> dict[str, Any]:
        """Contents, draw counts, RNG state and counters (tensors and plain Python only)."""
        with self.lock:
            items = list(self._fifo) if self.kind == "fifo" else list(self._items)
            state: dict[str, Any] = {
                "kind": self.kind, "capacity": self.capacity, "watermark": self.watermark,
                "rng": self._rng.getstate(), "started": self._started,
                "n_put": self.n_put, "n_get": self.n_get,
                "seen": list(self._seen), "index": [i for i, _, _ in items],
            }
            if items:
                state["x"] = torch.stack([x for _, x, _ in items])
                state["y"] = torch.stack([y for _, _, y in items])
            return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` (the buffer kind must match)."""
        if state["kind"] != self.kind:
            raise StreamError(f"checkpoint holds a {state['kind']} buffer, not {self.kind}")
        items = [(int(i), state["x"][k], state["y"][k]) for k, i in enumerate(state["index"])]
        with self.lock:
            if self.kind == "fifo":
                self._fifo = deque(items)
            else:
                self._items, self._seen = items, [int(c) for c in state["seen"]]
            self._rng.setstate(_as_tuple(state["rng"]))
            self._started = bool(state["started"])
            self.n_put, self.n_get = int(state["n_put"]), int(state["n_get"])


def _as_tuple(x: Any) -> Any:
    """``random.Random`` states are nested tuples; a checkpoint round trip may give lists."""
    return tuple(_as_tuple(v) for v in x) if isinstance(x, list | tuple) else x


# ---------------------------------------------------------------------------------------------
# Feeder: Dask tasks -> buffer
# ---------------------------------------------------------------------------------------------

def compute_timed(problem: Problem, seed: int, split: str, indices: list[int],
                  params: list[dict[str, float] | None] | None = None,
                  ) -> tuple[dict[str, np.ndarray], float, dict[str, Any]]:
    """:func:`~pdeml.datasets.writer.compute_samples`, the seconds it took (in the worker) and
    the cost record of its samples (:func:`pdeml.datasets.costs.shard_record`); ``params``:
    per-sample parameters chosen by an active sampler."""
    from pdeml.datasets.writer import compute_samples_costed

    t0 = time.perf_counter()
    out, records = compute_samples_costed(problem, seed, split, indices, params)
    return out, time.perf_counter() - t0, shard_record(records)


class _Task:
    """One Dask task: a few stream indices, delivered in order."""

    __slots__ = ("indices", "delivered", "future", "attempts", "head_since")

    def __init__(self, indices: list[int]) -> None:
        self.indices, self.delivered, self.future = indices, 0, None
        self.attempts, self.head_since = 0, time.monotonic()

    def mark_delivered(self) -> None:
        self.delivered += 1


class StreamFeeder:
    """Background thread that keeps Dask generator tasks in flight and fills a buffer.

    The stream's ``k``-th sample has index ``offset + stream_id + k * n_streams``: streams
    with different ``stream_id`` (DDP ranks, DataLoader workers) draw disjoint samples, and
    with one stream and ``offset=0`` sample ``k`` is sample ``k`` of a file written by
    ``pdeml generate`` with the same seed and split.

    Parameters
    ----------
    client
        A ``distributed.Client``.
    problem
        The problem whose samples are streamed.
    buffer
        The :class:`SampleBuffer` to fill.
    inputs, outputs
        Variable selectors for ``x`` and ``y`` (as in the HDF5 reader).
    seed, split
        Sample ``i`` is drawn from ``sample_rng(seed, split, i)``.
    stream_id, n_streams, offset
        This stream's place in the index space (see above).
    chunk
        Samples per task, or ``"auto"``: start with one sample per task and size later tasks
        so that each computes for about ``AUTO_TASK_SECONDS`` (from the compute times the
        workers report), up to ``MAX_AUTO_CHUNK``. Which samples a stream gives, and in
        ``fifo`` their order, do not depend on the chunk.
    max_in_flight
        Tasks submitted and not yet delivered (memory and backpressure bound).
    task_timeout
        Seconds a task may take once it heads the queue before it counts as hung.
    retries
        Dask retries of a task that raises; then up to ``max_attempts`` resubmissions
        (after a timeout or a lost worker) before the stream fails.
    max_samples
        Stop after this many samples (``None``: endless).
    tee
        A :class:`StreamTee` that also receives every delivered chunk.
    allowed
        Pacing: propose no sample ``k >= allowed`` until :meth:`allow` raises it (``None``:
        no limit). The trainer's :class:`~pdeml.datasets.online.StreamPace` releases a
        finite stream's samples over its optimizer steps, so that an active sampler's later
        choices see a trained model's signals.
    sampler
        An active sampler (:mod:`pdeml.datasets.samplers`) that chooses each new sample's
        per-sample parameters; the choice is kept with the index until delivery (a resubmitted
        or resumed task solves the same parameters) and the parameters the sample was solved
        with are kept for :meth:`params_of`. Not with ``task`` (the closed loop).
    task, on_task
        ``task()`` gives, at each submission, the function a Dask task runs and its arguments
        after ``(problem, seed, split, indices)`` (default: :func:`compute_timed`, none; the
        closed loop, :mod:`pdeml.datasets.closed_loop`, sends the surrogate this way).
        ``on_task(records, cost, blocked)`` follows each delivered task: the cost records of
        the samples it put in the buffer, the task's cost record, and the seconds the puts
        took (waiting while the buffer was full).
    """

    def __init__(self, client: Any, problem: Problem, buffer: SampleBuffer,
                 inputs: Sequence[str], outputs: Sequence[str], *, seed: int = 0,
                 split: str = "train", stream_id: int = 0, n_streams: int = 1, offset: int = 0,
                 chunk: int | str = "auto", max_in_flight: int = 4,
                 task_timeout: float = 300.0, retries: int = 2, max_attempts: int = 3,
                 max_samples: int | None = None, tee: StreamTee | None = None,
                 task: Callable[[], tuple[Callable[..., Any], tuple]] | None = None,
                 on_task: Callable[[list[dict], dict[str, Any], float], None] | None = None,
                 sampler: Any = None, allowed: int | None = None) -> None:
        self.auto_chunk = check_chunk(chunk) == "auto"
        if sampler is not None and task is not None:
            raise ValueError("an active sampler and the closed loop cannot steer one stream")
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be positive")
        if not 0 <= stream_id < n_streams:
            raise ValueError(f"stream_id {stream_id} outside [0, {n_streams})")
        self.client, self.problem, self.buffer = client, problem, buffer
        self.inputs, self.outputs = list(inputs), list(outputs)
        self.seed, self.split = seed, split
        self.chunk = 1 if self.auto_chunk else int(chunk)
        self._sample_seconds: float | None = None  # running estimate, chunk="auto"
        self.stream_id, self.n_streams, self.offset = stream_id, n_streams, offset
        self.max_in_flight, self.task_timeout = int(max_in_flight), float(task_timeout)
        self.retries, self.max_attempts, self.max_samples = retries, max_attempts, max_samples
        self.tee, self._timed = tee, timed_variables(problem)
        self.task, self.on_task = task, on_task
        self.next_k = 0
        self.allowed = None if allowed is None else int(allowed)
        self._resume: deque[list[int]] = deque()
        self._inflight: deque[_Task] = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: str | None = None
        self.stats = {"samples": 0, "tasks": 0, "resubmitted": 0, "timeouts": 0,
                      "lost_worker_tasks": 0}
        self.costs = StreamCosts()  # solver costs of the delivered (and drawn) samples
        self._lost: dict[str, str] = {}  # task key -> address of the worker that lost it
        self._lost_lock = threading.Lock()
        self.sampler = sampler
        self._chosen: dict[int, dict[str, float] | None] = {}  # proposed, not yet delivered
        self._solved: dict[int, dict[str, float]] = {}  # delivered: the parameters solved
        self._space = sorted(problem.parameter_space()) if sampler is not None else []

    def index(self, k: int) -> int:
        """Global sample index of this stream's ``k``-th sample."""
        return self.offset + self.stream_id + k * self.n_streams

    def allow(self, n: int) -> None:
        """Let the stream propose its samples ``k < n`` (pacing; never lowers the limit)."""
        with self.buffer.lock:
            self.allowed = max(int(n), self.allowed or 0)

    @property
    def finished(self) -> bool:
        """Whether a finite stream has proposed every sample and nothing is left to redo."""
        return (self.max_samples is not None and self.next_k >= self.max_samples
                and not self._resume)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> StreamFeeder:
        """Start the background thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="pdeml-stream", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop submitting, cancel what is in flight and finish the tee."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        for task in list(self._inflight):
            if task.future is not None:
                try:
                    task.future.cancel()
                except Exception:  # the client may already be closed; nothing to release
                    pass

    def notify_lost(self, worker: str, keys: set) -> None:
        """A worker holding ``keys`` left the cluster (called by a ``WorkerSupervisor``).

        The feeder thread cancels those of its tasks and resubmits their undelivered indices
        at its next turn; keys of other streams are ignored.
        """
        with self._lost_lock:
            self._lost.update({k: worker for k in keys})

    def _resubmit_lost(self) -> None:
        with self._lost_lock:
            lost, self._lost = self._lost, {}
        if not lost:
            return
        for task in list(self._inflight):
            worker = lost.get(task.future.key) if task.future is not None else None
            if worker is None:  # (a finished result lived in that worker's memory too)
                continue
            task.future.cancel()
            self.stats["lost_worker_tasks"] += 1
            self._resubmit(task, f"worker {worker} was lost")

    @property
    def alive(self) -> bool:
        """Whether the feeder thread is running."""
        return self._thread is not None and self._thread.is_alive()

    # -- state -----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Generator position and buffer contents, taken as one consistent snapshot."""
        with self.buffer.lock:
            pending = [t.indices[t.delivered:] for t in self._inflight] + list(self._resume)
            out = {"next_k": self.next_k, "pending": [p for p in pending if p],
                   "offset": self.offset, "stream_id": self.stream_id,
                   "n_streams": self.n_streams, "stats": dict(self.stats),
                   "buffer": self.buffer.state_dict()}
            if self.sampler is not None:
                out["sampler"] = {"chosen": [[i, p] for i, p in self._chosen.items()],
                                  "solved": [[i, p] for i, p in self._solved.items()],
                                  "state": self.sampler.state_dict()}
            return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue the stream of :meth:`state_dict` (before :meth:`start`)."""
        if self._thread is not None:
            raise RuntimeError("load the stream state before starting the feeder")
        same = (state["stream_id"], state["n_streams"]) == (self.stream_id, self.n_streams)
        if not same or state["offset"] != self.offset:
            raise StreamError("the checkpoint's stream layout (ranks x workers) differs")
        self.next_k = int(state["next_k"])
        self._resume = deque([int(i) for i in p] for p in state["pending"])
        self.stats.update(state.get("stats", {}))
        self.buffer.load_state_dict(state["buffer"])
        if self.sampler is not None and "sampler" in state:
            self._chosen = {int(i): p for i, p in state["sampler"]["chosen"]}
            self._solved = {int(i): p for i, p in state["sampler"]["solved"]}
            self.sampler.load_state_dict(state["sampler"]["state"])

    # -- the loop --------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as err:  # any failure ends the stream with a message for the trainer
            self.error = f"online data stream failed: {' '.join(str(err).split())}"
            log.error(self.error)
            self.buffer.close(error=self.error)
        finally:
            if self.tee is not None:
                self.tee.close()

    def _loop(self) -> None:
        import asyncio
        from concurrent.futures import CancelledError

        while not self._stop.is_set():
            self._resubmit_lost()
            self._fill()
            if not self._inflight:
                if self.finished:
                    self.buffer.close()  # a finite stream is complete
                    return
                self._stop.wait(_TICK)  # paced: waiting for the trainer to allow more
                continue
            task = self._inflight[0]
            # Poll done() rather than result(timeout=...): a short client-side timeout races
            # with the gather on a loaded machine (distributed's sync then fails oddly).
            if not task.future.done():
                self._check_hang(task)
                self._stop.wait(_TICK)
                continue
            try:
                out, seconds, cost = task.future.result(timeout=max(self.task_timeout, 60.0))
            except (Exception, CancelledError, asyncio.CancelledError) as err:
                if self._stop.is_set():
                    return
                self._resubmit(task, f"{type(err).__name__}: {err}")
                continue
            self._adapt_chunk(seconds, len(task.indices))
            if not self._deliver(task, out, cost):
                return
            with self.buffer.lock:
                self._inflight.popleft()
                if self._inflight:
                    self._inflight[0].head_since = time.monotonic()

    def _fill(self) -> None:
        while len(self._inflight) < self.max_in_flight:
            with self.buffer.lock:
                if self._resume:
                    indices = self._resume.popleft()
                elif ((self.max_samples is None or self.next_k < self.max_samples)
                      and (self.allowed is None or self.next_k < self.allowed)):
                    stop = self.next_k + self.chunk
                    for limit in (self.max_samples, self.allowed):
                        if limit is not None:
                            stop = min(stop, limit)
                    indices = [self.index(k) for k in range(self.next_k, stop)]
                    self.next_k = stop
                    if self.sampler is not None:
                        self._chosen.update(zip(indices, self.sampler.propose(indices),
                                                strict=True))
                else:
                    return
                task = _Task(indices)
                self._inflight.append(task)
            self._submit(task)

    def _adapt_chunk(self, seconds: float, n: int) -> None:
        if not self.auto_chunk or n < 1:
            return
        per = seconds / n
        est = self._sample_seconds
        self._sample_seconds = per if est is None else 0.7 * est + 0.3 * per
        self.chunk = int(min(MAX_AUTO_CHUNK, max(1, AUTO_TASK_SECONDS
                                                 // max(self._sample_seconds, 1e-6))))
        self.stats["chunk"] = self.chunk

    def _submit(self, task: _Task) -> None:
        fn, extra = self.task() if self.task is not None else (compute_timed, ())
        if self.sampler is not None:
            with self.buffer.lock:
                extra = ([self._chosen.get(i) for i in task.indices],)
        task.future = self.client.submit(fn, self.problem, self.seed, self.split, task.indices,
                                         *extra, retries=self.retries, pure=False)
        task.head_since = time.monotonic()
        self.stats["tasks"] += 1

    def _resubmit(self, task: _Task, reason: str) -> None:
        task.attempts += 1
        span = f"{task.indices[0]}..{task.indices[-1]}"
        if task.attempts > self.max_attempts:
            raise StreamError(f"the task for samples {span} failed {task.attempts} times; "
                              f"last: {reason}")
        log.warning("resubmitting the task for samples %s (attempt %d): %s", span,
                    task.attempts + 1, reason)
        self.stats["resubmitted"] += 1
        with self.buffer.lock:
            task.indices, task.delivered = task.indices[task.delivered:], 0
        self._submit(task)

    def _check_hang(self, task: _Task) -> None:
        if time.monotonic() - task.head_since < self.task_timeout:
            return
        self.stats["timeouts"] += 1
        key = task.future.key
        try:  # a hung thread cannot be interrupted: restart the worker process that runs it
            busy = [w for w, keys in self.client.processing().items() if key in keys]
            if busy:
                self.client.restart_workers(busy, raise_for_error=False)
        except Exception as err:  # no nanny, or the worker is gone already
            log.warning("could not restart the worker of a hung task: %s", err)
        task.future.cancel()
        self._resubmit(task, f"no result after {self.task_timeout:.0f} s")

    def _deliver(self, task: _Task, out: dict[str, np.ndarray], cost: dict[str, Any]) -> bool:
        x = select_batch(out, self.inputs, self._timed)
        y = select_batch(out, self.outputs, self._timed)
        records, first = cost["samples"], task.delivered
        if self.tee is not None:
            self.tee.write(out, task.indices[task.delivered:],
                           {**cost, "samples": records[task.delivered:]})
        t0 = time.perf_counter()
        for j in range(task.delivered, len(task.indices)):
            item = (task.indices[j], torch.from_numpy(np.ascontiguousarray(x[j])),
                    torch.from_numpy(np.ascontiguousarray(y[j])))

            def on_put(record: dict[str, Any] = records[j], j: int = j) -> None:
                task.mark_delivered()
                self.costs.delivered(record)
                if self.sampler is not None:  # under the buffer's lock
                    index = task.indices[j]
                    self._chosen.pop(index, None)
                    self._solved[index] = {k: float(out[k][j]) for k in self._space}
                    while len(self._solved) > SOLVED_KEPT:
                        self._solved.pop(next(iter(self._solved)))

            if not self.buffer.put(item, self._stop, on_put=on_put):
                return False
            self.stats["samples"] += 1
        if self.on_task is not None:
            self.on_task(records[first:], cost, time.perf_counter() - t0)
        return True


    def params_of(self, indices: list[int]) -> list[dict[str, float] | None]:
        """The parameters delivered samples were solved with (``None``: no longer kept)."""
        with self.buffer.lock:
            return [self._solved.get(int(i)) for i in indices]


def stream_stride(rank: int, world_size: int, worker: int, n_workers: int) -> tuple[int, int]:
    """``(stream_id, n_streams)`` of DataLoader worker ``worker`` on DDP rank ``rank``."""
    n_workers = max(1, n_workers)
    return rank * n_workers + worker, world_size * n_workers


def default_in_flight(n_generators: int) -> int:
    """Tasks to keep in flight: two per generator process keeps each busy between results."""
    return max(2, 2 * math.ceil(n_generators))


def check_chunk(chunk: Any) -> int | str:
    """A stream's ``chunk``: a positive integer or ``"auto"`` (else a one-line error)."""
    if chunk == "auto":
        return chunk
    if isinstance(chunk, bool) or not isinstance(chunk, int | float) or int(chunk) != chunk \
            or chunk < 1:
        raise ValueError(f"online chunk must be a positive integer or 'auto', got {chunk!r}")
    return int(chunk)
