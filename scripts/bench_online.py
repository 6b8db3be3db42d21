"""Online training benchmark: Melissa's experiment at equal optimizer steps, throughput, faults.

Parts (``--parts``, all by default):

``melissa``
    As in Meyer et al. (ICML 2023): the same model, optimizer, schedule and number of
    optimizer steps, trained offline on a fixed dataset (``--offline-size`` samples written to
    HDF5 first, many epochs) and online on a stream of fresh samples through a ``fifo``,
    ``firo`` and ``reservoir`` buffer, on Darcy and on Burgers (time-dependent). Generation
    runs in Dask worker processes; the trainer's CPU seconds (its main thread, test
    evaluations excluded) show that both sides get the same training compute. The test
    relative L2 is recorded every ``--eval-every`` steps (a PNG of error vs samples seen).
``wall``
    The equal-wall-time comparison, labelled as such: the offline run's whole wall time
    (generating its dataset + training) is the budget of an online ``firo`` run. On a machine
    whose generators share the trainer's cores this measures the machine, not the method.
``e2e`` (not in the default parts)
    One pass over ``--n-fresh`` fresh samples: online vs generating them to HDF5 first and
    then training (wall time), and the share of time the trainer waits on data.
``throughput``
    Samples/s into the trainer with a near-free model: in-memory tensors, HDF5 read lazily,
    and the stream from 1 and 2 LocalCluster workers and from one external ``dask worker``
    process connected to a scheduler address (how a cluster is attached). For sizing a
    cluster: one worker's generation rate alone (one large task) and what the stream delivers
    from it into a buffer with no trainer, at ``chunk`` 1, 4 and 16 samples per task and
    ``auto`` (sized from the workers' compute times).
``fault``
    The only generator worker SIGKILLed mid-run (its nanny restarting it, and a nanny that
    gives up so that the supervisor must start a replacement): the longest wait of the
    trainer for a batch, the extra data-wait over an undisturbed run, and whether every
    sample index arrived exactly once.

Writes JSON (``--out``), a PNG next to it, and prints a Markdown table::

    OPENBLAS_NUM_THREADS=1 python scripts/bench_online.py                 # ~20 min, 2 cores
    OPENBLAS_NUM_THREADS=1 python scripts/bench_online.py --quick         # smoke run
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from pdeml.datasets import H5Dataset, PDEDataModule, generate_split
from pdeml.datasets.online import DataWaitMonitor, OnlineDataModule
from pdeml.operators import FNO
from pdeml.solvers.problems import make_problem
from pdeml.trainers import OperatorModule

BUFFERS = ("fifo", "firo", "reservoir")


def problems(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """Problem, selectors and model of each case (small enough for 2 shared cores)."""
    return {
        "darcy": {"options": {"resolution": args.resolution, "solver": "direct"},
                  "inputs": ["a"], "outputs": ["u"], "offline": args.offline_size,
                  "buffers": args.buffers,
                  "net": {"n_modes": (args.modes, args.modes), "hidden_channels": 16,
                          "n_layers": 4}},
        # nu = 0.1 to t = 0.25: steepening without shocks the 128-point solver cannot hold.
        "burgers": {"options": {"resolution": 64, "viscosity": 0.1, "solver_resolution": 128,
                                "n_terms": 33, "final_time": 0.25, "dt": 1e-2,
                                "n_snapshots": 1},
                    "offline": args.burgers_offline_size, "buffers": args.burgers_buffers,
                    "inputs": ["u0"], "outputs": ["u[-1]"],
                    "net": {"n_modes": (16,), "hidden_channels": 24, "n_layers": 4}},
    }


# ---------------------------------------------------------------------------------------------
# Callbacks
# ---------------------------------------------------------------------------------------------

class Clock(L.Callback):
    """Trainer CPU (main thread, test evaluations excluded), process CPU and wall time."""

    def __init__(self) -> None:
        self.eval_cpu = 0.0
        self.out: dict[str, float] = {}

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._t = (time.thread_time(), time.process_time(), time.perf_counter())

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        thread, proc, wall = self._t
        self.out = {"trainer_cpu_s": time.thread_time() - thread - self.eval_cpu,
                    "process_cpu_s": time.process_time() - proc,
                    "train_wall_s": time.perf_counter() - wall}


class TestCurve(L.Callback):
    """Test relative L2 every ``every`` optimizer steps and at the end."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, every: int, clock: Clock) -> None:
        self.x, self.y, self.every, self.clock = x, y, every, clock
        self.curve: list[tuple[int, float]] = []

    def _eval(self, trainer: L.Trainer, module: Any) -> None:
        t0 = time.thread_time()
        was_training = module.training
        module.eval()
        with torch.no_grad():
            errs = [module.rel_l2(module(x), y) * len(x)
                    for x, y in zip(self.x.split(64), self.y.split(64), strict=True)]
        module.train(was_training)
        self.curve.append((trainer.global_step, float(sum(errs) / len(self.x))))
        self.clock.eval_cpu += time.thread_time() - t0

    def on_train_batch_end(self, trainer: L.Trainer, module: Any, *args: Any) -> None:
        if trainer.global_step % self.every == 0:
            self._eval(trainer, module)

    def on_train_end(self, trainer: L.Trainer, module: Any) -> None:
        if not self.curve or self.curve[-1][0] != trainer.global_step:
            self._eval(trainer, module)


