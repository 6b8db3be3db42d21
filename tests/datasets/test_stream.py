"""Online streaming: selectors, buffers, and the Dask feeder (order, strides, resume, faults)."""

import threading
import time

import numpy as np
import pytest
import torch
from faults import FaultyDarcy, SlowDarcy

from pdeml.datasets import H5Dataset
from pdeml.datasets.schema import write_arrays
from pdeml.datasets.stream import (
    SampleBuffer,
    StreamError,
    StreamExhausted,
    StreamFeeder,
    StreamTee,
    select_batch,
)
from pdeml.datasets.writer import compute_samples
from pdeml.solvers.problems import DarcyFlow, Variable

distributed = pytest.importorskip("distributed")

TINY = {"resolution": 16, "solver": "direct"}


def item(i):
    return i, torch.full((1, 2, 2), float(i)), torch.full((1, 2, 2), -float(i))


def drain(buffer, n, timeout=30.0):
    return [buffer.get(timeout=timeout)[0] for _ in range(n)]


# -- selectors --------------------------------------------------------------------------------

def test_selectors_on_arrays_match_the_hdf5_reader(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"w": rng.normal(size=(3, 5, 4, 4)), "a": rng.normal(size=(3, 4, 4))}
    coords = {"time": np.arange(5.0), "y": np.arange(4.0), "x": np.arange(4.0)}
    variables = {"w": (Variable(("time", "y", "x")), arrays["w"]),
                 "a": (Variable(("y", "x")), arrays["a"])}
    path = write_arrays(tmp_path / "t.h5", coords, variables, {})
    timed = {"w": True, "a": False}
    for inputs, outputs in ((["a", "w[0]"], ["w[-1]"]), (["w[0:3]"], ["w[3:5]", "a"])):
        ds = H5Dataset(path, inputs, outputs)
        x, y = select_batch(arrays, inputs, timed), select_batch(arrays, outputs, timed)
        for k in range(3):
            assert torch.equal(torch.from_numpy(x[k]), ds[k][0])
            assert torch.equal(torch.from_numpy(y[k]), ds[k][1])
    with pytest.raises(ValueError, match="no time axis"):
        select_batch(arrays, ["a[0]"], timed)
    with pytest.raises(ValueError, match="out of range"):
        select_batch(arrays, ["w[7]"], timed)


# -- buffers ----------------------------------------------------------------------------------

def test_fifo_keeps_order_and_blocks_the_producer_when_full():
    buf = SampleBuffer("fifo", capacity=3)
    for i in range(3):
        assert buf.put(item(i))
    done = threading.Event()
    producer = threading.Thread(target=lambda: (buf.put(item(3)), done.set()))
    producer.start()
    assert not done.wait(0.3)  # full: the producer waits
    assert drain(buf, 1) == [0]
    assert done.wait(5)
    producer.join()
    assert drain(buf, 3) == [1, 2, 3]


def test_firo_draws_each_sample_once_in_random_order_above_the_watermark():
    buf = SampleBuffer("firo", capacity=64, watermark=8, seed=1)
    for i in range(7):
        buf.put(item(i))
    with pytest.raises(StreamError, match="no sample"):
        buf.get(timeout=0.3)  # below the watermark: waits, then a clear error
    for i in range(7, 40):
        buf.put(item(i))
    out = drain(buf, 32)
    assert len(buf) == 8 and out != sorted(out)
    buf.close()
    out += drain(buf, 8)  # a finished stream drains below the watermark
    assert sorted(out) == list(range(40))
    with pytest.raises(StreamExhausted):
        buf.get(timeout=1)


def test_reservoir_reuses_samples_and_evicts_only_seen_ones():
    buf = SampleBuffer("reservoir", capacity=4, watermark=4, seed=0)
    for i in range(4):
        buf.put(item(i))
    stop = threading.Event()
    blocked = threading.Thread(target=lambda: buf.put(item(4), stop))
    blocked.start()
    time.sleep(0.3)
    assert blocked.is_alive()  # full of unseen samples: nothing may be evicted
    first = buf.get(timeout=1)[0]
    blocked.join(5)
    assert not blocked.is_alive() and len(buf) == 4
    held = {i for i, _, _ in buf._items}
    assert first not in held and 4 in held  # the drawn sample made room
    draws = drain(buf, 40)
    assert len(set(draws)) < len(draws)  # draws repeat: samples are reused


