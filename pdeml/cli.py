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

    return train(compose(args.config, args.set), args.out, resume=args.resume)


def _cmd_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from pdeml.evaluate import evaluate_run

    return evaluate_run(args.run, data=args.data, out=args.out, n_plots=args.n_plots)


def _cmd_export(args: argparse.Namespace) -> dict[str, Any]:
    from pdeml.export import export_run

    return export_run(args.run, args.out)


def _cmd_predict(args: argparse.Namespace) -> dict[str, Any]:
    from pdeml.export import predict

    path = predict(args.model, args.input, args.out, batch_size=args.batch_size,
                   progress=not args.no_progress)
    return {"output": str(path)}


def _cmd_demo(args: argparse.Namespace) -> dict[str, Any]:
    from pdeml.demo import run_demo

    return run_demo(args.out, epochs=args.epochs, n_train=args.n_train)


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
    g.add_argument("--n-workers", type=int, default=None, help="LocalCluster worker processes")
    g.add_argument("--no-progress", action="store_true")
    g.set_defaults(func=_cmd_generate)

    t = sub.add_parser("train", help="train an operator from YAML configs")
    t.add_argument("--config", action="append", default=[], help="YAML (repeatable, merged)")
    t.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    t.add_argument("--out", required=True, help="run folder")
    t.add_argument("--resume", action="store_true", help="continue from <out>/checkpoints/last")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("evaluate", help="metrics and figures of a trained run")
    e.add_argument("run", help="run folder or checkpoint")
    e.add_argument("--data", help="test HDF5 file (default: the run's data.test)")
    e.add_argument("--out", help="output folder (default: <run>/eval)")
    e.add_argument("--n-plots", type=int, default=4)
    e.set_defaults(func=_cmd_evaluate)

    x = sub.add_parser("export", help="export a run to torch.export .pt2 + model card")
    x.add_argument("run", help="run folder or checkpoint")
    x.add_argument("--out", required=True, help="target .pt2 file")
    x.set_defaults(func=_cmd_export)

    r = sub.add_parser("predict", help="run an exported surrogate on .npy or HDF5 input")
    r.add_argument("model", help="exported .pt2 file")
    r.add_argument("input", help=".npy (N, C, *grid) or a pdeml HDF5 file")
    r.add_argument("--out", required=True, help="output .npy")
    r.add_argument("--batch-size", type=int, default=32)
    r.add_argument("--no-progress", action="store_true")
    r.set_defaults(func=_cmd_predict)

    d = sub.add_parser("demo", help="generate -> train -> evaluate -> export -> predict")
    d.add_argument("--out", default="runs/demo")
    d.add_argument("--epochs", type=int, default=None)
    d.add_argument("--n-train", type=int, default=None)
    d.set_defaults(func=_cmd_demo)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pdeml`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], dict[str, Any]] = args.func
    try:
        result = func(args)
    except (ValueError, OSError, TypeError, KeyError) as err:
        if os.environ.get("PDEML_DEBUG"):
            raise
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"pdeml: error: {message}", file=sys.stderr)
        return 1
    if result is not None and args.verb != "demo":
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