class Deadline(L.Callback):
    """Stop once the wall clock passes ``deadline`` (``time.perf_counter``)."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if time.perf_counter() >= self.deadline:
            trainer.should_stop = True


class MaxWait(DataWaitMonitor):
    """DataWaitMonitor that also keeps the longest single wait for a batch."""

    def __init__(self) -> None:
        super().__init__()
        self.longest = 0.0

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        before = self.wait
        super().on_train_batch_start(trainer, module, batch, batch_idx)
        self.longest = max(self.longest, self.wait - before)


# ---------------------------------------------------------------------------------------------
# One training run
# ---------------------------------------------------------------------------------------------

def fit(dm: L.LightningDataModule, args: argparse.Namespace, case: dict[str, Any],
        steps: int | None, test: tuple[torch.Tensor, torch.Tensor] | None = None,
        extra: list[L.Callback] | None = None, net: dict[str, Any] | None = None
        ) -> dict[str, Any]:
    """Train ``steps`` optimizer steps (or until a Deadline in ``extra``); the figures."""
    L.seed_everything(0, verbose=False)
    kw = net or case["net"]
    module = OperatorModule(FNO(in_channels=1, out_channels=1, **kw), lr=args.lr,
                            scheduler="none" if steps is None else "cosine")
    clock, wait = Clock(), MaxWait()
    callbacks: list[L.Callback] = [clock, wait, *(extra or [])]
    curve = TestCurve(*test, args.eval_every, clock) if test is not None else None
    if curve is not None:
        callbacks.append(curve)
    trainer = L.Trainer(max_steps=steps if steps is not None else -1, max_epochs=-1,
                        accelerator="cpu", devices=1, logger=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        enable_checkpointing=False, num_sanity_val_steps=0,
                        limit_val_batches=0, callbacks=callbacks)
    trainer.fit(module, dm)
    out = {**clock.out, "steps": trainer.global_step, "wait_fraction": wait.fraction,
           "wait_s": wait.wait, "longest_wait_s": wait.longest,
           "samples_drawn": trainer.global_step * args.batch_size}
    if curve is not None:
        out["curve"] = curve.curve
        out["test_l2"] = curve.curve[-1][1]
    log = getattr(getattr(dm, "train_set", None), "index_log", None)
    if log:
        flat = sum(log, [])
        out["unique_samples"] = len(set(flat))
    return out


def online_dm(args: argparse.Namespace, name: str, case: dict[str, Any], **kw: Any
              ) -> OnlineDataModule:
    base = {"inputs": case["inputs"], "outputs": case["outputs"],
            "batch_size": args.batch_size, "n_workers": 1, "chunk": args.chunk, "seed": 0,
            "capacity": args.capacity, "batches_per_epoch": 10**6, "record_indices": True,
            "norm_samples": 64, "scheduler": args.client}
    return OnlineDataModule(name, case["options"], **{**base, **kw})


def test_tensors(path: Path, case: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
    ds = H5Dataset(path, case["inputs"], case["outputs"], in_memory=True)
    x, y = zip(*(ds[i] for i in range(len(ds))), strict=True)
    return torch.stack(x), torch.stack(y)


# ---------------------------------------------------------------------------------------------
# Parts
# ---------------------------------------------------------------------------------------------

def melissa(args: argparse.Namespace, name: str, case: dict[str, Any], work: Path
            ) -> dict[str, Any]:
    """Equal optimizer steps: offline on a fixed dataset vs online on fresh samples."""
    problem = make_problem(name, **case["options"])
    test_path = generate_split(problem, work / f"{name}_test.h5", args.n_test, seed=0,
                               split="test", progress=False)
    test = test_tensors(test_path, case)
    steps = args.steps[name]
    t0 = time.perf_counter()
    size = case["offline"]
    path = generate_split(problem, work / f"{name}_fixed.h5", size, seed=0,
                          progress=False, scheduler=args.client)
    t_gen = time.perf_counter() - t0
    dm = PDEDataModule(path, inputs=case["inputs"], outputs=case["outputs"],
                       batch_size=args.batch_size, val_fraction=0.0)
    off = fit(dm, args, case, steps, test)
    off.update(dataset=size, generate_s=t_gen, unique_samples=size,
               epochs=off["samples_drawn"] / size,
               wall_s=time.perf_counter() - t0)
    res: dict[str, Any] = {"steps": steps, "offline": off}
    progress(f"{name} offline: test L2 {off['test_l2']:.4f}")
    for buffer in case["buffers"]:
        t0 = time.perf_counter()
        dm = online_dm(args, name, case, buffer=buffer, watermark=args.watermark
                       if buffer != "fifo" else None)
        on = fit(dm, args, case, steps, test)
        on["wall_s"] = time.perf_counter() - t0
        res[f"online_{buffer}"] = on
        progress(f"{name} online {buffer}: test L2 {on['test_l2']:.4f}, "
                 f"{on.get('unique_samples', 0)} unique samples")
    return res


def wall(args: argparse.Namespace, name: str, case: dict[str, Any], work: Path,
         budget: float) -> dict[str, Any]:
    """Equal wall time (generation included): online firo gets the offline run's wall time."""
    path = work / f"{name}_test.h5"
    if not path.exists():  # a run of this part alone (--wall-budget)
        generate_split(make_problem(name, **case["options"]), path, args.n_test, seed=0,
                       split="test", progress=False)
    test = test_tensors(path, case)
    t0 = time.perf_counter()
    dm = online_dm(args, name, case, buffer="firo", watermark=args.watermark)
    on = fit(dm, args, case, None, test, extra=[Deadline(t0 + budget)])
    on["wall_s"] = time.perf_counter() - t0
    return {"budget_s": budget, "online_firo": on}


