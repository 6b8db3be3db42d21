"""bf16 against fp32, per operator: training-step time, memory, accuracy, exported inference.

Issue 29. Every measurement states the hardware's bf16 support
(:func:`pdeml.precision.bf16_support`) and the load average, and puts fp32 and bf16 side by side
in one process (taking turns step by step, so machine noise hits both alike). Subcommands:

- ``info``: what the CPU (and GPU) offer for bf16.
- ``gemm``: matrix products in fp32 and bf16 (the issue's 512^2 / 1024^2 claim, and the
  thin products of FNO's DFT).
- ``profile``: ``torch.profiler`` of one FNO training step in fp32 and in bf16-mixed, the
  operators that take the time (why bf16 is slow on a CPU without bf16 instructions).
- ``steps``: train-step time (forward, loss, backward, AdamW) and memory per operator and
  grid, fp32 against ``bf16-mixed`` (autocast, as Lightning runs it) and ``bf16-true``
  (``--true``). Memory: the peak of the bytes allocated during one step (profiler memory
  events, CPU) or ``torch.cuda.max_memory_allocated`` (GPU), plus the weights and AdamW state.
- ``numerics``: relative error of the forward output and of the gradients against float64, per
  operator, fp32 and bf16-mixed (how the fp32 regions were chosen).
- ``accuracy``: test relative L2 after equal optimizer steps, fp32 against bf16-mixed, on
  Darcy 64^2 and Navier-Stokes 64^2 (one step ``w(t) -> w(t + 0.1)``), 3 seeds, through
  ``OperatorModule`` and a Lightning ``Trainer(precision=...)``. ``--emulate`` runs bf16's
  arithmetic (operands rounded to bf16, products accumulated in fp32, results rounded to bf16)
  with fp32 kernels, for CPUs whose own bf16 kernels are too slow to train on (see
  :class:`EmulatedBF16`; ``emulation-check`` compares it with the native kernels).
- ``inference``: an FNO surrogate (trained briefly on Darcy 128^2) exported to ``.pt2`` in
  fp32 and bf16, seconds per batch of 32.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/bench_precision.py info
    OPENBLAS_NUM_THREADS=1 .venv/bin/python scripts/bench_precision.py steps --threads 1 \\
        --sizes 64 128 256 --out runs/bench/precision_steps.json

Results go to ``--out`` (JSON) and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see bench_time_to_accuracy.py

import torch  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402
from torch.utils._pytree import tree_leaves, tree_map  # noqa: E402

from pdeml.operators import FNO, GNOT, LSM, MGTFNO, T1, TFNO, MgNO  # noqa: E402
from pdeml.precision import bf16_support  # noqa: E402

# Default sizes of every operator (what `pdeml train` builds from in/out channels alone); MgNO's
# levels follow the grid as `pdeml train` links them.
OPERATORS: dict[str, Callable[[tuple[int, ...]], torch.nn.Module]] = {
    "FNO": lambda grid: FNO(1, 1),
    "T1": lambda grid: T1(1, 1),
    "TFNO": lambda grid: TFNO(1, 1),
    "MGTFNO": lambda grid: MGTFNO(1, 1),
    "MgNO": lambda grid: MgNO(1, 1, n_levels=MgNO.levels_for(grid, pad=True)),
    "LSM": lambda grid: LSM(1, 1),
    "GNOT": lambda grid: GNOT(1, 1),
}
DEFAULT_SIZE_ONLY = ("GNOT", "LSM")  # timed at 64^2 only (GNOT: 16x FNO's step there)
MODES = ("fp32", "bf16-mixed", "bf16-true", "fp32-jitter")
# fp32-jitter (accuracy only): fp32 training from initial weights each multiplied by
# (1 + 2^-9 N(0, 1)), one bf16 rounding's size: how far training trajectories drift apart
# from a perturbation that small, the control for a bf16-vs-fp32 difference.
JITTER = 2.0 ** -9


def machine() -> dict[str, Any]:
    """Hardware, software and load: printed with every table."""
    info = {"torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
            "loadavg": [round(v, 2) for v in os.getloadavg()],
            "cpu_bf16": bf16_support("cpu")}
    if torch.cuda.is_available():
        info["cuda_bf16"] = bf16_support("cuda")
    return info


# ------------------------------------------------------------------------------ emulation
_EMULATED = {torch.ops.aten.mm.default, torch.ops.aten.bmm.default,
             torch.ops.aten.addmm.default, torch.ops.aten.baddbmm.default,
             torch.ops.aten.convolution.default, torch.ops.aten.convolution_backward.default}
_SDPA = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu.default,
         torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward.default}


class EmulatedBF16(TorchDispatchMode):
    """bf16 GEMMs, convolutions and attention computed by fp32 kernels on bf16 operands.

    An op of :data:`_EMULATED` (or CPU flash attention) whose inputs are bf16 runs on their
    exact float32 copies and its bf16 outputs are rounded back to bf16: the arithmetic of a
    bf16 kernel that accumulates in fp32 (oneDNN with AMX, tensor cores), up to summation
    order, at fp32 speed. For accuracy studies on CPUs without bf16 instructions, never for
    timing. Everything else (casts, activations, norms, softmax) runs natively in bf16. Not
    under ``torch.inference_mode`` (composite ops then reach the mode before autocast's casts):
    evaluate under ``no_grad``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                           kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if func not in _EMULATED and func not in _SDPA:
            return func(*args, **kwargs)
        low = [a for a in tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)
               and a.dtype == torch.bfloat16]
        if not low:
            return func(*args, **kwargs)
        self.calls += 1

        def up(t: Any) -> Any:
            return t.float() if isinstance(t, torch.Tensor) and t.dtype == torch.bfloat16 else t

        out = func(*tree_map(up, args), **tree_map(up, kwargs))
        if func is torch.ops.aten._scaled_dot_product_flash_attention_for_cpu.default:
            return (out[0].to(torch.bfloat16), *out[1:])  # logsumexp stays fp32, as native

        def down(t: Any) -> Any:
            return t.to(torch.bfloat16) if isinstance(t, torch.Tensor) and \
                t.dtype == torch.float32 else t

        return tree_map(down, out)


