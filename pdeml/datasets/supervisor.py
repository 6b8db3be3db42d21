"""Keep a Dask generator pool at its size while an online stream runs.

A :class:`WorkerSupervisor` is a thread in the trainer process that polls the scheduler
(``client.nthreads()`` and ``client.processing()``, two small RPCs, every ``interval`` s):

- when a worker leaves, it logs which one and tells every subscribed
  :class:`~pdeml.datasets.stream.StreamFeeder` which task keys that worker held, so the feeder
  cancels those futures and resubmits their undelivered sample indices at once (new keys, so
  Dask's ``allowed-failures`` count of a task is not charged for a lost worker);
- while fewer than ``target`` workers are connected for longer than ``grace`` seconds (the
  nanny's restart failed, timed out, or is still importing torch on a loaded machine), it
  starts replacements: on a ``SpecCluster`` (``LocalCluster``) it scales down to the workers
  that are alive, which drops the specs of the dead ones, then back up to ``target``; on a
  cluster it does not own (a scheduler address) it can only log that the deployment must
  replace them.

When every nanny of a missing worker has already closed (it gave up restarting), the
replacement starts at once instead of after ``grace``: no restart is coming.

:func:`prefork_workers` makes every worker start (the first, a nanny's restart, a replacement)
cost a ``fork`` instead of a fresh interpreter importing torch: a lost worker's generation
resumes in under a second instead of the seconds (tens of seconds on a loaded machine) that
the imports take. :func:`~pdeml.datasets.writer.open_client` calls it for the ``LocalCluster``
it starts.

Every event goes to the ``pdeml.stream`` logger (WARNING, so stderr by default) and to
:attr:`WorkerSupervisor.events`.

Why a poll and not a scheduler plugin: a plugin runs inside the scheduler process, which on a
real cluster is another machine and would have to import pdeml; the poll needs only the client
the trainer already has, and its latency (``interval``) is far below a worker's start-up time.
Melissa (Meyer et al., ICML 2023) puts the same duty in its launcher, which resubmits a failed
simulation job to the batch scheduler; here the Dask cluster plays the batch scheduler.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

log = logging.getLogger("pdeml.stream")

# What a generator task imports (numpy, scipy, torch and pdeml's problems): a forked worker
# finds them loaded.
PRELOAD = ("distributed", "numpy", "scipy.sparse", "scipy.sparse.linalg", "h5py", "torch",
           "pdeml.datasets.writer", "pdeml.solvers.problems")


def prefork_workers(modules: tuple[str, ...] = PRELOAD) -> bool:
    """Start Dask worker processes of this process's nannies from a preloaded fork server.

    Sets ``distributed.worker.multiprocessing-method`` to ``forkserver`` and has the fork
    server import ``modules`` once, so a worker process is a fork of an interpreter that
    already holds torch and pdeml. Measured on the 2-core box at load ~2.5: a SIGKILLed
    worker's nanny had the next Darcy sample back 0.4 s after the kill, against 2.4-2.9 s with
    Dask's default ``spawn`` (``scripts/bench_online.py --parts fault`` has the full run).

    Only the default ``spawn`` is replaced (a method the user configured is kept), and only
    where the platform has a fork server (not on Windows). The fork server starts with the
    first worker, from this process's environment after Dask's ``pre-spawn-environ``
    (``OMP_NUM_THREADS=1`` ...) is applied, so workers keep one BLAS thread. Returns whether
    workers now start by forking.
    """
    import dask
    from distributed.utils import get_mp_context

    key = "distributed.worker.multiprocessing-method"
    method = dask.config.get(key)
    if method == "forkserver":
        return True
    if method != "spawn" or "forkserver" not in multiprocessing.get_all_start_methods():
        return False
    dask.config.set({key: "forkserver"})
    # Dask sets its own preload list on the first call (distributed and its packages); set
    # ours after it so that Dask does not overwrite it. A fork server already running (an
    # earlier cluster of this process) keeps what it has loaded, which is harmless.
    get_mp_context().set_forkserver_preload(list(modules))
    return True

LostCallback = Callable[[str, set], None]


class WorkerSupervisor:
    """Watch a Dask cluster's generator workers; replace lost ones and report their tasks.

    Parameters
    ----------
    client
        A ``distributed.Client``.
    cluster
        The cluster to scale (default ``client.cluster`` when the client was built from a
        cluster object). Anything without ``scale`` and ``worker_spec`` is only watched.
    target
        Workers to keep (default: the most seen connected, at least one).
    grace
        Seconds a shortfall may last (the nanny's own restart) before replacements start.
    interval
        Seconds between polls.
    start_timeout
        Seconds a replacement may take to connect (importing torch on a loaded machine is
        slow) before it is given up and replaced in turn.
    """

    def __init__(self, client: Any, cluster: Any = None, target: int | None = None,
                 grace: float = 10.0, interval: float = 0.5,
                 start_timeout: float = 120.0) -> None:
        if target is not None and target < 1:
            raise ValueError(f"target workers must be >= 1, got {target}")
        self.client = client
        self.cluster = cluster if cluster is not None else getattr(client, "cluster", None)
        self.target, self.grace, self.interval = target, float(grace), float(interval)
        self.start_timeout = float(start_timeout)
        self.events: list[dict[str, Any]] = []
        self.stats = {"lost": 0, "replaced": 0, "rejoined": 0, "resubmitted_keys": 0}
        self._subscribers: list[LostCallback] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._workers: set[str] = set()
        self._held: dict[str, set] = {}  # worker -> keys it processed at the last poll
        self._short_since: float | None = None
        self._scaled_at: float | None = None  # when replacements were last started

    @property
    def can_scale(self) -> bool:
        """Whether lost workers can be replaced (a cluster object this process manages)."""
        return all(hasattr(self.cluster, a) for a in ("scale", "worker_spec", "new_spec"))

    def subscribe(self, callback: LostCallback) -> None:
        """Call ``callback(worker_address, keys)`` whenever a worker holding tasks leaves."""
        with self._lock:
            self._subscribers.append(callback)

    def unsubscribe(self, callback: LostCallback) -> None:
        """Stop calling ``callback``."""
        with self._lock:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

    def start(self) -> WorkerSupervisor:
        """Take a first look at the cluster and start polling (once)."""
        if self._thread is None:
            self._workers = set(self.client.nthreads())
            if self.target is None:
                self.target = max(1, len(self._workers))
            self._thread = threading.Thread(target=self._run, name="pdeml-supervisor",
                                            daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling, after one last look that records workers that joined or left since
        the last poll (a replacement can finish the stream's work within one ``interval``:
        without it, :attr:`stats` would miss its join). That look starts nothing."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if not self._thread.is_alive():
                try:
                    self.poll(act=False)
                except Exception:  # the client is closing: the stats stay as they were
                    pass

    def _event(self, kind: str, message: str, **extra: Any) -> None:
        self.events.append({"time": time.time(), "event": kind, **extra})
        log.warning("generator workers: %s", message)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.poll()
            except Exception as err:  # the client is closing, or one RPC timed out
                if self._stop.is_set():
                    return
                log.debug("worker poll failed: %s", err)

    def poll(self, act: bool = True) -> None:
        """One look at the cluster (the thread calls this every ``interval`` seconds); with
        ``act=False`` it only records joins and losses (no replacement is started)."""
        now_workers = set(self.client.nthreads())
        processing = self.client.processing()
        for worker in sorted(self._workers - now_workers):
            self._lost(worker, set(self._held.get(worker, ())), len(now_workers))
        for worker in sorted(now_workers - self._workers):
            self.stats["rejoined"] += 1
            self._event("joined", f"{worker} joined ({len(now_workers)} of {self.target})",
                        worker=worker)
        self._workers = now_workers
        self._held = {w: set(keys) for w, keys in processing.items()}
        if act:
            self._keep_count(len(now_workers))

    def _lost(self, worker: str, keys: set, left: int) -> None:
        self.stats["lost"] += 1
        self._event("lost", f"{worker} lost with {len(keys)} task(s) in flight; {left} of "
                    f"{self.target} left", worker=worker, keys=len(keys))
        if not keys:
            return
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            callback(worker, keys)
        self.stats["resubmitted_keys"] += len(keys)

    def _nannies_gave_up(self) -> bool:
        """Whether fewer nannies than ``target`` are still running (the rest closed, so no
        restart is coming and waiting ``grace`` would only stall the stream)."""
        if not self.can_scale:
            return False
        try:
            nannies = list(self.cluster.workers.values())
        except Exception:  # the cluster is closing
            return False
        alive = sum(getattr(getattr(n, "status", None), "name", "") not in _GONE
                    for n in nannies)
        return alive < (self.target or 1)

    def _keep_count(self, n: int) -> None:
        if n >= self.target:
            self._short_since = self._scaled_at = None
            if (n > self.target and self.stats["replaced"] and self.can_scale
                    and len(self.cluster.worker_spec) > self.target):
                # A slow nanny came back after its replacement started: trim the surplus
                # (scale() drops a spec still unconnected first, else the newest one).
                self._event("trim", f"{n} of {self.target} connected: retiring the surplus")
                self.cluster.loop.add_callback(self.cluster.scale, self.target)
            return
        now = time.monotonic()
        if self._short_since is None:
            self._short_since = now
        if now - self._short_since < self.grace and not self._nannies_gave_up():
            return
        if self._scaled_at is not None and now - self._scaled_at < self.start_timeout:
            return  # replacements are starting (importing torch on a loaded machine is slow)
        self._scaled_at = now
        if not self.can_scale:
            self._event("short", f"{n} of {self.target} connected for {self.grace:.0f} s; "
                        "the cluster is not managed here, its deployment must replace them")
            return
        self.stats["replaced"] += self.target - n
        self._event("replace", f"{n} of {self.target} connected for {self.grace:.0f} s "
                    f"(the nanny did not bring them back): starting {self.target - n} "
                    "new worker process(es)", alive=n)
        self.cluster.loop.add_callback(_replace, self.cluster, self.target - n)


_GONE = {"closing", "closed", "failed", "closing_gracefully"}


def _replace(cluster: Any, missing: int) -> None:
    """On the cluster's event loop: drop the specs of closed nannies, add ``missing`` new ones.

    A nanny that is still restarting its worker is left alone (closing it would lose a worker
    that may be seconds from connecting; the surplus is trimmed once it does). A new spec
    gets a name no process has had: ``SpecCluster.scale`` would reuse a dead worker's name,
    which still maps to its closed nanny, and then start nothing.
    """
    for name, nanny in list(cluster.workers.items()):
        if getattr(getattr(nanny, "status", None), "name", "") in _GONE:
            cluster.worker_spec.pop(name, None)
    for _ in range(missing):
        cluster.worker_spec[f"pdeml-{uuid.uuid4().hex[:8]}"] = cluster.new_spec
    cluster.scale(len(cluster.worker_spec))  # no resize: closes the dead, starts the new