def throughput(args: argparse.Namespace, work: Path) -> dict[str, float]:
    """Samples/s into the trainer (Darcy, near-free model), per data source."""
    case = problems(args)["darcy"]
    problem = make_problem("darcy", **case["options"])
    n = args.n_throughput
    path = generate_split(problem, work / "tp.h5", n, seed=0, progress=False)
    tiny = {"n_modes": (2, 2), "hidden_channels": 2, "n_layers": 1}
    steps = n // args.batch_size
    out = {}
    for label, in_memory in (("in_memory", True), ("hdf5_lazy", False)):
        dm = PDEDataModule(path, batch_size=args.batch_size, val_fraction=0.0,
                           in_memory=in_memory)
        r = fit(dm, args, case, steps, net=tiny)
        out[label] = r["samples_drawn"] / r["train_wall_s"]
    for workers in (1, 2):
        dm = online_dm(args, "darcy", case, buffer="fifo", n_workers=workers,
                       scheduler="local" if workers > 1 else args.client)
        r = fit(dm, args, case, steps, net=tiny)
        out[f"stream_{workers}_worker"] = r["samples_drawn"] / r["train_wall_s"]
    out["stream_external_worker"] = external_worker(args, case, steps, tiny)
    out.update(sizing(args, problem, case))
    progress(f"throughput: {out}")
    return out


def sizing(args: argparse.Namespace, problem: Any, case: dict[str, Any]) -> dict[str, float]:
    """Numbers to size a cluster with: one worker's generation rate (one large task, so no
    per-task cost) and what the stream delivers from it into a buffer with no trainer, per
    ``chunk`` (samples per task, or ``auto``)."""
    from pdeml.datasets.stream import SampleBuffer, StreamFeeder
    from pdeml.datasets.writer import compute_samples

    n = args.n_throughput
    client = args.client
    client.submit(compute_samples, problem, 0, "train", [0], pure=False).result()  # warm
    t0 = time.perf_counter()
    client.submit(compute_samples, problem, 0, "train", list(range(n)), pure=False).result()
    out = {"worker_generation": n / (time.perf_counter() - t0)}
    for chunk in (1, 4, 16, "auto"):
        buf = SampleBuffer("fifo", capacity=64)
        feeder = StreamFeeder(client, problem, buf, case["inputs"], case["outputs"],
                              chunk=chunk, max_in_flight=4).start()
        try:
            for _ in range(32):  # tasks in flight before the clock starts
                buf.get(timeout=120)
            t0 = time.perf_counter()
            for _ in range(n):
                buf.get(timeout=120)
            out[f"feeder_chunk_{chunk}"] = n / (time.perf_counter() - t0)
        finally:
            feeder.stop()
    return out