# ------------------------------------------------------------------------------ one step
def _cast(net: torch.nn.Module, mode: str) -> torch.nn.Module:
    return net.to(torch.bfloat16) if mode == "bf16-true" else net


@contextlib.contextmanager
def autocast_for(mode: str, device: str) -> Iterator[None]:
    """The forward context Lightning's precision plugin gives."""
    with torch.autocast(device, torch.bfloat16, enabled=mode == "bf16-mixed"):
        yield


def make_step(net: torch.nn.Module, x: torch.Tensor, y: torch.Tensor,
              mode: str) -> Callable[[], None]:
    """One training step (forward in the mode's context, relative L2 in fp32, AdamW)."""
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    xin = x.to(torch.bfloat16) if mode == "bf16-true" else x

    def step() -> None:
        with autocast_for(mode, x.device.type):
            pred = net(xin)
        pred = pred.float()
        loss = ((pred - y).flatten(1).norm(dim=1) / y.flatten(1).norm(dim=1)).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def step_peak_bytes(step: Callable[[], None], device: str) -> int:
    """Peak of the bytes allocated during one step, above what was allocated before it."""
    if device == "cuda":
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak


def state_bytes(net: torch.nn.Module) -> int:
    """Weights plus AdamW's two moments (fp32 master weights under bf16-mixed)."""
    return 3 * sum(p.numel() * p.element_size() for p in net.parameters())


