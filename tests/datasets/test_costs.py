"""Generation costs: the ``<file>.cost.json`` sidecar (serial, resumed, Dask) and the stream's."""

import hashlib
import json

import numpy as np
import pytest

from pdeml.datasets import DatasetError, generate_split, writer
from pdeml.datasets.costs import COST_KEY, read_costs, sidecar_path
from pdeml.datasets.schema import write_arrays
from pdeml.solvers.problems import Burgers, DarcyFlow, Variable

distributed = pytest.importorskip("distributed")


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def check_records(doc, n, method, timing):
    """One record per sample, in order, with positive times; totals that add up."""
    samples = doc["samples"]
    assert [r["index"] for r in samples] == list(range(n)) and doc["n_samples"] == n
    assert all(r["wall_seconds"] > 0 and r["cpu_seconds"] > 0 for r in samples)
    assert {r["method"] for r in samples} == {method} and doc["methods"] == {method: n}
    assert {r["timing"] for r in samples} == {timing}
    assert doc["wall_seconds_total"] == pytest.approx(sum(r["wall_seconds"] for r in samples),
                                                      abs=1e-5)
    assert doc["cpu_seconds_total"] > 0 and doc["median_wall_seconds"] > 0
    assert doc["machine"]["cpu_model"] and doc["machine"]["n_threads"] >= 1
    assert sum(s["n_samples"] for s in doc["shards"]) == n