def test_buffer_state_round_trip_continues_the_same_draws():
    a = SampleBuffer("firo", capacity=32, watermark=4, seed=3)
    for i in range(20):
        a.put(item(i))
    drain(a, 5)
    b = SampleBuffer("firo", capacity=32, watermark=4, seed=99)
    b.load_state_dict(a.state_dict())
    assert drain(a, 10) == drain(b, 10)
    x = b.get(timeout=1)
    assert torch.equal(x[1], torch.full((1, 2, 2), float(x[0])))


def test_failed_producer_is_an_error_not_a_hang():
    buf = SampleBuffer("fifo", capacity=4)
    threading.Timer(0.2, buf.close, kwargs={"error": "generator died"}).start()
    # The producer's message, not the get's own timeout message, proves it did not hang
    # (no elapsed-time bound: a loaded machine may run the timer thread late).
    with pytest.raises(StreamError, match="generator died"):
        buf.get(timeout=600)


@pytest.mark.parametrize("kwargs", [{"kind": "lifo"}, {"capacity": 0},
                                    {"capacity": 4, "watermark": 5}])
def test_bad_buffer_settings(kwargs):
    with pytest.raises(ValueError):
        SampleBuffer(**kwargs)


# -- the feeder on a Dask cluster ---------------------------------------------------------------

def feeder(client, problem=None, kind="fifo", capacity=64, **kw):
    problem = problem or DarcyFlow(**TINY)
    buf = SampleBuffer(kind, capacity=capacity, watermark=kw.pop("watermark", None))
    return StreamFeeder(client, problem, buf, ["a"], ["u"], **{"chunk": 3, **kw})


def test_stream_equals_the_written_file_sample_for_sample(client, darcy_dir):
    f = feeder(client, seed=0).start()  # darcy_dir/train.h5: DarcyFlow(16), seed 0
    try:
        got = [f.buffer.get(timeout=60) for _ in range(10)]
    finally:
        f.stop()
    ds = H5Dataset(darcy_dir / "train.h5", ["a"], ["u"])
    assert [i for i, _, _ in got] == list(range(10))
    for i, x, y in got:
        assert torch.equal(x, ds[i][0]) and torch.equal(y, ds[i][1])


def test_auto_chunk_sizes_tasks_by_compute_time_and_keeps_the_stream(client, darcy_dir):
    fast = feeder(client, seed=0, chunk="auto").start()  # Darcy 16²: a few ms per sample
    try:
        got = [fast.buffer.get(timeout=60) for _ in range(120)]
    finally:
        fast.stop()
    ds = H5Dataset(darcy_dir / "train.h5", ["a"], ["u"])
    assert [i for i, _, _ in got] == list(range(120))  # the chunk does not change the stream
    for i, x, y in got[:len(ds)]:
        assert torch.equal(x, ds[i][0]) and torch.equal(y, ds[i][1])
    assert fast.stats["chunk"] > 4  # grown past the old fixed default
    slow = feeder(client, SlowDarcy(0.4, **TINY), chunk="auto").start()
    try:
        assert drain(slow.buffer, 4, timeout=60) == [0, 1, 2, 3]
    finally:
        slow.stop()
    assert slow.stats["chunk"] == 1  # a sample already takes longer than a task should


@pytest.mark.parametrize("chunk", [0, -2, 1.5, "big", True])
def test_bad_chunk_is_a_one_line_error(chunk):
    from pdeml.datasets.online import OnlineDataModule

    with pytest.raises(ValueError, match="online chunk must be a positive integer or 'auto'"):
        OnlineDataModule("darcy", {"resolution": 8}, chunk=chunk)


def test_strided_streams_are_disjoint(client):
    fs = [feeder(client, stream_id=r, n_streams=2, max_samples=6).start() for r in range(2)]
    try:
        got = [drain(f.buffer, 6, timeout=60) for f in fs]
    finally:
        for f in fs:
            f.stop()
    assert got == [[0, 2, 4, 6, 8, 10], [1, 3, 5, 7, 9, 11]]
    with pytest.raises(StreamExhausted):
        fs[0].buffer.get(timeout=5)


