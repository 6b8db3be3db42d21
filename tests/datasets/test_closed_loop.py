"""The closed loop, online: workers receive the trainer's surrogate; throughput is logged."""

import csv
import inspect
import json
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
import torch

from pdeml.datasets.closed_loop import (
    ClosedLoop,
    GenerationMeter,
    GenerationMonitor,
    compute_with_surrogate,
    state_digest,
    worker_surrogate,
)
from pdeml.datasets.online import OnlineDataModule
from pdeml.datasets.stream import compute_timed
from pdeml.datasets.writer import compute_samples
from pdeml.operators import FNO
from pdeml.solvers.problems import make_problem
from pdeml.trainers import OperatorModule
from pdeml.trainers.fit import train

ITERATIVE = {"resolution": 16, "solver": "gcrodr", "rtol": 1e-8}
NET = {"n_modes": [4, 4], "hidden_channels": 8, "n_layers": 2}


def test_off_by_default_and_bad_settings_are_one_line_errors(tmp_path):
    assert inspect.signature(OnlineDataModule).parameters["surrogate_every"].default == 0
    assert OnlineDataModule("darcy", {"resolution": 16, "solver": "direct"}).closed_loop is None
    assert OnlineDataModule("darcy", ITERATIVE, surrogate_every=5).closed_loop.every == 5
    cases = [
        ({"surrogate_every": -1}, "integer >= 0"),
        ({"surrogate_every": 1.5}, "integer >= 0"),
        ({"surrogate_every": "10"}, "integer >= 0"),
        ({"surrogate_every": True}, "integer >= 0"),
        ({"surrogate_every": 2, "surrogate_smooth": -1}, "integer >= 0"),
        ({"surrogate_every": 2, "num_workers": 1}, "num_workers=0"),
        ({"surrogate_every": 2, "outputs": ["a"]}, "outputs with"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message) as err:
            OnlineDataModule("darcy", ITERATIVE, **kwargs)
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="linear problem"):
        OnlineDataModule("burgers", {"resolution": 32}, surrogate_every=2)
    with pytest.raises(ValueError, match="iterative solver"):
        OnlineDataModule("darcy", {"resolution": 16, "solver": "direct"}, surrogate_every=2)
    # complex systems smooth too (symmetric Gauss-Seidel in complex arithmetic)
    dm = OnlineDataModule("helmholtz", {"resolution": 16, "solver": "gcrodr"},
                          surrogate_every=2, surrogate_smooth=1)
    assert dm.closed_loop.smooth == 1
    # the config path gives the same error
    cfg = {"data": {"online": {"problem": "darcy", "options": ITERATIVE, "surrogate_every": -3}}}
    with pytest.raises(ValueError, match="surrogate_every must be an integer"):
        train(cfg, tmp_path / "run")


def _surrogate():
    torch.manual_seed(0)
    return OperatorModule(FNO(in_channels=1, out_channels=1, **NET)).surrogate


def test_worker_builds_once_then_loads_each_version_and_solves_meet_rtol():
    module = _surrogate()
    state = {k: v.clone() for k, v in module.state_dict().items()}
    payload = {"id": "test-worker-1", "module": module, "state": state, "version": 1,
               "step": 3, "digest": state_digest(state), "smooth": 2, "inputs": ["a"],
               "outputs": ["u"]}
    held, info = worker_surrogate(payload)
    assert info["rebuilt"] and info["loaded"] and info["digest"] == payload["digest"]
    assert held is not module  # the worker's own copy
    held2, info = worker_surrogate(payload)
    assert held2 is held and not info["rebuilt"] and not info["loaded"]
    state2 = {k: v + 0.01 if v.is_floating_point() else v for k, v in state.items()}
    payload2 = {**payload, "state": state2, "version": 2, "digest": state_digest(state2)}
    held3, info = worker_surrogate(payload2)
    assert held3 is held and not info["rebuilt"] and info["loaded"]
    assert info["digest"] == state_digest(state2) != state_digest(state)

    problem = make_problem("darcy", **ITERATIVE)
    out, seconds, cost = compute_with_surrogate(problem, 3, "train", [0, 1, 2], payload2)
    assert problem.surrogate is None  # dropped after the task
    assert np.all(out["solver_residual"] <= 1e-8) and np.all(out["solver_iterations"] > 0)
    sur = cost["surrogate"]
    assert sur["version"] == 2 and sur["calls"] == 3 and sur["seconds"] > 0
    assert [r["iterations"] for r in cost["samples"]] == list(out["solver_iterations"])
    cold = compute_samples(problem, 3, "train", [0, 1, 2])  # same samples, other iterates
    np.testing.assert_array_equal(out["a"], cold["a"])
    err = np.linalg.norm(out["u"] - cold["u"]) / np.linalg.norm(cold["u"])
    assert err < 1e-5


class _Client:
    """Stands in for a Dask client: scatter returns the objects themselves."""

    def __init__(self):
        self.scattered = []

    def scatter(self, data, broadcast=False, hash=True):
        assert broadcast and not hash
        self.scattered.append(data[0])
        return data