def external_worker(args: argparse.Namespace, case: dict[str, Any], steps: int,
                    net: dict[str, Any]) -> float:
    """A scheduler with no worker of its own, plus one ``dask worker`` process."""
    from distributed import LocalCluster

    cluster = LocalCluster(n_workers=0, dashboard_address=":0")
    cmd = [sys.executable, "-m", "distributed.cli.dask_worker", cluster.scheduler_address,
           "--nthreads", "1", "--nworkers", "1", "--no-dashboard"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        dm = online_dm(args, "darcy", case, buffer="fifo", scheduler=cluster.scheduler_address)
        r = fit(dm, args, case, steps, net=net)
        return r["samples_drawn"] / r["train_wall_s"]
    finally:
        proc.terminate()
        proc.wait(30)
        cluster.close()


def end_to_end(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """One pass over N fresh Darcy samples: online vs generate-to-disk-then-train."""
    case = problems(args)["darcy"]
    problem = make_problem("darcy", **case["options"])
    n = args.n_fresh // args.batch_size * args.batch_size
    t0 = time.perf_counter()
    path = generate_split(problem, work / "e2e.h5", n, seed=1, progress=False,
                          scheduler=args.client)
    t_gen = time.perf_counter() - t0
    off = fit(PDEDataModule(path, batch_size=args.batch_size, val_fraction=0.0), args, case,
              n // args.batch_size)
    offline = {"generate_s": t_gen, "wall_s": time.perf_counter() - t0, **off}
    t0 = time.perf_counter()
    on = fit(online_dm(args, "darcy", case, buffer="fifo", seed=2, max_samples=n), args,
             case, n // args.batch_size)
    online = {"wall_s": time.perf_counter() - t0, **on}
    return {"n_samples": n, "offline": offline, "online": online,
            "ratio": online["wall_s"] / offline["wall_s"]}


class KillWorker(L.Callback):
    """SIGKILL the only generator worker at ``step`` (optionally its nanny gives up first)."""

    def __init__(self, dm: OnlineDataModule, step: int, nanny_restarts: bool) -> None:
        self.dm, self.step, self.nanny_restarts = dm, step, nanny_restarts
        self.events: list[dict[str, Any]] = []
        self.buffered = -1

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step != self.step:
            return
        (pid,) = self.dm.client.run(os.getpid).values()
        if not self.nanny_restarts:
            for nanny in self.dm._cluster.workers.values():
                nanny.close_gracefully(reason="benchmark: the nanny gives up")
        self.buffered = len(self.dm.train_set.feeder.buffer)
        self.supervisor = self.dm.supervisor
        os.kill(pid, signal.SIGKILL)

    def on_train_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.events = [{k: v for k, v in e.items() if k != "time"}
                       for e in self.supervisor.events]


def fault(args: argparse.Namespace) -> dict[str, Any]:
    """Cost of a SIGKILLed generator worker: longest wait, extra wait, samples intact."""
    name, case = "darcy", problems(args)["darcy"]
    steps, res = args.fault_steps, {}
    for label in ("undisturbed", "nanny_restarts", "nanny_gives_up"):
        dm = online_dm(args, name, case, buffer="fifo", capacity=args.fault_capacity,
                       worker_grace=args.worker_grace, scheduler="local")
        kill = KillWorker(dm, steps // 4, label == "nanny_restarts")
        r = fit(dm, args, case, steps, extra=[kill] if label != "undisturbed" else [])
        flat = sum(dm.train_set.index_log, [])
        r["samples_intact"] = sorted(flat) == list(range(len(flat))) and len(flat) == (
            steps * args.batch_size)
        if label != "undisturbed":
            r.update(buffered_at_kill=kill.buffered, events=kill.events)
        res[label] = r
        progress(f"fault {label}: longest wait {r['longest_wait_s']:.1f} s, "
                 f"intact {r['samples_intact']}")
    for label in ("nanny_restarts", "nanny_gives_up"):
        res[label]["extra_wait_s"] = res[label]["wait_s"] - res["undisturbed"]["wait_s"]
    return res


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

def progress(msg: str) -> None:
    print(f"[bench_online {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def load() -> float:
    return os.getloadavg()[0]


def plot(res: dict[str, Any], path: Path) -> None:
    """Test relative L2 vs samples drawn, offline vs online, one panel per problem."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cases = res["melissa"]
    fig, axes = plt.subplots(1, len(cases), figsize=(5.5 * len(cases), 4), squeeze=False)
    for ax, (name, runs) in zip(axes[0], cases.items(), strict=True):
        for key, run in runs.items():
            if not isinstance(run, dict) or "curve" not in run:
                continue
            steps, err = zip(*run["curve"], strict=True)
            label = (f"offline, {run['dataset']} samples" if key == "offline"
                     else f"online {key[7:]}, {run.get('unique_samples', 0)} unique")
            ax.plot(np.array(steps) * res["settings"]["batch_size"], err, label=label,
                    ls="--" if key == "offline" else "-")
        ax.set(xlabel="samples drawn by the trainer", ylabel="test relative L2",
               yscale="log", title=f"{name}: equal optimizer steps ({runs['steps']})")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def melissa_rows(res: dict[str, Any], target: dict[str, float]) -> list[str]:
    rows = []
    for name, runs in res.items():
        off = runs["offline"]
        rows.append(f"| {name}, offline {off['dataset']} samples ({off['epochs']:.0f} epochs) "
                    f"| {runs['steps']} | {off['test_l2']:.4f} | - | {off['unique_samples']} | "
                    f"{off['trainer_cpu_s']:.0f} | {100 * off['wait_fraction']:.0f}% | - |")
        for key in (k for k in runs if k.startswith("online_")):
            on = runs[key]
            gain = 1 - on["test_l2"] / off["test_l2"]
            ok = "met" if gain >= target[name] else "missed"
            rows.append(f"| {name}, online {key[7:]} | {on['steps']} | **{on['test_l2']:.4f}** "
                        f"| {100 * gain:+.0f}% | {on.get('unique_samples', 0)} | "
                        f"{on['trainer_cpu_s']:.0f} | {100 * on['wait_fraction']:.0f}% | "
                        f"{'>=' if target[name] else '>'}{100 * target[name]:.0f}%: {ok} |")
    return rows


def table(res: dict[str, Any]) -> str:
    out = []
    if "melissa" in res:
        out += ["Equal optimizer steps (test relative L2; gain = 1 - online / offline):", "",
                "| run | steps | test L2 | gain | unique samples | trainer CPU s | waits | "
                "target |", "|---|---|---|---|---|---|---|---|"]
        out += melissa_rows(res["melissa"], {"darcy": 0.15, "burgers": 0.0})
    if "wall" in res:
        w, on = res["wall"], res["wall"]["online_firo"]
        off = res.get("melissa", {}).get("darcy", {}).get("offline")
        versus = (f"offline {off['test_l2']:.4f} ({off['steps']} steps) vs " if off
                  else "(offline: the melissa part's Darcy run) vs ")
        out += ["", f"Equal WALL time on this machine ({w['budget_s']:.0f} s, generation "
                f"included; generators share the trainer's cores): {versus}online firo "
                f"{on['test_l2']:.4f} ({on['steps']} steps, {on.get('unique_samples', 0)} "
                "unique samples)"]
    if "e2e" in res:
        e = res["e2e"]
        out += ["", f"One pass over {e['n_samples']} fresh samples: online "
                f"{e['online']['wall_s']:.1f} s vs generate + train "
                f"{e['offline']['wall_s']:.1f} s ({e['ratio']:.2f}x); trainer waits "
                f"{100 * e['online']['wait_fraction']:.1f}% online"]
    if "throughput" in res:
        tp = res["throughput"]
        out += ["", "Samples/s into the trainer (near-free model): " + ", ".join(
            f"{k} {v:.0f}" for k, v in tp.items())]
    if "fault" in res:
        out += ["", "| generator worker SIGKILLed | longest wait for a batch | extra wait | "
                "samples intact | target |", "|---|---|---|---|---|"]
        for label in ("undisturbed", "nanny_restarts", "nanny_gives_up"):
            r = res["fault"][label]
            extra = r.get("extra_wait_s")
            ok = ("-" if extra is None else "met" if extra < 30 and r["samples_intact"]
                  else "missed")
            out.append(f"| {label} | {r['longest_wait_s']:.1f} s | "
                       f"{'-' if extra is None else f'{extra:.1f} s'} | "
                       f"{r['samples_intact']} | < 30 s, none lost: {ok} |")
    return "\n".join(out)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", nargs="+", default=["melissa", "wall", "throughput", "fault"])
    p.add_argument("--problems", nargs="+", default=["darcy", "burgers"])
    p.add_argument("--buffers", nargs="+", default=list(BUFFERS))
    p.add_argument("--resolution", type=int, default=16, help="Darcy grid")
    p.add_argument("--modes", type=int, default=6, help="Darcy FNO modes per axis")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--darcy-steps", type=int, default=640)
    p.add_argument("--burgers-steps", type=int, default=320)
    p.add_argument("--offline-size", type=int, default=500, help="Darcy")
    p.add_argument("--burgers-offline-size", type=int, default=256)
    p.add_argument("--burgers-buffers", nargs="+", default=["firo", "reservoir"])
    p.add_argument("--chunk", type=lambda v: v if v == "auto" else int(v), default="auto",
                   help="samples per generator task of the online runs (session 4's runs: 8)")
    p.add_argument("--capacity", type=int, default=1000)
    p.add_argument("--watermark", type=int, default=250)
    p.add_argument("--n-test", type=int, default=200)
    p.add_argument("--eval-every", type=int, default=40)
    p.add_argument("--n-throughput", type=int, default=512)
    p.add_argument("--wall-budget", type=float, default=None,
                   help="seconds for the wall part (default: the offline Darcy run's wall time)")
    p.add_argument("--n-fresh", type=int, default=1024, help="e2e part (not run by default)")
    p.add_argument("--fault-steps", type=int, default=160)
    p.add_argument("--fault-capacity", type=int, default=32)
    p.add_argument("--worker-grace", type=float, default=10.0)
    p.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    p.add_argument("--out", default="runs/bench/bench_online.json")
    args = p.parse_args()
    if args.quick:
        args.darcy_steps = args.burgers_steps = 40
        args.offline_size, args.n_test, args.watermark, args.eval_every = 32, 32, 16, 10
        args.burgers_offline_size = 32
        args.n_throughput, args.fault_steps, args.worker_grace = 64, 40, 3.0
    args.steps = {"darcy": args.darcy_steps, "burgers": args.burgers_steps}
    return args


def main() -> None:
    args = parse()
    torch.set_num_threads(1)
    for name in ("distributed", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    cases = problems(args)
    work = Path(tempfile.mkdtemp(prefix="bench_online_"))
    settings = {k: v for k, v in vars(args).items() if k not in ("out", "steps")}
    from pdeml.datasets.writer import open_client

    # One generator process shared by the melissa, wall and 1-worker throughput runs (a
    # cluster start-up per run costs tens of seconds on a loaded machine); pdeml's own
    # LocalCluster settings (one thread, workers forked from a preloaded server).
    args.client, cluster = open_client("local", 1)
    res: dict[str, Any] = {"settings": settings, "load_start": load()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        if "melissa" in args.parts:
            res["melissa"] = {}
            for n in args.problems:
                res["melissa"][n] = melissa(args, n, cases[n], work)
                out.write_text(json.dumps(res, indent=2))  # partial results survive a kill
        if "wall" in args.parts and ("darcy" in res.get("melissa", {}) or args.wall_budget):
            budget = args.wall_budget or res["melissa"]["darcy"]["offline"]["wall_s"]
            res["wall"] = wall(args, "darcy", cases["darcy"], work, budget)
        if "e2e" in args.parts:
            res["e2e"] = end_to_end(args, work)
        if "throughput" in args.parts:
            res["throughput"] = throughput(args, work)
            out.write_text(json.dumps(res, indent=2))
        if "fault" in args.parts:
            res["fault"] = fault(args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        args.client.close()
        cluster.close()
    res.update(load_end=load(), total_wall_s=time.perf_counter() - t0)
    out.write_text(json.dumps(res, indent=2))
    if "melissa" in res:
        plot(res, out.with_suffix(".png"))
    print(table(res))
    print(f"\nload average {res['load_start']:.1f} -> {res['load_end']:.1f}; "
          f"{res['total_wall_s']:.0f} s; JSON: {out}")


if __name__ == "__main__":
    main()