def cmd_steps(args: argparse.Namespace) -> dict[str, Any]:
    device = args.device
    modes = ["fp32", "bf16-mixed"] + (["bf16-true"] if args.true else [])
    rows = []
    head = ["operator", "grid", "batch", "fp32 s/step"]
    for m in modes[1:]:
        head += [f"{m} s/step", f"{m} speedup"]
    head += ["fp32 peak MiB"] + [f"{m} peak MiB (change)" for m in modes[1:]] + ["load"]
    print("| " + " | ".join(head) + " |\n|" + "---|" * len(head), flush=True)
    for name in args.ops:
        sizes = [64] if name in DEFAULT_SIZE_ONLY and not args.all_sizes else args.sizes
        for n in sizes:
            grid = (n, n)
            batch = args.batch if n < 256 else args.batch_256
            torch.manual_seed(0)
            base = OPERATORS[name](grid)
            x = torch.randn(batch, 1, *grid, device=device)
            y = torch.randn(batch, 1, *grid, device=device)
            nets = {m: _cast(copy.deepcopy(base).to(device), m) for m in modes}
            steps = {m: make_step(nets[m], x, y, m) for m in modes}
            for m in modes:  # warm-up: caches, first-call allocations
                steps[m]()
            times: dict[str, list[float]] = {m: [] for m in modes}
            for _ in range(args.repeats):
                for m in modes:
                    _sync(device)
                    t = time.perf_counter()
                    steps[m]()
                    _sync(device)
                    times[m].append(time.perf_counter() - t)
            row = {"operator": name, "grid": n, "batch": batch,
                   "loadavg": [round(v, 2) for v in os.getloadavg()]}
            for m in modes:
                row[f"{m}_s"] = statistics.median(times[m])
                row[f"{m}_peak_MiB"] = step_peak_bytes(steps[m], device) / 2**20
                row[f"{m}_state_MiB"] = state_bytes(nets[m]) / 2**20
            for m in modes[1:]:
                row[f"{m}_speedup"] = row["fp32_s"] / row[f"{m}_s"]
                row[f"{m}_memory_saving"] = 1 - row[f"{m}_peak_MiB"] / row["fp32_peak_MiB"]
            rows.append(row)
            print(_steps_row(row, modes), flush=True)
    return {"rows": rows, "modes": modes}


def _steps_row(r: dict[str, Any], modes: list[str]) -> str:
    cells = [f"{r['operator']}", f"{r['grid']}^2", str(r["batch"]), f"{r['fp32_s']:.3f}"]
    for m in modes[1:]:
        cells += [f"{r[f'{m}_s']:.3f}", f"{r[f'{m}_speedup']:.2f}x"]
    cells += [f"{r['fp32_peak_MiB']:.0f}"]
    for m in modes[1:]:
        cells += [f"{r[f'{m}_peak_MiB']:.0f} ({-100 * r[f'{m}_memory_saving']:+.0f}%)"]
    return "| " + " | ".join(cells) + f" | {r['loadavg'][0]} |"


# ------------------------------------------------------------------------------ gemm
def cmd_gemm(args: argparse.Namespace) -> dict[str, Any]:
    """Square matmuls and the batched, thin products FNO's DFT makes, fp32 against bf16."""
    shapes = [((n, n), (n, n)) for n in (256, 512, 1024)]
    shapes += [((args.batch * 32 * args.size, args.size), (args.size, 18)),  # DFT last axis
               ((args.batch * 32, 17, args.size), (args.batch * 32, args.size, 18))]
    rows = []
    for a_shape, b_shape in shapes:
        a, b = torch.randn(*a_shape), torch.randn(*b_shape)
        pairs = {"fp32": (a, b), "bf16": (a.bfloat16(), b.bfloat16())}
        times: dict[str, list[float]] = {k: [] for k in pairs}
        for _ in range(args.repeats):
            for k, (x, y) in pairs.items():
                t = time.perf_counter()
                torch.matmul(x, y)
                times[k].append(time.perf_counter() - t)
        row = {"a": list(a_shape), "b": list(b_shape),
               **{f"{k}_ms": 1e3 * statistics.median(v) for k, v in times.items()}}
        row["bf16_speedup"] = row["fp32_ms"] / row["bf16_ms"]
        rows.append(row)
        print(f"| {a_shape} @ {b_shape} | {row['fp32_ms']:.2f} | {row['bf16_ms']:.2f} | "
              f"{row['bf16_speedup']:.2f}x | {os.getloadavg()[0]:.2f} |", flush=True)
    return {"rows": rows}


# ------------------------------------------------------------------------------ profile
def cmd_profile(args: argparse.Namespace) -> dict[str, Any]:
    from torch.profiler import ProfilerActivity, profile

    grid = (args.size, args.size)
    torch.manual_seed(0)
    base = OPERATORS[args.op](grid)
    x, y = torch.randn(args.batch, 1, *grid), torch.randn(args.batch, 1, *grid)
    out: dict[str, Any] = {}
    for mode in ("fp32", "bf16-mixed"):
        net = copy.deepcopy(base)
        step = make_step(net, x, y, mode)
        step()
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            t = time.perf_counter()
            step()
            total = time.perf_counter() - t
        table = prof.key_averages(group_by_input_shape=False)
        top = sorted(table, key=lambda e: e.self_cpu_time_total, reverse=True)[:args.top]
        out[mode] = {"step_s": total, "top": [
            {"op": e.key, "self_ms": e.self_cpu_time_total / 1e3, "calls": e.count}
            for e in top]}
        print(f"\n{args.op} {args.size}^2 batch {args.batch}, {mode}: {total:.3f} s "
              f"(load {os.getloadavg()[0]:.2f})")
        print("| op | self ms | calls |\n|---|---:|---:|")
        for e in out[mode]["top"]:
            print(f"| {e['op']} | {e['self_ms']:.1f} | {e['calls']} |")
    return out