def test_monitor_publishes_every_k_steps_at_resume_and_not_at_the_end():
    loop = ClosedLoop(5, ["a"], ["u"], smooth=2)
    assert loop.task() == (compute_timed, ())  # nothing published yet: the plain solve
    client = _Client()
    dm = SimpleNamespace(closed_loop=loop, client=client, train_set=SimpleNamespace(meter=None))
    module = SimpleNamespace(surrogate=_surrogate())
    trainer = SimpleNamespace(global_step=7, max_steps=20, log_every_n_steps=5)
    monitor = GenerationMonitor(dm)
    monitor.on_train_start(trainer, module)  # a resumed run publishes at once
    assert (loop.version, loop.step) == (1, 7)
    for step in (8, 10, 10, 13, 15, 20):
        trainer.global_step = step
        monitor.on_train_batch_end(trainer, module, None, None, 0)
    assert [p["step"] for p in loop.published] == [7, 10, 15]  # not twice, not at the end
    # the module's structure travels once, its weights at each publication
    assert isinstance(client.scattered[0], torch.nn.Module)
    assert sum(isinstance(x, dict) for x in client.scattered) == 3 == len(client.scattered) - 1
    fn, (payload,) = loop.task()
    assert fn is compute_with_surrogate and payload["version"] == 3 and payload["step"] == 15
    assert payload["digest"] == state_digest(module.surrogate.state_dict())
    with pytest.raises(ValueError, match="surrogate"):
        GenerationMonitor(dm)._publish(trainer, SimpleNamespace())


def test_generation_meter_windows_and_quarters():
    now = [100.0]
    meter = GenerationMeter(clock=lambda: now[0])

    def deliver(t, n, iters, sur=None):
        now[0] = 100.0 + t
        records = [{"wall_seconds": 0.1, "iterations": iters} for _ in range(n)]
        cost = {"samples": records, **({"surrogate": sur} if sur else {})}
        meter.add(records, cost, blocked=0.0)

    deliver(0.0, 2, 20)
    for t in range(1, 9):  # 2 samples/s in the first half, 4 in the second
        deliver(t, 2 if t <= 4 else 4, 20 if t <= 4 else 10,
                None if t <= 4 else {"seconds": 0.04, "version": 1, "digest": "d1"})
    window = meter.window(step=10)
    assert window["samples"] == 26 and window["seconds"] == 8.0 and window["step"] == 10
    q = meter.quarters()
    assert [x["samples"] for x in q] == [4, 4, 8, 8]
    assert [x["samples_per_s"] for x in q] == [2.0, 2.0, 4.0, 4.0]
    assert q[0]["iterations_per_sample"] == 20 and q[3]["iterations_per_sample"] == 10
    assert q[0]["surrogate_share"] == 0 and q[3]["surrogate_share"] == 1
    assert q[3]["surrogate_seconds_per_sample"] == pytest.approx(0.01)
    summary = meter.summary()
    assert summary["last_over_first_quarter"] == 2.0
    assert summary["surrogate_versions"] == {"1": "d1"}
    assert summary["windows"] == [window]


def test_online_closed_loop_end_to_end(tmp_path):
    tee = tmp_path / "tee.h5"
    cfg = {
        "seed": 0,
        "data": {"online": {"problem": "darcy", "options": ITERATIVE, "buffer": "fifo",
                            "capacity": 16, "seed": 1, "batches_per_epoch": 6, "n_workers": 1,
                            "chunk": 2, "norm_samples": 16, "surrogate_every": 3,
                            "tee": str(tee)},
                 "batch_size": 4},
        "model": {"name": "FNO", **NET},
        "module": {"lr": 1e-2},
        "trainer": {"max_epochs": 3, "enable_progress_bar": False, "log_every_n_steps": 3},
    }
    train(cfg, tmp_path / "run")
    gen = json.loads((tmp_path / "run" / "metrics.json").read_text())["cost"]["generation"]
    published = {p["version"]: p["digest"] for p in gen["surrogate_published"]}
    assert sorted(p["step"] for p in gen["surrogate_published"]) == [3, 6, 9, 12, 15, 18]
    (tp,) = gen["throughput"]
    seen = {int(v): d for v, d in tp["surrogate_versions"].items()}
    # the workers loaded exactly the weights the trainer published, several versions of them
    assert len(seen) >= 2 and all(published[v] == d for v, d in seen.items())
    assert len(set(seen.values())) == len(seen)
    fields = {"samples", "seconds", "samples_per_s", "worker_seconds_per_sample",
              "iterations_per_sample", "surrogate_seconds_per_sample", "surrogate_share",
              "surrogate_version", "blocked_seconds"}
    assert len(tp["quarters"]) == 4 and all(fields <= set(q) for q in tp["quarters"])
    assert tp["quarters"][3]["surrogate_share"] > 0 and tp["last_over_first_quarter"] > 0
    assert [w["step"] for w in tp["windows"]][:3] == [3, 6, 9]
    assert all(fields | {"step", "t"} <= set(w) for w in tp["windows"])
    with open(tmp_path / "run" / "logs" / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    logged = [r for r in rows if r.get("gen_samples_per_s")]
    assert logged and all(float(r["gen_iterations_per_sample"]) > 0 for r in logged)
    assert any(float(r["gen_surrogate_ms_per_sample"]) > 0 for r in logged)
    with h5py.File(tee) as f:  # every streamed sample, surrogate or not, meets rtol
        assert len(f["solver_residual"]) >= 72
        assert np.all(f["solver_residual"][:] <= 1e-8)
