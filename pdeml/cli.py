"""``pdeml`` command line: verb dispatch only (the science lives in the package)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

GEN_KEYS = ("problem", "n_train", "n_val", "n_test", "seed", "chunk", "options")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + message
        self.exit(2, f"pdeml: error: {message}\n")


def _cmd_generate(args: argparse.Namespace) -> dict[str, Any]:
    from pdeml.config import ConfigError, apply_override, load_yaml
    from pdeml.datasets.writer import generate_dataset
    from pdeml.solvers.problems import make_problem

    spec: dict[str, Any] = {"n_train": 256, "n_val": 0, "n_test": 64, "seed": 0, "chunk": 16}
    if args.config:
        spec.update(load_yaml(args.config))
    unknown = sorted(set(spec) - set(GEN_KEYS))
    if unknown:
        raise ConfigError(f"unknown generate setting(s): {', '.join(unknown)}")
    for key in ("problem", "n_train", "n_val", "n_test", "seed"):
        if getattr(args, key) is not None:
            spec[key] = getattr(args, key)
    options = dict(spec.get("options") or {})
    for assignment in args.set:
        options = apply_override(options, assignment)
    if not spec.get("problem"):
        raise ConfigError("name a problem (e.g. `pdeml generate darcy`) or give it in --config")
    problem = make_problem(spec["problem"], **options)
    splits = {}
    for split in ("train", "val", "test"):
        n = spec[f"n_{split}"]
        if not isinstance(n, int) or n < 0:
            raise ConfigError(f"n_{split} must be a non-negative integer, got {n}")
        if n:
            splits[split] = n
    if not splits:
        raise ConfigError("nothing to generate: every split has 0 samples")
    paths = generate_dataset(problem, args.out, splits, seed=int(spec["seed"]),
                             chunk=int(spec["chunk"]), overwrite=args.overwrite,
                             progress=not args.no_progress, scheduler=args.scheduler,
                             n_workers=args.n_workers)
    return {k: str(v) for k, v in paths.items()}


def _cmd_train(args: argparse.Namespace) -> dict[str, Any]:
    from pdeml.config import compose
    from pdeml.trainers.fit import train

    return train(compose(args.config, args.set), args.out, resume=args.resume,
                 overwrite=args.overwrite)


def _cmd_finetune(args: argparse.Namespace) -> dict[str, Any]:
    from pdeml.trainers.finetune import finetune_run

    ints = [] if args.modes == "all" else [int(m) for m in args.modes.split(",")]
    modes = "all" if not ints else ints[0] if len(ints) == 1 else ints
    options = {k: v for k, v in vars(args).items() if v is not None and k in (
        "lr", "epochs", "batch_size", "patience", "max_time", "seed", "loss")}
    if args.residual_norm is not None:
        if args.mode != "residual" or args.loss:
            raise ValueError("--residual-norm goes with --mode residual and no --loss")
        options["loss"] = {"name": "sobolev", "s": args.residual_norm, "relative": False}
    result = finetune_run(args.run, args.out, mode=args.mode, n_modes=modes,
                          residual_inputs=args.residual_inputs, **options)
    brief = {k: v for k, v in result.items() if k not in ("history", "test_before", "test_after")}
    for key in ("test_before", "test_after"):  # the full metrics are in <out>/metrics.json
        brief[f"{key}_rel_l2"] = result[key]["rel_l2"] if result.get(key) else None
    return brief


def _cmd_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    if args.suite:
        return _run_suite(args)
    if not args.run:
        raise ValueError("name a run folder (pdeml evaluate RUN) or a suite (--suite cfd)")
    from pdeml.evaluate import evaluate_run

    return evaluate_run(args.run, data=args.data, out=args.out, n_plots=args.n_plots,
                        overwrite=args.overwrite)


def _run_suite(args: argparse.Namespace) -> dict[str, Any]:
    from pdeml.config import apply_override
    from pdeml.suite import CASES, SWEEPS, run_cfd_suite

    if args.run or args.data:
        raise ValueError("--suite trains its own runs; drop the run folder and --data")
    kwargs: dict[str, Any] = {}
    for assignment in args.set:
        kwargs = apply_override(kwargs, assignment)
    result = run_cfd_suite(
        args.out or "runs/cfd_suite", cases=_names(args.cases, CASES),
        sweeps=_names(args.sweeps, SWEEPS), operators=_names(args.operators, ("FNO",)),
        size="full" if args.full else "quick", epochs=args.epochs, model_kwargs=kwargs,
        data_dir=args.data_dir, seed=args.seed, baseline=not args.no_baseline,
        overwrite=args.overwrite, progress=args.progress)
    return {k: v for k, v in result.items() if k != "rows"}


def _names(text: str | None, default: Sequence[str]) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()] if text else list(default)


def _cmd_import(args: argparse.Namespace) -> dict[str, Any]:
    from pdeml.datasets.importers import import_dataset

    options = {"inputs": args.inputs, "outputs": args.outputs, "n_samples": args.limit,
               "names": _names(args.names, ()) or None}
    return {"output": str(import_dataset(args.format, args.src, args.out,
                                         overwrite=args.overwrite, **options))}


def _cmd_export(args: argparse.Namespace) -> dict[str, Any]:
    from pdeml.export import export_run

    return export_run(args.run, args.out,
                      dynamic_resolution=False if args.fixed_resolution else None,
                      overwrite=args.overwrite)


def _cmd_predict(args: argparse.Namespace) -> dict[str, Any]:
    from pdeml.export import predict

    path = predict(args.model, args.input, args.out, batch_size=args.batch_size,
                   progress=not args.no_progress, overwrite=args.overwrite)
    return {"output": str(path)}


def _cmd_demo(args: argparse.Namespace) -> dict[str, Any]:
    from pdeml.demo import run_demo

    return run_demo(args.out, epochs=args.epochs, n_train=args.n_train)


def _modes_arg(text: str) -> str:
    if text != "all" and not all(p.strip().isdigit() for p in text.split(",")):
        raise argparse.ArgumentTypeError(f"'{text}' is not 'all' or comma-separated integers")
    return text


def _count(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``, with a one-line message otherwise."""
    what = {0: "a non-negative integer", 1: "a positive integer"}[minimum]

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got '{text}'") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
        return value

    return parse