# ------------------------------------------------------------------------------ numerics
def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


def _table_head(*columns: str) -> None:
    """A Markdown table's header on stdout."""
    print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns), flush=True)


def _random_case(name: str, args: argparse.Namespace
                 ) -> tuple[torch.nn.Module, torch.Tensor, torch.Tensor]:
    """The operator at its default size (seed 0), a random input and a random target."""
    grid = (args.size, args.size)
    torch.manual_seed(0)
    net = OPERATORS[name](grid)
    return net, torch.randn(args.batch, 1, *grid), torch.randn(args.batch, 1, *grid)


def cmd_numerics(args: argparse.Namespace) -> dict[str, Any]:
    _table_head("operator", "fp32 output", "bf16-mixed output", "fp32 gradients",
                "bf16-mixed gradients")
    rows = []
    for name in args.ops:
        net, x, target = _random_case(name, args)
        results = {}
        for mode in ("fp64", "fp32", "bf16-mixed"):
            m = copy.deepcopy(net).double() if mode == "fp64" else copy.deepcopy(net)
            xin = x.double() if mode == "fp64" else x
            with autocast_for(mode, "cpu"):
                pred = m(xin)
            pred = pred.double()
            ((pred - target.double()) ** 2).mean().backward()
            grad = torch.cat([p.grad.flatten().double() for p in m.parameters()])
            results[mode] = (pred.detach(), grad)
        ref_y, ref_g = results["fp64"]
        row = {"operator": name, "grid": args.size}
        for mode in ("fp32", "bf16-mixed"):
            row[f"{mode}_forward"] = _rel(results[mode][0], ref_y)
            row[f"{mode}_grad"] = _rel(results[mode][1], ref_g)
        rows.append(row)
        print(f"| {name} | {row['fp32_forward']:.1e} | {row['bf16-mixed_forward']:.1e} | "
              f"{row['fp32_grad']:.1e} | {row['bf16-mixed_grad']:.1e} |", flush=True)
    return {"rows": rows}


def cmd_emulation_check(args: argparse.Namespace) -> dict[str, Any]:
    """Emulated against native bf16 kernels on each operator (forward and gradients)."""
    _table_head("operator", "native output vs fp32", "emulated output vs fp32",
                "native gradients vs fp32", "emulated gradients vs fp32")
    rows = []
    for name in args.ops:
        net, x, target = _random_case(name, args)
        outs = {}
        for how in ("fp32", "native", "emulated"):
            m = copy.deepcopy(net)
            mode = EmulatedBF16() if how == "emulated" else contextlib.nullcontext()
            with mode, autocast_for("fp32" if how == "fp32" else "bf16-mixed", "cpu"):
                pred = m(x)
                ((pred.float() - target) ** 2).mean().backward()
            grad = torch.cat([p.grad.flatten() for p in m.parameters()])
            outs[how] = (pred.detach().float(), grad)
        # Equivalent arithmetic shows as equal error sizes against fp32 (the two differ from
        # each other by rounding flips, which the DFT's cancellation amplifies).
        row = {"operator": name,
               "native_vs_fp32": _rel(outs["native"][0], outs["fp32"][0]),
               "emulated_vs_fp32": _rel(outs["emulated"][0], outs["fp32"][0]),
               "grad_native_vs_fp32": _rel(outs["native"][1], outs["fp32"][1]),
               "grad_emulated_vs_fp32": _rel(outs["emulated"][1], outs["fp32"][1])}
        rows.append(row)
        print("| " + " | ".join([name] + [f"{v:.1e}" for k, v in row.items()
                                          if k != "operator"]) + " |", flush=True)
    return {"rows": rows}


# ------------------------------------------------------------------------------ accuracy
PROBLEMS = {
    "darcy": {"problem": {"name": "darcy", "resolution": 64,
                          "coefficient": "piecewise_constant"},
              "splits": {"train": 400, "test": 100}, "data": {}},
    "ns": {"problem": {"name": "navier_stokes", "resolution": 64, "viscosity": 1e-3,
                       "final_time": 2.0, "n_snapshots": 20, "dt": 4e-3},
           "splits": {"train": 20, "test": 5},
           "data": {"rollout": {"fields": ["w"], "residual": True}}},
}


