"""Online training: a LightningDataModule whose training samples stream from Dask generators.

Validation and test sets are fixed HDF5 files (never drawn from the stream). The training
set is an :class:`OnlineDataset` (a ``torch`` ``IterableDataset`` of whole batches) that
drains a :class:`~pdeml.datasets.stream.SampleBuffer` filled by a
:class:`~pdeml.datasets.stream.StreamFeeder`; an epoch is ``batches_per_epoch`` batches.

Layout of the sample indices: DDP rank ``r`` of ``R`` with DataLoader worker ``w`` of ``W``
draws the indices ``r * W + w + k * R * W`` (disjoint streams). With one rank and no workers,
streamed sample ``k`` is exactly sample ``k`` of ``pdeml generate --seed <seed>``'s
``train.h5``.

Checkpoints (Lightning saves :meth:`OnlineDataModule.state_dict` with the model and
optimizer) hold, for each rank, the buffer contents and RNG, the generator position (next
index and the indices submitted but not yet delivered), the epoch position, and the batches
the DataLoader had prefetched but the trainer had not yet used. Resuming with
``num_workers=0`` and the same number of ranks continues the same stream exactly. With
``num_workers > 0`` the workers' buffers live in other processes and are not saved: a resumed
run continues with fresh samples from an unused part of the index space (never a repeat).

Relation to Melissa (Meyer et al., ICML 2023, "Training Deep Surrogate Models with Large
Scale Online Learning"; code ``melissa.server.deep_learning.reservoir``: ``FIFO(size)``,
``FIRO(size, watermark, pseudo_epochs)``, ``Reservoir(size, watermark)``):

- *Follows*: the three buffer kinds and their names; a watermark below which the trainer does
  not draw (Melissa's ``per_server_watermark``); the reservoir draws uniformly with
  repetition and lets a new sample replace one that was already seen, so an unseen sample is
  never evicted (our reading of the paper's Reservoir); training consumes a stream of ever-new
  simulations, and the comparison with offline training is made at an equal number of
  optimizer steps (``scripts/bench_online.py``).
- *Departs*: Melissa's clients are MPI simulation jobs that push time steps to a server over
  ZeroMQ; here generator tasks are Dask futures that the trainer pulls (so backpressure is
  the bounded number of tasks in flight, and a lost worker is a Dask event, handled by
  :mod:`pdeml.datasets.supervisor`, not a launcher resubmitting a batch job). One sample is
  one whole simulation output (or the reader's time selectors on it), not one time step,
  and a task carries several (``chunk``, by default sized so a task runs ~0.25 s), where a
  Melissa client sends each time step as its own message. ``firo`` serves each sample
  exactly once (Melissa's ``pseudo_epochs=1``); ``reservoir``
  blocks the producer while the pool is full of unseen samples instead of dropping data.
  Sample ``i`` is a pure function of ``(seed, split, i)``, so the stream equals a file that
  ``pdeml generate`` writes, which Melissa's parameter sampler does not promise.
- *Fault tolerance*: Melissa's launcher restarts failed simulation jobs; here the
  :class:`~pdeml.datasets.supervisor.WorkerSupervisor` started by :class:`OnlineDataModule`
  keeps the Dask worker count and has the stream resubmit a lost worker's samples.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from pdeml.datasets.closed_loop import DataWaitMonitor as DataWaitMonitor  # it lived here
from pdeml.datasets.closed_loop import GenerationMeter, attach_monitor, make_closed_loop
from pdeml.datasets.costs import CostTotals, merge_totals
from pdeml.datasets.normalization import UnitGaussianNormalizer
from pdeml.datasets.reader import H5Dataset
from pdeml.datasets.samplers import make_sampler
from pdeml.datasets.schema import DatasetError
from pdeml.datasets.stream import (
    BUFFERS,
    SampleBuffer,
    StreamExhausted,
    StreamFeeder,
    StreamTee,
    check_chunk,
    default_in_flight,
    select_batch,
    stream_stride,
    timed_variables,
)
from pdeml.datasets.supervisor import WorkerSupervisor
from pdeml.datasets.writer import sample_rng
from pdeml.solvers.problems.base import Problem, make_problem

log = logging.getLogger("pdeml.stream")

SEGMENT = 2**40  # index-space offset of a resumed run that cannot restore its buffers
NORM_SPLIT = "normalize"  # the split of the samples that fit the normalizers


class OnlineDataset(IterableDataset):
    """Batches ``(x, y)`` drawn from a live sample stream; ``len()`` batches per epoch.

    Built by :class:`OnlineDataModule`; the stream (Dask client, buffer, feeder thread) starts
    on the first iteration in the process that iterates (the trainer, or each DataLoader
    worker, which then connects to the scheduler ``address``) and lives across epochs.
    """

    def __init__(self, problem: Problem, stream: dict[str, Any], inputs: Sequence[str],
                 outputs: Sequence[str], batch_size: int, batches_per_epoch: int,
                 address: str | None, rank: int = 0, world_size: int = 1,
                 record_indices: bool = False) -> None:
        self.problem, self.stream = problem, dict(stream)
        self.inputs, self.outputs = list(inputs), list(outputs)
        self.batch_size, self.batches_per_epoch = int(batch_size), int(batches_per_epoch)
        self.address, self.rank, self.world_size = address, rank, world_size
        self.record_indices = record_indices
        self.client: Any = None  # the trainer process's client (not pickled to workers)
        self.supervisor: WorkerSupervisor | None = None  # likewise
        self.segment = 0
        self.index_log: list[list[int]] = []
        self.closed_loop: Any = None  # the trainer process's ClosedLoop (not pickled)
        self.sampler: Any = None  # the trainer process's active sampler (num_workers=0)
        self.allowed: int | None = stream.get("pace_start")  # pacing (StreamPace), else None
        self._reset_runtime()

    def _reset_runtime(self) -> None:
        self.feeder: StreamFeeder | None = None
        self.meter: GenerationMeter | None = None
        self._own_client: Any = None
        self._pending_state: dict[str, Any] | None = None
        self._epoch_pos = self._yielded = 0
        self._recent: deque[tuple[list[int], torch.Tensor, torch.Tensor]] = deque(maxlen=8)
        self._replay: deque[tuple[list[int], torch.Tensor, torch.Tensor]] = deque()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()  # DataLoader workers start their own stream
        for key in ("client", "supervisor", "feeder", "_own_client", "_recent", "_replay",
                    "closed_loop", "meter"):
            state[key] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        client, supervisor = self.client, self.supervisor
        self._reset_runtime()
        self.client, self.supervisor = client, supervisor

    def __len__(self) -> int:
        return self.batches_per_epoch

    def _start(self, worker: int, n_workers: int) -> StreamFeeder:
        if self.feeder is not None:
            return self.feeder
        client = self.client
        if client is None or n_workers > 1:
            from distributed import Client

            if self.address is None:
                raise DatasetError("DataLoader workers need a scheduler address to stream")
            client = self._own_client = Client(self.address, set_as_default=False)
        sid, n_streams = stream_stride(self.rank, self.world_size, worker, n_workers)
        s = self.stream
        buffer = SampleBuffer(s["buffer"], s["capacity"], s["watermark"],
                              seed=f"{s['seed']}-{sid}-{self.segment}")
        tee = None
        if s["tee"]:
            path = Path(s["tee"])
            if n_streams > 1:
                path = path.with_name(f"{path.stem}.stream{sid}of{n_streams}{path.suffix}")
            tee = StreamTee(path, self.problem, s["seed"], s["split"])
        self.meter = GenerationMeter()
        self.feeder = StreamFeeder(
            client, self.problem, buffer, self.inputs, self.outputs, seed=s["seed"],
            split=s["split"], stream_id=sid, n_streams=n_streams,
            offset=self.segment * SEGMENT, chunk=s["chunk"], max_in_flight=s["max_in_flight"],
            task_timeout=s["task_timeout"], retries=s["retries"],
            max_attempts=s["max_attempts"], max_samples=s["max_samples"], tee=tee,
            task=self.closed_loop.task if self.closed_loop is not None else None,
            on_task=self.meter.add, sampler=self.sampler, allowed=self.allowed)
        if self._pending_state is not None:
            self.feeder.load_state_dict(self._pending_state["feeder"])
        if self.supervisor is not None and client is self.client:
            # Streams in DataLoader workers have other clients: Dask reschedules their tasks.
            self.supervisor.subscribe(self.feeder.notify_lost)
        if n_workers > 1 or get_worker_info() is not None:
            from multiprocessing.util import Finalize

            # DataLoader workers end through multiprocessing's exit path (no atexit): stop
            # the feeder there so that the tee is finished and the client disconnects.
            Finalize(self, self.close, exitpriority=10)
        return self.feeder.start()

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        feeder = self._start(worker, n_workers)
        n = len(range(worker, self.batches_per_epoch, n_workers))
        if self._epoch_pos >= n:
            self._epoch_pos = 0
        while self._epoch_pos < n:
            batch = self._replay.popleft() if self._replay else self._draw(feeder)
            if batch is None:
                return
            self._epoch_pos += 1
            self._yielded += 1
            self._recent.append(batch)
            if self.record_indices:
                self.index_log.append(batch[0])
            yield batch[1], batch[2]

    def indices_of(self, x: torch.Tensor) -> list[int] | None:
        """The stream indices of a batch this dataset yielded, found by its input tensor."""
        for idx, bx, _ in reversed(self._recent):
            if bx is x or (bx.data_ptr() == x.data_ptr() and bx.shape == x.shape):
                return idx
        for idx, bx, _ in reversed(self._recent):  # moved to another device: by value
            if bx.shape == x.shape and torch.equal(bx, x.detach().to(bx.device)):
                return idx
        return None

    def _draw(self, feeder: StreamFeeder) -> tuple[list[int], torch.Tensor, torch.Tensor] | None:
        items = []
        try:
            for _ in range(self.batch_size):
                items.append(feeder.buffer.get(timeout=self.stream["data_timeout"]))
        except StreamExhausted:
            if not items:
                return None
        feeder.costs.drawn([i for i, _, _ in items])
        return ([i for i, _, _ in items], torch.stack([x for _, x, _ in items]),
                torch.stack([y for _, _, y in items]))

    def state_dict(self, processed: int) -> dict[str, Any]:
        """This process's stream state, given the batches the trainer has ``processed``."""
        if self.feeder is None:
            return {"segment": self.segment, "restorable": False}
        unused = max(0, min(self._yielded - processed, len(self._recent)))
        replay = list(self._recent)[len(self._recent) - unused:] if unused else []
        return {"segment": self.segment, "restorable": True,
                "feeder": self.feeder.state_dict(), "epoch_pos": self._epoch_pos - unused,
                "yielded": self._yielded - unused,
                "replay": [(idx, x, y) for idx, x, y in replay]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` (or from a fresh segment if not restorable)."""
        if self.feeder is not None:
            raise RuntimeError("load the stream state before iterating")
        if not state.get("restorable"):
            self.segment = int(state["segment"]) + 1
            log.warning("the checkpoint holds no restorable stream state (DataLoader workers "
                        "or another layout): continuing with fresh samples")
            return
        self.segment = int(state["segment"])
        self._pending_state = state
        self._epoch_pos, self._yielded = int(state["epoch_pos"]), int(state["yielded"])
        self._replay = deque((list(i), x, y) for i, x, y in state["replay"])

    def close(self) -> None:
        """Stop the feeder and close the client this dataset opened."""
        if self.feeder is not None:
            if self.supervisor is not None:
                self.supervisor.unsubscribe(self.feeder.notify_lost)
            self.feeder.stop()
        if self._own_client is not None:
            self._own_client.close()
            self._own_client = None


class OnlineDataModule(L.LightningDataModule):
    """Train on samples streamed from Dask generators; validate and test on HDF5 files.

    Parameters
    ----------
    problem, options
        The problem (a name for :func:`~pdeml.solvers.problems.make_problem` with its
        ``options``, or a configured :class:`~pdeml.solvers.problems.Problem`).
    val, test
        Fixed validation and test files (``pdeml generate``); never drawn from the stream.
    inputs, outputs
        Variable selectors (as for :class:`~pdeml.datasets.PDEDataModule`); by default the
        problem's ``input_vars`` / ``output_vars``.
    batch_size, batches_per_epoch
        Batch size, and batches in one (per-rank) epoch.
    buffer, capacity, watermark
        The :class:`~pdeml.datasets.stream.SampleBuffer`: ``fifo``, ``firo`` or ``reservoir``.
    seed, split
        Streamed sample ``i`` is drawn from ``sample_rng(seed, split, i)``.
    scheduler, n_workers
        ``"local"``: a ``LocalCluster`` of ``n_workers`` single-threaded processes, started by
        rank 0 and shared by every rank; a scheduler address (``"tcp://host:8786"``) or a
        ``distributed.Client``: that cluster.
    chunk, max_in_flight
        Samples per Dask task (``"auto"``: sized from the workers' compute times so that a
        task runs ~0.25 s, see :class:`~pdeml.datasets.stream.StreamFeeder`); tasks in flight
        per stream (default two per Dask worker).
    task_timeout, retries, max_attempts
        Fault handling, see :class:`~pdeml.datasets.stream.StreamFeeder`.
    data_timeout
        Seconds the trainer waits for one sample before raising ``StreamError``.
    max_samples
        Per-stream limit on streamed samples (``None``: endless).
    tee
        Also write the streamed samples to this HDF5 file (one per stream when several).
    num_workers
        DataLoader worker processes, each with its own stream (exact resume needs 0).
    supervise, worker_grace
        Keep the generator pool at its size (``n_workers`` for ``"local"``, else the most
        workers seen): a :class:`~pdeml.datasets.supervisor.WorkerSupervisor` on rank 0 has
        the trainer's stream resubmit a lost worker's tasks at once and, when the pool stays
        short for ``worker_grace`` s (the nanny did not restart the process), starts
        replacements on a cluster this process manages (``"local"``, or a Client built from
        a ``LocalCluster``). Events go to the ``pdeml.stream`` logger (stderr).
    norm_samples
        Samples (of the separate split ``"normalize"``) that fit the normalizers.
    record_indices
        Keep the stream indices of every batch in ``train_set.index_log`` (for tests).
    pace
        Release a finite stream's ``max_samples`` over the first ``pace`` share of the optimizer
        steps (in ``(0, 1]``; ``None``: as fast as the generators go): the watermark's worth at
        the start, the rest in proportion to the steps taken (:class:`StreamPace`). Without it
        a stream whose solves are faster than training ends early, and an active sampler
        steers its last samples with the signals of a model still far from trained.
        Needs ``max_samples``, the ``reservoir`` buffer (a FIFO would starve the trainer
        while samples are held back) and ``num_workers=0``.
    sampler
        An active sampler (:mod:`pdeml.datasets.samplers`; ``pdeml list samplers``): a name or
        ``{name: breed, ...}``. It chooses the per-sample parameters of the problem
        (``parameter_space``, e.g. ``burgers`` with ``viscosity_range``) of every streamed
        sample and learns from their training losses (:class:`SamplerFeedback`, added to the
        Trainer here). Needs ``num_workers=0`` and no closed loop. ``None``: the prior.
    surrogate_every, surrogate_smooth
        The closed loop (:mod:`pdeml.datasets.closed_loop`; ``0``: off): every
        ``surrogate_every`` optimizer steps the generators receive the current surrogate and
        start their solves from its prediction (after ``surrogate_smooth`` symmetric
        Gauss-Seidel sweeps; default 2). Linear problems with an iterative solver only;
        samples still meet ``rtol`` but are no longer bitwise reproducible. Generation
        throughput is logged either way.
    """

    def __init__(
        self, problem: str | Problem, options: dict[str, Any] | None = None,
        val: str | Path | None = None, test: str | Path | None = None,
        inputs: Sequence[str] | None = None, outputs: Sequence[str] | None = None,
        batch_size: int = 16, batches_per_epoch: int = 64, buffer: str = "firo",
        capacity: int = 1024, watermark: int | None = None, seed: int = 0,
        split: str = "train", scheduler: Any = "local", n_workers: int = 1,
        chunk: int | str = "auto",
        max_in_flight: int | None = None, task_timeout: float = 300.0, retries: int = 2,
        max_attempts: int = 3, data_timeout: float = 600.0, max_samples: int | None = None,
        tee: str | Path | None = None, num_workers: int = 0, norm_samples: int = 64,
        record_indices: bool = False, supervise: bool = True, worker_grace: float = 10.0,
        surrogate_every: int = 0, surrogate_smooth: int | None = None,
        sampler: str | dict[str, Any] | None = None, pace: float | None = None,
    ) -> None:
        super().__init__()
        self.problem = (make_problem(problem, **(options or {})) if isinstance(problem, str)
                        else problem)
        self.sampler = make_sampler(sampler, self.problem.parameter_space(), int(seed))
        if self.sampler is not None and (num_workers or surrogate_every):
            raise ValueError("an active sampler needs num_workers=0 and surrogate_every=0 "
                             "(its feedback pairs each trained sample with its parameters)")
        checks = {"batch_size": batch_size, "batches_per_epoch": batches_per_epoch,
                  "n_workers": n_workers, "norm_samples": norm_samples}
        chunk = check_chunk(chunk)
        for name, value in checks.items():
            if int(value) != value or value < 1:
                raise ValueError(f"online {name} must be a positive integer, got {value}")
        if buffer not in BUFFERS:
            raise ValueError(f"unknown buffer '{buffer}'; use one of {', '.join(BUFFERS)}")
        mark = SampleBuffer(buffer, capacity, watermark).watermark  # validates both
        if pace is not None:
            if isinstance(pace, bool) or not isinstance(pace, int | float) or not 0 < pace <= 1:
                raise ValueError(f"online pace must be a share of the steps in (0, 1], got "
                                 f"{pace!r}")
            if max_samples is None or num_workers or buffer != "reservoir":
                raise ValueError("online pace needs max_samples (a finite stream), "
                                 "buffer: reservoir (which serves its samples again while "
                                 "the next are held back) and num_workers=0")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers}")
        self.val_path, self.test_path = val, test
        self.inputs = list(inputs or self.problem.input_vars)
        self.outputs = list(outputs or self.problem.output_vars)
        self.batch_size, self.batches_per_epoch = int(batch_size), int(batches_per_epoch)
        self.scheduler, self.n_workers, self.num_workers = scheduler, int(n_workers), num_workers
        self.norm_samples, self.record_indices = int(norm_samples), record_indices
        self.closed_loop = make_closed_loop(self.problem, surrogate_every, surrogate_smooth,
                                            self.inputs, self.outputs, num_workers)
        self.supervise, self.worker_grace = bool(supervise), float(worker_grace)
        self.supervisor: WorkerSupervisor | None = None
        self.stream = {
            "buffer": buffer, "capacity": int(capacity), "watermark": watermark,
            "seed": int(seed), "split": split, "chunk": chunk,
            "max_in_flight": max_in_flight or default_in_flight(n_workers),
            "task_timeout": float(task_timeout), "retries": int(retries),
            "max_attempts": int(max_attempts), "data_timeout": float(data_timeout),
            "max_samples": max_samples, "tee": str(tee) if tee else None,
            "pace": None if pace is None else float(pace),
            "pace_start": None if pace is None else min(int(max_samples), mark),
        }
        self.train_set: OnlineDataset | None = None
        self.val_set = self.test_set = None
        self.client = self._cluster = None
        self._probe: tuple[np.ndarray, np.ndarray] | None = None
        self._pending_state: dict[str, Any] | None = None
        self._fixed_costs = CostTotals()  # samples drawn outside the stream (normalizers)

    # -- shapes and fixed sets -------------------------------------------------------------

    def _draw(self, split: str, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Samples of ``split`` as selected ``(x, y)`` arrays, through Dask when connected."""
        from pdeml.datasets.writer import compute_samples_costed

        seed, chunk = self.stream["seed"], self.stream["chunk"]
        chunk = 8 if chunk == "auto" else max(chunk, 8)
        parts = [list(indices[i:i + chunk]) for i in range(0, len(indices), chunk)]
        if self.client is not None:
            futures = [self.client.submit(compute_samples_costed, self.problem, seed, split, p,
                                          pure=False, retries=self.stream["retries"])
                       for p in parts]
            results = self.client.gather(futures)
        else:
            results = [compute_samples_costed(self.problem, seed, split, p) for p in parts]
        outs = [out for out, _ in results]
        for _, records in results:
            for record in records:
                self._fixed_costs.add(record)
        timed = timed_variables(self.problem)
        x = np.concatenate([select_batch(o, self.inputs, timed) for o in outs])
        y = np.concatenate([select_batch(o, self.outputs, timed) for o in outs])
        return x, y

    def _shapes(self) -> tuple[np.ndarray, np.ndarray]:
        if self._probe is None:
            self._probe = self._draw(NORM_SPLIT, [0])
        return self._probe

    @property
    def in_channels(self) -> int:
        """Channels of the model input."""
        return int(self._shapes()[0].shape[1])

    @property
    def out_channels(self) -> int:
        """Channels of the model output."""
        return int(self._shapes()[1].shape[1])

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        """Grid shape of the streamed samples."""
        return tuple(self._shapes()[0].shape[2:])

    def _fixed_set(self, path: str | Path) -> H5Dataset:
        ds = H5Dataset(path, self.inputs, self.outputs, in_memory=True)
        want = (self.in_channels, self.out_channels, self.spatial_shape)
        have = (ds.in_channels, ds.out_channels, ds.spatial_shape)
        if have != want:
            raise DatasetError(f"{path} holds (in, out, grid) = {have} but the stream gives "
                               f"{want}; generate it with the same problem options")
        return ds

    # -- Lightning hooks -------------------------------------------------------------------

    def _connect(self) -> str | None:
        """Connect to the Dask cluster (rank 0 starts a local one); the scheduler address."""
        from distributed import Client

        from pdeml.datasets.writer import open_client

        trainer, scheduler = self.trainer, self.scheduler
        if isinstance(scheduler, Client):
            self.client = scheduler
            address = scheduler.scheduler.address
        elif scheduler == "local":
            address = None
            if trainer.global_rank == 0:
                self.client, self._cluster = open_client("local", self.n_workers)
                address = self.client.scheduler.address
            address = trainer.strategy.broadcast(address, src=0)
        elif isinstance(scheduler, str):
            address = scheduler
        else:
            raise DatasetError(f"scheduler must be 'local', an address or a Client: {scheduler!r}")
        if self.client is None:
            self.client = Client(address, set_as_default=False)
        if self.supervise and trainer.global_rank == 0:
            cluster = (self._cluster if self._cluster is not None
                       else getattr(self.client, "cluster", None))
            target = self.n_workers if self._cluster is not None else None
            self.supervisor = WorkerSupervisor(self.client, cluster, target,
                                               grace=self.worker_grace).start()
        return address

    def setup(self, stage: str | None = None) -> None:
        if self.val_path and self.val_set is None:
            self.val_set = self._fixed_set(self.val_path)
        if self.test_path and self.test_set is None and stage in (None, "test", "predict"):
            self.test_set = self._fixed_set(self.test_path)
        if stage in (None, "fit") and self.trainer is not None and self.client is None:
            address = self._connect()
            self.train_set = OnlineDataset(
                self.problem, self.stream, self.inputs, self.outputs, self.batch_size,
                self.batches_per_epoch, address, self.trainer.global_rank,
                self.trainer.world_size, self.record_indices)
            self.train_set.client, self.train_set.supervisor = self.client, self.supervisor
            self.train_set.closed_loop = self.closed_loop
            self.train_set.sampler = self.sampler
            attach_monitor(self.trainer, self)  # throughput windows; publishes the surrogate
            if self.sampler is not None and not any(
                    isinstance(cb, SamplerFeedback) for cb in self.trainer.callbacks):
                self.trainer.callbacks.append(SamplerFeedback(self))
            if self.stream["pace"] is not None and not any(
                    isinstance(cb, StreamPace) for cb in self.trainer.callbacks):
                self.trainer.callbacks.append(StreamPace(self))
            if self._pending_state is not None:
                self.load_state_dict(self._pending_state)

    def fit_normalizers(self) -> tuple[UnitGaussianNormalizer, UnitGaussianNormalizer]:
        """Normalizers fitted on ``norm_samples`` fresh samples (split ``"normalize"``)."""
        x, y = self._draw(NORM_SPLIT, range(self.norm_samples))
        n_in = UnitGaussianNormalizer(x.shape[1]).fit([torch.from_numpy(x)])
        n_out = UnitGaussianNormalizer(y.shape[1]).fit([torch.from_numpy(y)])
        return n_in, n_out

    def train_dataloader(self) -> DataLoader:
        if self.train_set is None:
            raise DatasetError("the online stream starts when a Trainer calls setup('fit')")
        # Workers start Dask clients of their own: spawn them (forking a process that runs an
        # event loop thread is unsafe) and keep them, so each stream lives across epochs.
        extra = ({"multiprocessing_context": "spawn", "persistent_workers": True}
                 if self.num_workers else {})
        return DataLoader(self.train_set, batch_size=None, num_workers=self.num_workers,
                          **extra)

    def _loader(self, dataset: H5Dataset) -> DataLoader:
        from pdeml.datasets.datamodule import eval_sampler  # disjoint shares under DDP

        return DataLoader(dataset, batch_size=self.batch_size, shuffle=False,
                          sampler=eval_sampler(dataset))

    def val_dataloader(self) -> DataLoader | list:
        return self._loader(self.val_set) if self.val_set is not None else []

    def test_dataloader(self) -> DataLoader:
        if self.test_set is None:
            raise DatasetError("no test file was given")
        return self._loader(self.test_set)

    def state_dict(self) -> dict[str, Any]:
        """Every rank's stream state (all ranks call this when Lightning checkpoints)."""
        if self.train_set is None or self.trainer is None:
            return {}
        processed = self.trainer.fit_loop.epoch_loop.batch_progress.total.processed
        local = self.train_set.state_dict(processed)
        world = self.trainer.world_size
        states = [local]
        if world > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            states = [None] * world
            torch.distributed.all_gather_object(states, local)
        return {"version": 1, "world_size": world, "num_workers": self.num_workers,
                "ranks": states}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore this rank's stream (exactly when the layout matches and workers are 0)."""
        if not state:
            return
        if self.trainer is not None and self.trainer.state.fn != "fit":
            return  # test/validate from a checkpoint: the stream is not used
        if self.train_set is None or self.trainer is None:
            self._pending_state = state  # applied when setup('fit') builds the stream
            return
        self._pending_state = None
        same = (state["world_size"], state["num_workers"]) == (self.trainer.world_size,
                                                               self.num_workers)
        if same and self.num_workers == 0:
            local = state["ranks"][self.trainer.global_rank]
        else:
            local = {"segment": max(s["segment"] for s in state["ranks"]), "restorable": False}
        self.train_set.load_state_dict(local)

    def generation_cost(self) -> dict[str, Any] | None:
        """Solver cost of the samples generated for this run, summed over the DDP ranks.

        ``streamed`` and ``consumed`` are the ``generated`` and ``consumed`` totals of
        :class:`~pdeml.datasets.costs.StreamCosts` (wall and CPU seconds the Dask workers
        spent solving); ``normalize``: the samples that fitted the normalizers and probed the
        shapes. Streams in DataLoader workers (``num_workers > 0``) live in other processes:
        their costs are not collected (``streams_counted`` says how many were). Every rank
        must call this (a collective under DDP); ``None`` before the stream was set up.
        ``throughput``: each counted stream's
        :meth:`~pdeml.datasets.closed_loop.GenerationMeter.summary`.
        """
        if self.train_set is None or self.trainer is None:
            return None
        feeder, meter = self.train_set.feeder, self.train_set.meter
        local = {"streams": [feeder.costs.as_dict()] if feeder is not None else [],
                 "normalize": self._fixed_costs.as_dict(),
                 "throughput": [meter.summary()] if meter is not None else []}
        ranks = [local]
        dist = torch.distributed
        if self.trainer.world_size > 1 and dist.is_available() and dist.is_initialized():
            ranks = [None] * self.trainer.world_size
            dist.all_gather_object(ranks, local)
        streams = [s for r in ranks for s in r["streams"]]
        return {"streamed": merge_totals([s["generated"] for s in streams]),
                "consumed": merge_totals([s["consumed"] for s in streams]),
                "normalize": merge_totals([r["normalize"] for r in ranks]),
                "streams_counted": len(streams),
                "throughput": [t for r in ranks for t in r["throughput"]],
                **({"surrogate_published": self.closed_loop.published}
                   if self.closed_loop is not None else {}),
                **({"sampler": self._sampler_report(streams)}
                   if self.sampler is not None else {})}

    def _sampler_report(self, streams: list[dict[str, Any]]) -> dict[str, Any]:
        """The sampler's counts and its own time as a fraction of the solver time it steered
        (the Dask workers' wall seconds for the streamed samples)."""
        report = self.sampler.report()
        solver = merge_totals([s["generated"] for s in streams]).get("wall_seconds_total", 0.0)
        report["solver_seconds"] = solver
        report["overhead"] = report["seconds"] / solver if solver else None
        for cb in self.trainer.callbacks if self.trainer is not None else []:
            if isinstance(cb, SamplerFeedback):
                report["feedback_batches"], report["unmatched_batches"] = (cb.batches,
                                                                           cb.unmatched)
        return report

    def teardown(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            self.close()

    def close(self) -> None:
        """Stop the stream and close the Dask client (and the local cluster it started)."""
        if self.train_set is not None:
            self.train_set.close()
        if self.closed_loop is not None:
            self.closed_loop.close()
        if self.supervisor is not None:
            self.supervisor.stop()
            self.supervisor = None
        if self._cluster is not None and self.client is not None:
            try:  # tasks the stream just cancelled may still run: a closing worker logs each
                self.client.run(_quiet_worker_shutdown)
            except Exception:  # a worker already gone has nothing to log
                pass
        if self.client is not None and self.client is not self.scheduler:
            self.client.close()
        if self._cluster is not None:
            self._cluster.close()
        self.client = self._cluster = None


class SamplerFeedback(L.Callback):
    """Reports each trained sample's loss, with its parameters, to the stream's sampler.

    After every training batch it takes the module's per-sample losses
    (``module.last_sample_losses``, which :class:`~pdeml.trainers.module.OperatorModule`
    records while ``record_sample_losses`` is set, as this callback does), finds the batch's
    stream indices and the parameters those samples were solved with, and calls
    :meth:`pdeml.datasets.samplers.Sampler.observe`. With the sampler's ``signal="first"``
    only a sample's first loss is reported: taken before any step on it, a held-out error.
    Added by :class:`OnlineDataModule`.
    """

    def __init__(self, dm: OnlineDataModule) -> None:
        self.dm = dm
        self.batches = self.unmatched = 0
        self.seen: set[int] = set()  # indices reported once (the sampler's signal "first")
        self.member: EnsembleMember | None = None  # a pool sampler's second model (sbal)

    def _pool_step(self, trainer: L.Trainer, module: L.LightningModule, batch: Any) -> None:
        """A pool sampler's work between optimizer steps: train the second ensemble member
        on this batch, then score the pools of the stream indices the feeder asks for next."""
        sampler, ds, step = self.dm.sampler, self.dm.train_set, trainer.global_step
        t0 = time.perf_counter()
        if step % sampler.member_every == 0:
            lr = trainer.optimizers[0].param_groups[0]["lr"] if trainer.optimizers else None
            self.member.train_step(module, batch, lr)
        sampler.add_seconds(time.perf_counter() - t0)
        feeder = None if ds is None else ds.feeder
        if feeder is None or step < sampler.min_steps:
            return
        with feeder.buffer.lock:
            start, stop = feeder.next_k, feeder.next_k + sampler.lookahead
        if feeder.max_samples is not None:
            stop = min(stop, feeder.max_samples)
        due = sampler.stale([feeder.index(k) for k in range(start, stop)], step)
        if due:
            self.score(module, due, step)

    def score(self, module: L.LightningModule, indices: list[int], step: int) -> None:
        """Score the pools of ``indices`` with the ensemble and let the sampler choose."""
        sampler, problem = self.dm.sampler, self.dm.problem
        s = self.dm.stream
        timed = timed_variables(problem)
        for index in indices:
            t0 = time.perf_counter()
            cands = sampler.candidates(index)
            drawn = [problem.stored_inputs(sample_rng(s["seed"], s["split"], index),
                                           sampler.to_params(u)) for u in cands]
            arrays = {k: np.stack([np.asarray(d[k]) for d in drawn]) for k in drawn[0]}
            x = torch.from_numpy(select_batch(arrays, self.dm.inputs, timed))
            unc = self.member.uncertainty(module, x.to(module.device))
            sampler.choose(index, cands, unc, step, time.perf_counter() - t0)

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if not hasattr(module, "record_sample_losses"):
            raise DatasetError(f"an active sampler needs per-sample training losses; "
                               f"{type(module).__name__} does not record them")
        module.record_sample_losses = True
        if self.dm.sampler.pool_based and self.member is None:
            self.member = EnsembleMember(module, self.dm.sampler.seed)

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        if self.member is not None:
            self._pool_step(trainer, module, batch)
        ds, losses = self.dm.train_set, getattr(module, "last_sample_losses", None)
        if ds is None or ds.feeder is None or losses is None:
            return
        indices = ds.indices_of(batch[0])
        self.batches += 1
        if indices is None or len(indices) != len(losses):
            self.unmatched += 1
            return
        first = self.dm.sampler.signal == "first"
        pairs = []
        for i, p, v in zip(indices, ds.feeder.params_of(indices), losses, strict=True):
            if p is None or (first and i in self.seen):
                continue
            pairs.append((p, float(v)))
            if first:
                self.seen.add(i)
        if pairs:
            self.dm.sampler.observe([p for p, _ in pairs], [v for _, v in pairs])


class StreamPace(L.Callback):
    """Releases a finite stream's samples over the optimizer steps (``pace``).

    After ``step`` of ``total`` optimizer steps the stream may propose its first
    ``n0 + ceil((n - n0) * min(1, step / (pace * total)))`` samples, with ``n`` the stream's
    ``max_samples`` and ``n0`` the buffer's watermark (needed before the first batch). The
    limit is a function of the step, so a resumed run continues the same schedule. Added by
    :class:`OnlineDataModule`.
    """

    def __init__(self, dm: OnlineDataModule) -> None:
        self.dm = dm

    def allowed(self, step: int, total: float) -> int:
        """Samples the stream may propose after ``step`` of ``total`` optimizer steps."""
        s = self.dm.stream
        n, n0 = int(s["max_samples"]), int(s["pace_start"])
        frac = min(1.0, step / max(1.0, s["pace"] * float(total)))
        return n0 + math.ceil((n - n0) * frac)

    def _apply(self, trainer: L.Trainer) -> None:
        ds = self.dm.train_set
        if ds is None:
            return
        n = self.allowed(trainer.global_step, trainer.estimated_stepping_batches)
        ds.allowed = max(n, ds.allowed or 0)
        if ds.feeder is not None:
            ds.feeder.allow(ds.allowed)

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._apply(trainer)

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        self._apply(trainer)


class EnsembleMember:
    """The second member of a pool sampler's 2-model ensemble (``sbal``): the trained
    operator's architecture, initialized from the sampler's seed, trained on the trainer's
    batches with the same loss and learning rate, and its disagreement with the trained
    model on candidate inputs (AL4PDE's ensemble, ``adapt_unc_to_loss``)."""

    def __init__(self, module: L.LightningModule, seed: int) -> None:
        import copy

        from pdeml.operators import build

        self.surrogate = copy.deepcopy(module.surrogate)  # the fitted normalizers
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed) + 7919)
            self.surrogate.model = build(module.model.config).to(module.device)
        hp = module.hparams
        self.opt = torch.optim.AdamW(self.surrogate.model.parameters(), lr=hp.lr,
                                     weight_decay=hp.weight_decay)
        self.loss_fn = module.loss_fn
        self.steps = 0

    def train_step(self, module: L.LightningModule, batch: Any, lr: float | None) -> float:
        """One optimizer step on ``batch`` (at the trainer's current ``lr``)."""
        x, y = batch[0], batch[1]
        self.surrogate.train()
        if lr is not None:
            for group in self.opt.param_groups:
                group["lr"] = lr
        with torch.enable_grad():
            loss = self.loss_fn(self.surrogate(x).float(), y.float())
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
        self.steps += 1
        return float(loss.detach())

    @torch.no_grad()
    def uncertainty(self, module: L.LightningModule, x: torch.Tensor,
                    chunk: int = 256) -> np.ndarray:
        """Per candidate: the members' mean relative L2 distance to the ensemble mean."""
        out = []
        for part in torch.split(x, chunk):
            a, b = module(part).float(), self.surrogate(part).float()
            mean = (a + b) / 2
            scale = mean.flatten(1).norm(dim=1).clamp_min(1e-12)
            dist = ((a - mean).flatten(1).norm(dim=1) + (b - mean).flatten(1).norm(dim=1)) / 2
            out.append((dist / scale).cpu().numpy())
        return np.concatenate(out)


def _quiet_worker_shutdown() -> None:
    """In a worker of a cluster pdeml is closing: no warning per cancelled running task."""
    logging.getLogger("distributed.worker.state_machine").setLevel(logging.ERROR)


def online_datamodule(online: dict[str, Any], **data: Any) -> OnlineDataModule:
    """The datamodule of a config's ``data`` section with ``online: {problem: ..., ...}``.

    ``online`` holds the stream settings; the other ``data`` keys (``val``, ``test``,
    ``batch_size``, ``inputs``, ...) go to the same :class:`OnlineDataModule`.
    """
    if "train" in data:
        raise DatasetError("give data.train (a file) or data.online (a stream), not both")
    if not isinstance(online, dict) or "problem" not in online:
        raise DatasetError("data.online must be a mapping with a problem, e.g. {problem: darcy}")
    return OnlineDataModule(**online, **data)