OVERWRITE_HELP = "replace existing outputs (refused otherwise)"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per verb."""
    p = _Parser(prog="pdeml", description="PDE surrogates: generate, train, evaluate, export.")
    sub = p.add_subparsers(dest="verb", required=True, parser_class=_Parser)

    g = sub.add_parser("generate", help="solve a PDE family and write HDF5 splits")
    g.add_argument("problem", nargs="?", default=None, help="problem name, e.g. darcy")
    g.add_argument("--config", help="YAML with problem, n_train, n_test, seed, options")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="problem option, e.g. resolution=64 (repeatable)")
    g.add_argument("--out", required=True, help="output folder (one <split>.h5 per split)")
    for split in ("train", "val", "test"):
        g.add_argument(f"--n-{split}", dest=f"n_{split}", type=int, default=None)
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--overwrite", action="store_true", help="replace existing files")
    g.add_argument("--scheduler", default=None,
                   help="Dask: 'local' (a LocalCluster) or a scheduler address; default serial")
    g.add_argument("--n-workers", type=_count(1), default=None,
                   help="LocalCluster worker processes")
    g.add_argument("--no-progress", action="store_true")
    g.set_defaults(func=_cmd_generate)

    t = sub.add_parser("train", help="train an operator from YAML configs")
    t.add_argument("--config", action="append", default=[], help="YAML (repeatable, merged)")
    t.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    t.add_argument("--out", required=True, help="run folder")
    t.add_argument("--resume", action="store_true", help="continue from <out>/checkpoints/last")
    t.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    t.set_defaults(func=_cmd_train)

    f = sub.add_parser("finetune", help="spectral fine-tuning of a trained run's last layer")
    f.add_argument("run", help="run folder or checkpoint")
    f.add_argument("--out", required=True, help="new run folder")
    f.add_argument("--mode", choices=("data", "residual"), default="data",
                   help="fit the labels, or the PDE residual in H^-1 (no labels)")
    f.add_argument("--modes", default="all", type=_modes_arg,
                   help="'all' or the refined layer's n_modes, e.g. 32 or 32,32")
    f.add_argument("--loss", help="data-mode loss, e.g. l2 or h1 (default l2)")
    f.add_argument("--residual-norm", type=float,
                   help="residual mode: Sobolev order of the residual norm (default -1)")
    f.add_argument("--residual-inputs", choices=("train", "test", "train+test"),
                   default="train", help="residual mode: whose inputs (labels unused)")
    f.add_argument("--lr", type=float)
    f.add_argument("--epochs", type=_count(1))
    f.add_argument("--batch-size", type=_count(1))
    f.add_argument("--patience", type=int, help="epochs without validation gain before stop")
    f.add_argument("--max-time", type=float, help="wall-clock limit in seconds")
    f.add_argument("--seed", type=int)
    f.set_defaults(func=_cmd_finetune)

    e = sub.add_parser("evaluate", help="metrics and figures of a trained run, or a suite")
    e.add_argument("run", nargs="?", help="run folder or checkpoint")
    e.add_argument("--data", help="test HDF5 file (default: the run's data.test)")
    e.add_argument("--out", help="output folder (default: <run>/eval; runs/cfd_suite)")
    e.add_argument("--n-plots", type=_count(0), default=4)
    e.add_argument("--suite", choices=("cfd",), help="train and evaluate a benchmark suite")
    e.add_argument("--cases", help="suite cases, e.g. cavity,step (default: all four)")
    e.add_argument("--sweeps", help="suite sweeps, e.g. bc,prop (default: bc,prop,geo)")
    e.add_argument("--operators", help="suite operators, e.g. FNO,TFNO (default: FNO)")
    e.add_argument("--full", action="store_true",
                   help="CFDBench size (64x64, 80/10/10 cases, 100 epochs) instead of quick")
    e.add_argument("--epochs", type=int, help="suite training epochs")
    e.add_argument("--set", action="append", default=[], metavar="OPERATOR.KEY=VALUE",
                   help="suite operator argument, e.g. FNO.n_modes=[16,16] (repeatable)")
    e.add_argument("--data-dir", help="suite data folder (default: <out>/data)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--no-baseline", action="store_true", help="skip the persistence baseline")
    e.add_argument("--overwrite", action="store_true",
                   help="replace an earlier evaluation in --out; with --suite, retrain runs")
    e.add_argument("--progress", action="store_true", help="show suite progress bars")
    e.set_defaults(func=_cmd_evaluate)

    m = sub.add_parser("import", help="convert an outside dataset into a pdeml HDF5 file")
    m.add_argument("format", choices=("fno-mat", "pdebench", "neuraloperator", "cfdbench"))
    m.add_argument("src", help="source file (or CFDBench folder)")
    m.add_argument("--out", required=True, help="target .h5 file")
    m.add_argument("--inputs", nargs="+", help="declared input selectors, e.g. a or u[0]")
    m.add_argument("--outputs", nargs="+", help="declared output selectors, e.g. u[-1]")
    m.add_argument("--names", help="pdebench: names of the data channels, e.g. u,v")
    m.add_argument("--limit", type=_count(1), help="import only the first N samples")
    m.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    m.set_defaults(func=_cmd_import)

    x = sub.add_parser("export", help="export a run to .pt2 (torch.export) or .onnx + model card")
    x.add_argument("run", help="run folder or checkpoint")
    x.add_argument("--out", required=True, help="target .pt2 or .onnx file")
    x.add_argument("--fixed-resolution", action="store_true",
                   help="export for the training grid only (default: dynamic when possible)")
    x.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    x.set_defaults(func=_cmd_export)

    r = sub.add_parser("predict", help="run an exported surrogate on .npy or HDF5 input")
    r.add_argument("model", help="exported .pt2 or .onnx file")
    r.add_argument("input", help=".npy (N, C, *grid) or a pdeml HDF5 file")
    r.add_argument("--out", required=True, help="output .npy")
    r.add_argument("--batch-size", type=_count(1), default=32)
    r.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(func=_cmd_predict)

    d = sub.add_parser("demo", help="generate -> train -> evaluate -> export -> predict")
    d.add_argument("--out", default="runs/demo")
    d.add_argument("--epochs", type=int, default=None)
    d.add_argument("--n-train", type=int, default=None)
    d.set_defaults(func=_cmd_demo)
    return p


def _user_error(err: BaseException) -> str | None:
    """The one-line message of an error caused by the input, or ``None`` for a bug.

    Input errors: ``ValueError`` (pdeml's own errors), ``OSError`` (files; h5py raises it for
    damaged HDF5), ``TypeError``/``KeyError`` (bad settings), memory exhaustion (Python's
    ``MemoryError`` and torch's allocator failure), Lightning's configuration errors and a
    missing optional package (``ModuleNotFoundError``, e.g. ``trainer.accelerator=tpu``).
    """
    text = " ".join(str(err).split())
    lightning_errors = sys.modules.get("lightning.fabric.utilities.exceptions")
    if isinstance(err, MemoryError) or (
            isinstance(err, RuntimeError) and "can't allocate memory" in text):
        return f"out of memory: {text or type(err).__name__}; choose smaller sizes"
    if isinstance(err, ModuleNotFoundError):  # an optional dependency the settings ask for
        return f"a package this needs is not installed: {text}"
    if lightning_errors is not None and isinstance(
            err, lightning_errors.MisconfigurationException):
        return f"invalid training setting: {text}"
    if isinstance(err, ValueError | OSError | TypeError | KeyError):
        return text or type(err).__name__
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pdeml`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], dict[str, Any]] = args.func
    try:
        result = func(args)
    except Exception as err:  # only the kinds _user_error knows; real bugs keep the traceback
        message = _user_error(err)
        if message is None or os.environ.get("PDEML_DEBUG"):
            raise
        print(f"pdeml: error: {message}", file=sys.stderr)
        return 1
    if result is not None and args.verb != "demo":
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