def generate(problem: str, folder: Path) -> dict[str, Path]:
    from pdeml.datasets import generate_dataset
    from pdeml.solvers.problems import make_problem

    spec = PROBLEMS[problem]
    opts = dict(spec["problem"])
    paths = {s: folder / f"{s}.h5" for s in spec["splits"]}
    if all(p.exists() for p in paths.values()):
        return paths
    generate_dataset(make_problem(opts.pop("name"), **opts), folder, spec["splits"], seed=0,
                     progress=False)
    return paths


def train_once(problem: str, paths: dict[str, Path], name: str, mode: str, seed: int,
               args: argparse.Namespace) -> dict[str, Any]:
    import lightning as L

    from pdeml.datasets.dispatch import make_datamodule
    from pdeml.trainers import OperatorModule
    from pdeml.trainers.fit import build_model

    L.seed_everything(seed, verbose=False)
    dm = make_datamodule(train=str(paths["train"]), test=str(paths["test"]),
                         batch_size=args.batch, val_fraction=0.0, seed=seed,
                         **PROBLEMS[problem]["data"])
    dm.setup("fit")
    net = build_model({"name": name}, dm)
    if mode == "fp32-jitter":
        gen = torch.Generator().manual_seed(1000 + seed)
        with torch.no_grad():
            for p in net.parameters():
                p.mul_(1 + JITTER * torch.randn(p.shape, generator=gen))
    module = OperatorModule(net, lr=args.lr, scheduler="onecycle")
    precision = {"fp32": "32-true", "fp32-jitter": "32-true", "bf16-mixed": "bf16-mixed",
                 "bf16-true": "bf16-true"}[mode]
    emulating = args.emulate and mode.startswith("bf16")
    # inference_mode hands composite ops (einsum) to a dispatch mode undecomposed, past
    # autocast: the emulated test pass runs under no_grad instead.
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=args.steps, max_epochs=-1,
                        precision=precision, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        limit_val_batches=0, num_sanity_val_steps=0,
                        inference_mode=not emulating)
    emulate = EmulatedBF16() if emulating else contextlib.nullcontext()
    t = time.perf_counter()
    with emulate, contextlib.redirect_stdout(sys.stderr):
        trainer.fit(module, dm)
        test = trainer.test(module, dm, verbose=False)[0]
    return {"problem": problem, "operator": name, "mode": mode, "seed": seed,
            "steps": int(trainer.global_step), "test_l2": float(test["test_l2"]),
            "seconds": time.perf_counter() - t, "emulated": emulating,
            "loadavg": [round(v, 2) for v in os.getloadavg()]}


def cmd_accuracy(args: argparse.Namespace) -> dict[str, Any]:
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    root = Path(args.data)
    runs = []
    for problem in args.problems:
        paths = generate(problem, root / problem)
        for name in args.ops:
            for seed in args.seeds:
                for mode in args.modes:
                    r = train_once(problem, paths, name, mode, seed, args)
                    runs.append(r)
                    print(json.dumps(r), file=sys.stderr, flush=True)
    summary = []
    print("| problem | operator | " + " | ".join(args.modes) + " | "
          + " | ".join(f"{m} vs fp32" for m in args.modes[1:]) + " |\n|"
          + "---|" * (2 + 2 * len(args.modes) - 1), flush=True)
    for problem in args.problems:
        for name in args.ops:
            row = {"problem": problem, "operator": name}
            for mode in args.modes:
                errs = [r["test_l2"] for r in runs if (r["problem"], r["operator"], r["mode"])
                        == (problem, name, mode)]
                row[mode] = statistics.mean(errs)
                row[f"{mode}_seeds"] = errs
            for mode in args.modes[1:]:
                row[f"{mode}_vs_fp32"] = row[mode] / row["fp32"] - 1
            summary.append(row)
            print("| " + " | ".join([problem, name] + [f"{row[m]:.4f}" for m in args.modes]
                                    + [f"{100 * row[f'{m}_vs_fp32']:+.1f}%"
                                       for m in args.modes[1:]]) + " |", flush=True)
    return {"runs": runs, "summary": summary}