def test_a_generated_file_gets_one_cost_record_per_sample(tmp_path):
    path = generate_split(DarcyFlow(resolution=16), tmp_path / "train.h5", 5, seed=1, chunk=2,
                          progress=False)
    doc = read_costs(path)
    check_records(doc, 5, "direct", "shard_mean")  # a shard is one sorted sequence
    assert all(r["iterations"] == 0 for r in doc["samples"])
    assert (doc["problem"], doc["split"], doc["seed"], doc["chunk"]) == ("darcy", "train", 1, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train.h5", "train.h5.cost.json"]
    # a time stepper is timed sample by sample and counts its steps
    steps = generate_split(Burgers(resolution=32, final_time=0.05, n_snapshots=2),
                           tmp_path / "b.h5", 2, progress=False)
    doc = read_costs(steps)
    check_records(doc, 2, doc["samples"][0]["method"], "per_sample")
    assert "ETDRK4" in doc["samples"][0]["method"]
    assert all(r["iterations"] == 50 for r in doc["samples"])  # 0.05 / dt 1e-3


def test_read_costs_is_none_without_a_sidecar_and_refuses_a_foreign_one(tmp_path):
    path = write_arrays(tmp_path / "imported.h5", {"x": np.arange(3.0)},
                        {"u": (Variable(("x",)), np.zeros((2, 3)))}, {})
    assert read_costs(path) is None
    sidecar_path(path).write_text(json.dumps({"something": "else"}))
    with pytest.raises(DatasetError, match="not a pdeml cost record"):
        read_costs(path)


def interrupt_after(monkeypatch, target, name, n_calls):
    """Make ``target.name`` raise KeyboardInterrupt (a kill, not a failure) on call ``n_calls``."""
    real, calls = getattr(target, name), {"n": 0}

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n_calls:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(target, name, dying)
    return real


def test_a_resumed_job_keeps_the_costs_measured_before_the_kill(tmp_path, monkeypatch):
    def job(name):
        return generate_split(DarcyFlow(resolution=16), tmp_path / name, 11, seed=2, chunk=3,
                              progress=False)

    ref = job("ref.h5")
    real = interrupt_after(monkeypatch, writer, "_atomic_savez", 3)
    with pytest.raises(KeyboardInterrupt):
        job("job.h5")
    monkeypatch.setattr(writer, "_atomic_savez", real)
    parts = tmp_path / "job.h5.parts"
    kept = []
    for start in (0, 3):  # the two shards made before the kill
        with np.load(parts / f"shard_{start:09d}.npz") as npz:
            kept += json.loads(str(npz[COST_KEY]))["samples"]
    assert not sidecar_path(tmp_path / "job.h5").exists()  # only with the finished file
    out = job("job.h5")
    assert sha(out) == sha(ref)  # the costs never enter the HDF5 file
    doc = read_costs(out)
    check_records(doc, 11, "direct", "shard_mean")
    assert doc["samples"][:6] == kept  # measured then, not re-measured
    assert not parts.exists()


def test_a_kill_between_the_rename_and_the_sidecar_is_finished_by_a_rerun(tmp_path,
                                                                           monkeypatch):
    from pdeml.datasets import costs

    real = interrupt_after(monkeypatch, costs, "write_sidecar", 1)
    with pytest.raises(KeyboardInterrupt):
        generate_split(DarcyFlow(resolution=16), tmp_path / "t.h5", 4, chunk=2, progress=False)
    monkeypatch.setattr(costs, "write_sidecar", real)
    digest = sha(tmp_path / "t.h5")
    assert not sidecar_path(tmp_path / "t.h5").exists() and (tmp_path / "t.h5.parts").exists()
    generate_split(DarcyFlow(resolution=16), tmp_path / "t.h5", 4, chunk=2, progress=False)
    check_records(read_costs(tmp_path / "t.h5"), 4, "direct", "shard_mean")
    assert sha(tmp_path / "t.h5") == digest and not (tmp_path / "t.h5.parts").exists()


def test_overwrite_replaces_the_sidecar_and_a_failed_job_leaves_none(tmp_path):
    from faults import FaultyDarcy

    path = tmp_path / "t.h5"
    generate_split(DarcyFlow(resolution=16), path, 4, progress=False)
    generate_split(DarcyFlow(resolution=16), path, 3, progress=False, overwrite=True)
    assert read_costs(path)["n_samples"] == 3
    with pytest.raises(RuntimeError, match="simulated solver crash"):
        generate_split(FaultyDarcy("unused", "always", resolution=8), tmp_path / "f.h5", 2,
                       progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.h5", "t.h5.cost.json"]


def test_dask_generation_writes_the_sidecar_with_the_workers_records(tmp_path, client):
    problem = DarcyFlow(resolution=16, solver="gcrodr")  # recycled Krylov sequences
    serial = generate_split(problem, tmp_path / "s.h5", 7, seed=4, chunk=3, progress=False)
    dask = generate_split(problem, tmp_path / "d.h5", 7, seed=4, chunk=3, progress=False,
                          scheduler=client)
    assert sha(serial) == sha(dask)
    doc = read_costs(dask)
    check_records(doc, 7, "gcrodr", "shard_mean")
    assert all(r["iterations"] > 0 for r in doc["samples"])
    assert [s["first_index"] for s in doc["shards"]] == [0, 3, 6]
    ours = read_costs(serial)["samples"]
    assert [r["iterations"] for r in doc["samples"]] == [r["iterations"] for r in ours]


def test_streamed_samples_carry_their_costs_to_the_trainer_and_the_tee(tmp_path, client):
    from pdeml.datasets.stream import SampleBuffer, StreamFeeder, StreamTee

    problem = DarcyFlow(resolution=16, solver="direct")
    tee = StreamTee(tmp_path / "tee.h5", problem, seed=0, split="train")
    buf = SampleBuffer("fifo", capacity=16)
    feeder = StreamFeeder(client, problem, buf, ["a"], ["u"], chunk=3, max_samples=7, tee=tee)
    feeder.start()
    got = [buf.get(timeout=60)[0] for _ in range(5)]
    feeder.costs.drawn(got)
    feeder._thread.join(60)  # a finite stream: the feeder ends and finishes the tee
    feeder.stop()
    totals = feeder.costs.as_dict()
    assert totals["generated"]["n_samples"] == 7 and totals["consumed"]["n_samples"] == 5
    assert totals["generated"]["wall_seconds_total"] > totals["consumed"]["wall_seconds_total"]
    assert totals["generated"]["methods"] == {"direct": 7}
    doc = read_costs(tmp_path / "tee.h5")
    check_records(doc, 7, "direct", "shard_mean")
    assert doc["online_stream"] == 1
    assert not (tmp_path / "tee.h5.partial.cost.jsonl").exists()
