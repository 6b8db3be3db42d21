"""WorkerSupervisor: a lost generator worker is replaced and its samples are redone.

The default variant works on the feeder (no Lightning); the Lightning runs are in
``tests/trainers/test_supervised_stream.py`` (slow).
"""

import os
import signal
import time

import pytest
from waiting import wait_until

from pdeml.datasets.stream import SampleBuffer, StreamFeeder
from pdeml.datasets.supervisor import WorkerSupervisor
from pdeml.datasets.writer import open_client
from pdeml.solvers.problems import DarcyFlow

distributed = pytest.importorskip("distributed")


@pytest.fixture
def one_worker():
    """pdeml's own LocalCluster (one single-threaded worker, forked from a preloaded server)."""
    client, cluster = open_client("local", 1)
    with client as c:
        yield c
    cluster.close()


def test_local_workers_start_with_torch_and_the_problems_loaded(one_worker):
    # A worker that ran no task yet: forked from the preloaded server, it already holds the
    # modules a generator task needs (a spawned interpreter would import them on the task).
    loaded = one_worker.run(lambda: sorted(m for m in ("torch", "pdeml.solvers.problems")
                                           if m in __import__("sys").modules))
    assert list(loaded.values()) == [["pdeml.solvers.problems", "torch"]]
    # ... and the restart after a SIGKILL is such a fork too.
    (pid,) = one_worker.run(os.getpid).values()
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if set(one_worker.run(os.getpid).values()) - {pid}:
                break
        except Exception:  # the worker is between processes
            pass
        time.sleep(0.1)
    loaded = one_worker.run(lambda: "torch" in __import__("sys").modules)
    assert list(loaded.values()) == [True]


def kill_only_worker(client, nanny_restarts):
    (pid,) = client.run(os.getpid).values()
    if not nanny_restarts:  # a nanny that gives up, whatever its restart time
        for nanny in client.cluster.workers.values():
            nanny.close_gracefully(reason="test: the nanny gives up")
    os.kill(pid, signal.SIGKILL)


def test_sigkilled_only_worker_is_replaced_and_no_sample_is_lost(one_worker, burnt_core):
    # A grace far beyond the test's timeouts: the replacement must start because the nanny
    # gave up, not because the grace ran out.
    sup = WorkerSupervisor(one_worker, grace=3600.0, interval=0.2).start()
    buf = SampleBuffer("fifo", capacity=4)
    f = StreamFeeder(one_worker, DarcyFlow(resolution=16, solver="direct"), buf, ["a"], ["u"],
                     chunk=2, max_in_flight=2)
    sup.subscribe(f.notify_lost)
    f.start()
    try:
        got = [buf.get(timeout=60)[0] for _ in range(6)]
        kill_only_worker(one_worker, nanny_restarts=False)
        t0 = time.perf_counter()
        got += [buf.get(timeout=180)[0] for _ in range(20)]
        recovery = time.perf_counter() - t0
        # The replacement can deliver every remaining sample before the supervisor's next
        # poll sees it join: wait for that poll instead of asserting at once.
        wait_until(lambda: sup.stats["rejoined"] >= 1, "the supervisor to see the new worker")
    finally:
        f.stop()
        sup.stop()
    assert burnt_core.poll() is None  # the core was busy throughout
    assert got == list(range(26))  # in order, nothing lost, nothing repeated
    assert sup.stats["lost"] == 1 and sup.stats["replaced"] == 1 and sup.stats["rejoined"] == 1
    assert [e["event"] for e in sup.events] == ["lost", "replace", "joined"]
    assert len(one_worker.nthreads()) == 1
    print(f"recovery with a busy core: {recovery:.1f} s")  # a figure, not a timed assertion


class FakeClient:
    """The three client calls a supervisor makes, over a worker set the test edits."""

    def __init__(self, workers):
        self.workers = dict(workers)  # address -> keys it processes

    def nthreads(self):
        return {w: 1 for w in self.workers}

    def processing(self):
        return {w: list(k) for w, k in self.workers.items()}

    def scheduler_info(self):
        return {"workers": {w: {"name": w} for w in self.workers}}


def test_supervisor_without_a_managed_cluster_reports_and_hands_over_keys():
    client = FakeClient({"tcp://a:1": [], "tcp://b:2": ["k1", "k2"]})
    sup = WorkerSupervisor(client, grace=0.0)  # (not started: the test calls poll itself)
    sup._workers, sup.target = set(client.workers), 2
    seen = []
    sup.subscribe(lambda worker, keys: seen.append((worker, sorted(keys))))
    sup.poll()
    del client.workers["tcp://b:2"]
    sup.poll()
    sup.poll()
    assert seen == [("tcp://b:2", ["k1", "k2"])] and sup.stats["lost"] == 1
    assert not sup.can_scale and sup.stats["replaced"] == 0
    assert [e["event"] for e in sup.events] == ["lost", "short"]  # said once, not each poll
    client.workers["tcp://c:3"] = []
    sup.poll()
    assert sup.events[-1]["event"] == "joined" and sup._short_since is None
    with pytest.raises(ValueError):
        WorkerSupervisor(client, target=0)