def test_resumed_feeder_continues_the_same_stream(client):
    a = feeder(client, capacity=8).start()
    first = drain(a.buffer, 10, timeout=60)
    time.sleep(0.5)  # let the buffer fill and tasks be in flight
    state = a.state_dict()
    a.stop()
    assert state["pending"] or state["buffer"]["index"]
    b = feeder(client, capacity=8)
    b.load_state_dict(state)
    b.start()
    try:
        rest = drain(b.buffer, 20, timeout=60)
    finally:
        b.stop()
    assert first + rest == list(range(30))


def task_timeout_margin(client, problem, factor=20.0, floor=3.0):
    """A task timeout far above what a healthy task takes on this machine now.

    Measured, not assumed: a fixed 3 s timed out healthy tasks on a loaded machine, which then
    counted as extra timeouts. The slowest of three chunk-sized tasks, submit to result (the
    cluster's queueing and transfer included), times ``factor``.
    """
    slowest = 0.0
    for k in range(3):
        t0 = time.monotonic()
        client.submit(compute_samples, problem, 0, "train", [3 * k, 3 * k + 1, 3 * k + 2],
                      pure=False).result()
        slowest = max(slowest, time.monotonic() - t0)
    return max(floor, factor * slowest)


@pytest.mark.parametrize("mode", ["raise", "exit", "hang"])
def test_crashed_killed_or_hung_tasks_are_retried(client, tmp_path, mode):
    trigger = tmp_path / "fault"
    problem = FaultyDarcy(str(trigger), mode, **TINY)
    timeout = task_timeout_margin(client, DarcyFlow(**TINY))
    f = feeder(client, problem, task_timeout=timeout).start()
    try:
        got = drain(f.buffer, 6, timeout=60)
        trigger.touch()  # the next task to run claims the fault
        got += drain(f.buffer, 30, timeout=120)
    finally:
        f.stop()
    assert (tmp_path / "fault.claimed").exists()
    assert got == list(range(36))
    if mode == "hang":
        assert f.stats["timeouts"] == 1 and f.stats["resubmitted"] == 1


def test_permanent_failure_stops_training_with_a_message(client, tmp_path):
    problem = FaultyDarcy(str(tmp_path / "unused"), "always", **TINY)
    f = feeder(client, problem, retries=0, max_attempts=1).start()
    # the solver's message (not the get's timeout) proves the stream stopped on the failure
    with pytest.raises(StreamError, match="simulated solver crash"):
        f.buffer.get(timeout=600)
    f.stop()


def test_tee_writes_the_stream_to_a_readable_file(client, tmp_path):
    problem = DarcyFlow(**TINY)
    tee = StreamTee(tmp_path / "tee.h5", problem, seed=0, split="train")
    f = feeder(client, problem, tee=tee, max_samples=7)
    f.start()
    got = drain(f.buffer, 7, timeout=60)
    f.stop()
    ds = H5Dataset(tmp_path / "tee.h5", ["a"], ["u"])
    ref = compute_samples(problem, 0, "train", range(7))
    assert got == list(range(7)) and len(ds) == 7
    assert np.array_equal(ds[6][1].numpy()[0], ref["u"][6].astype(np.float32))


def test_a_lost_workers_tasks_are_resubmitted_at_once(client):
    f = feeder(client, capacity=6).start()
    try:
        got = drain(f.buffer, 4, timeout=60)
        with f.buffer.lock:
            keys = {t.future.key for t in f._inflight if t.future is not None}
        assert keys
        f.notify_lost("tcp://gone:1", keys)  # as a WorkerSupervisor reports a lost worker
        got += drain(f.buffer, 26, timeout=60)
    finally:
        f.stop()
    assert got == list(range(30))  # nothing lost, nothing repeated
    # the head task may have been delivered before the feeder's turn; the others are redone
    assert 1 <= f.stats["lost_worker_tasks"] == f.stats["resubmitted"] <= len(keys)