# ------------------------------------------------------------------------------ inference
def cmd_inference(args: argparse.Namespace) -> dict[str, Any]:
    from pdeml.baselines import surrogate_cost
    from pdeml.datasets import generate_dataset
    from pdeml.export import export_run, load_exported
    from pdeml.solvers.problems import DarcyFlow
    from pdeml.trainers.fit import train

    root = Path(args.data)
    data = root / f"darcy{args.size}"
    if not (data / "test.h5").exists():
        generate_dataset(DarcyFlow(resolution=args.size), data, {"train": 64, "test": 32},
                         seed=0, progress=False)
    run = root / f"fno{args.size}"
    if not (run / "metrics.json").exists():
        cfg = {"seed": 0, "model": {"name": "FNO"}, "module": {"lr": 5e-3},
               "data": {"train": str(data / "train.h5"), "test": str(data / "test.h5"),
                        "batch_size": 8},
               "trainer": {"max_epochs": 1, "enable_progress_bar": False, "logger": False}}
        with contextlib.redirect_stdout(sys.stderr):
            train(cfg, run, overwrite=True)
    out: dict[str, Any] = {"grid": args.size, "batch": args.batch}
    x = torch.randn(args.batch, 1, args.size, args.size)
    programs = {}
    for precision in ("fp32", "bf16"):
        path = root / f"fno{args.size}_{precision}.pt2"
        info = export_run(run, path, dynamic_resolution=False, overwrite=True,
                          precision=precision)
        card = json.loads(Path(info["card"]).read_text())
        programs[precision] = load_exported(path)[0]
        out[precision] = {"parity": card["parity"]["measured"]}
    for _ in range(args.rounds):  # taking turns
        for precision, program in programs.items():
            cost = surrogate_cost(program, x, repeats=1)
            out[precision].setdefault("seconds", []).append(cost["seconds_batched"] * args.batch)
    for precision in programs:
        out[precision]["seconds_per_batch"] = statistics.median(out[precision]["seconds"])
    out["bf16_speedup"] = out["fp32"]["seconds_per_batch"] / out["bf16"]["seconds_per_batch"]
    out["loadavg"] = [round(v, 2) for v in os.getloadavg()]
    print(f"| Darcy {args.size}^2, batch {args.batch} | "
          f"{out['fp32']['seconds_per_batch']:.3f} s | {out['bf16']['seconds_per_batch']:.3f} s "
          f"| {out['bf16_speedup']:.2f}x | {out['bf16']['parity']['rel_l2']:.1e} | "
          f"{out['loadavg'][0]} |")
    return out


# ------------------------------------------------------------------------------ main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("command", choices=("info", "gemm", "profile", "steps", "numerics",
                                        "accuracy", "emulation-check", "inference"))
    ap.add_argument("--ops", nargs="+", default=list(OPERATORS), choices=list(OPERATORS))
    ap.add_argument("--op", default="FNO", choices=list(OPERATORS), help="profile: operator")
    ap.add_argument("--sizes", nargs="+", type=int, default=[64, 128, 256])
    ap.add_argument("--size", type=int, default=64, help="profile/numerics/inference grid")
    ap.add_argument("--all-sizes", action="store_true", help="GNOT and LSM at every size")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--batch-256", type=int, default=4, help="steps: batch at 256^2")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=5, help="inference: timed rounds")
    ap.add_argument("--true", action="store_true", help="steps: also bf16-true")
    ap.add_argument("--top", type=int, default=12)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--problems", nargs="+", default=["darcy", "ns"], choices=list(PROBLEMS))
    ap.add_argument("--modes", nargs="+", default=["fp32", "bf16-mixed"], choices=MODES)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--steps", type=int, default=200, help="accuracy: optimizer steps")
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--emulate", action="store_true", help="accuracy: bf16 by EmulatedBF16")
    ap.add_argument("--data", default=str(Path(tempfile.gettempdir()) / "pdeml_bench_precision"))
    ap.add_argument("--out", help="JSON file for the results")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    info = machine()
    print(json.dumps(info), flush=True)
    commands = {"info": lambda a: {}, "gemm": cmd_gemm, "profile": cmd_profile,
                "steps": cmd_steps,
                "numerics": cmd_numerics, "accuracy": cmd_accuracy,
                "emulation-check": cmd_emulation_check, "inference": cmd_inference}
    result = {"command": args.command, "machine": info, **commands[args.command](args)}
    result["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
