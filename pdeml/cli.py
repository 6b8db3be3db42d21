"""``pdeml`` command line: verb dispatch only (the science lives in the package)."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import sys
import threading
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
    if args.surrogate:
        _use_surrogate(problem, args)
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
                             progress=not args.no_progress and _progress_on(),
                             scheduler=args.scheduler,
                             n_workers=args.n_workers)
    return {k: str(v) for k, v in paths.items()}


def _use_surrogate(problem: Any, args: argparse.Namespace) -> None:
    """``--surrogate RUN``: the trained run works inside the solves (solvers.hybrid)."""
    from pdeml.config import ConfigError
    from pdeml.evaluate import field_surrogate

    if not hasattr(problem, "use_surrogate"):
        raise ConfigError(f"--surrogate works inside linear solves; {problem.name} has none")
    if not os.path.exists(args.surrogate):
        raise ConfigError(f"--surrogate {args.surrogate}: no such run or checkpoint")
    sur = field_surrogate(args.surrogate, threads=1)
    try:
        problem.use_surrogate(sur, use=args.surrogate_use, every=args.surrogate_every,
                              smooth=args.surrogate_smooth, space_mode=args.space_mode,
                              source=str(args.surrogate))
    except ValueError as err:
        raise ConfigError(f"--surrogate {args.surrogate}: {err}") from None


def _progress_on() -> bool:
    from pdeml.progress import enabled

    return enabled()


def _cmd_train(args: argparse.Namespace) -> dict[str, Any] | str:
    from pdeml.config import compose
    from pdeml.trainers.fit import resolve_config, train

    if args.print_config:
        import yaml

        cfg = compose(args.config, args.set)
        return yaml.safe_dump(resolve_config(cfg, link=True), sort_keys=False).rstrip("\n")
    if not args.out:
        raise ValueError("name the run folder with --out")
    if args.resume:  # the run's saved config is the base; only --set changes it
        if args.config:
            _note("--resume continues with the run's saved config.yaml; --config files are "
                  "ignored (use --set to change a setting)")
        return train(compose([], args.set), args.out, resume=True)
    return train(compose(args.config, args.set), args.out, overwrite=args.overwrite)


# Options of the shared-weights fine-tuning that issue 31 retired (it measured no gain); they
# are still parsed so that an old command fails with the migration line, not argparse's.
RETIRED_FINETUNE = ("mode", "loss", "residual_norm", "residual_inputs", "epochs", "patience",
                    "max_time", "seed")


def _cmd_finetune(args: argparse.Namespace) -> dict[str, Any]:
    from pdeml.trainers.refine import refine_run

    retired = [k for k in RETIRED_FINETUNE if getattr(args, k) is not None]
    if retired:
        raise ValueError(f"--{retired[0].replace('_', '-')} belonged to shared-weights "
                         "fine-tuning, retired in pdeml 0.2 (it measured no gain: 0.0447 -> "
                         "0.0447); pdeml finetune now refines each trajectory (see the README's "
                         "'Fine-tuning: migration')")
    if "," in args.modes:
        raise ValueError("--modes is 'all' or one integer (square grids)")
    options = {k: v for k, v in (("steps", args.steps), ("lr", args.lr),
                                 ("lr_weight", args.lr_weight),
                                 ("residual_form", args.residual)) if v is not None}
    result = refine_run(args.run, args.out, data=args.data, field=args.field,
                        batch_size=args.batch_size or 1, force=args.force,
                        n_modes=args.modes if args.modes == "all" else int(args.modes), **options)
    return {k: v for k, v in result.items() if k != "trajectories"}


def _cmd_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    if args.suite:
        return _run_suite(args)
    if not args.run:
        raise ValueError("name a run folder (pdeml evaluate RUN) or a suite (--suite cfd)")
    from pdeml.evaluate import evaluate_run

    result = evaluate_run(args.run, data=args.data, out=args.out, n_plots=args.n_plots,
                          overwrite=args.overwrite, baselines=args.baselines == "on")
    if result.get("summary") and _progress_on():
        print(result["summary"], file=sys.stderr, flush=True)
    return result


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
        overwrite=args.overwrite, progress=args.progress, case_list=args.case_list,
        nonauto=args.nonauto, masked=not args.no_mask)
    return {k: v for k, v in result.items() if k != "rows"}


def _names(text: str | None, default: Sequence[str]) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()] if text else list(default)


def _cmd_import(args: argparse.Namespace) -> dict[str, Any]:
    from pdeml.datasets.importers import import_dataset

    options = {"inputs": args.inputs, "outputs": args.outputs, "n_samples": args.limit,
               "names": _names(args.names, ()) or None, "split": args.split,
               "subsets": args.subsets}
    return {"output": str(import_dataset(args.format, args.src, args.out,
                                         overwrite=args.overwrite, **options))}


def _cmd_export_data(args: argparse.Namespace) -> dict[str, Any]:
    from pdeml.datasets.the_well_export import export_the_well

    result = export_the_well(args.src, args.out, name=args.name, overwrite=args.overwrite)
    if result["skipped"]:
        _note(f"not on the fields' grid, not exported: {', '.join(result['skipped'])}")
    return result


def _cmd_export(args: argparse.Namespace) -> dict[str, Any]:
    from pdeml.export import export_run

    return export_run(args.run, args.out,
                      dynamic_resolution=False if args.fixed_resolution else None,
                      overwrite=args.overwrite, precision=args.precision)


def _cmd_predict(args: argparse.Namespace) -> dict[str, Any]:
    from pdeml.export import predict

    path = predict(args.model, args.input, args.out, batch_size=args.batch_size,
                   progress=not args.no_progress and _progress_on(), overwrite=args.overwrite)
    return {"output": str(path)}


def _cmd_demo(args: argparse.Namespace) -> str:
    from pdeml.demo import run_demo

    return run_demo(args.out, epochs=args.epochs, n_train=args.n_train, echo=False)["summary"]


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


def _modes_arg(text: str) -> str:
    if text != "all" and not all(p.strip().isdigit() for p in text.split(",")):
        raise argparse.ArgumentTypeError(f"'{text}' is not 'all' or comma-separated integers")
    return text


def _examples(*lines: str) -> str:
    return "example:\n" + "\n".join(f"  {line}" for line in lines)


def _verb(sub: Any, name: str, help_: str, examples: Sequence[str], func: Callable) -> Any:
    v = sub.add_parser(name, help=help_, description=help_[0].upper() + help_[1:] + ".",
                       epilog=_examples(*examples),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    v.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="no progress on stderr and no JSON on stdout (errors still shown)")
    v.set_defaults(func=func)
    return v


def _add_generate(sub: Any) -> None:
    g = _verb(sub, "generate", "solve a PDE family and write HDF5 splits", (
        "pdeml generate darcy --set resolution=64 --n-train 1000 --n-test 200 --out data/darcy",
        "pdeml generate --config configs/data/darcy_pwc.yaml --out data/darcy_pwc"),
        _cmd_generate)
    g.add_argument("problem", nargs="?", default=None,
                   help="problem name (`pdeml list problems` shows them and their options)")
    g.add_argument("--config", help="YAML with problem, n_train, n_val, n_test, seed, options")
    g.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="problem option, e.g. resolution=64 (repeatable; value parsed as YAML)")
    g.add_argument("--out", required=True, help="output folder (one <split>.h5 per split)")
    for split, n in (("train", 256), ("val", 0), ("test", 64)):
        g.add_argument(f"--n-{split}", dest=f"n_{split}", type=int, default=None, metavar="N",
                       help=f"samples in {split}.h5 (default {n}; 0 skips the split)")
    g.add_argument("--seed", type=int, default=None,
                   help="base seed; sample i of a split depends only on (seed, split, i)")
    g.add_argument("--overwrite", action="store_true", help="replace existing files")
    g.add_argument("--scheduler", default=None,
                   help="Dask: 'local' (a LocalCluster) or a scheduler address; default serial")
    g.add_argument("--n-workers", type=_count(1), default=None,
                   help="LocalCluster worker processes")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--surrogate", default=None, metavar="RUN",
                   help="a trained run used inside the linear solves (issue 27): its prediction "
                        "as the initial guess, its Ritz vectors as GCRO-DR's recycle space, or "
                        "its correction as a preconditioner level (--surrogate-use)")
    g.add_argument("--surrogate-use", choices=("guess", "space", "correct"), default="guess",
                   help="how --surrogate works in the solve (default guess)")
    g.add_argument("--surrogate-every", type=_count(1), default=1, metavar="N",
                   help="correct: the network at every N-th preconditioner application")
    g.add_argument("--surrogate-smooth", type=_count(0), default=0, metavar="N",
                   help="guess: N symmetric Gauss-Seidel sweeps on the prediction")
    g.add_argument("--space-mode", choices=("replace", "augment"), default="augment",
                   help="space: the predicted vectors alone, or first in the recycled space")


def _add_train(sub: Any) -> None:
    t = _verb(sub, "train", "train an operator from YAML configs", (
        "pdeml train --config configs/experiment/darcy_fno.yaml --set trainer.max_epochs=20 "
        "--out runs/fno",
        "pdeml train --out runs/fno --resume          # after a kill",
        "pdeml train --config configs/experiment/darcy_fno.yaml --print-config",
        "pdeml train --config configs/experiment/darcy_fno.yaml --out runs/es \\",
        "    --set 'trainer.callbacks=[{name: EarlyStopping, monitor: val_l2, patience: 5}]' \\",
        "    --set trainer.logger=false",
        "`pdeml list settings` lists every config key with its type, default and meaning."),
        _cmd_train)
    t.add_argument("--config", action="append", default=[],
                   help="YAML with sections seed, data, model, module, trainer (repeatable; "
                        "later files override earlier ones)")
    t.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one setting, e.g. trainer.max_epochs=20 (repeatable; value "
                        "parsed as YAML)")
    t.add_argument("--out", help="run folder (config.yaml, checkpoints/, logs/, metrics.json)")
    t.add_argument("--resume", action="store_true",
                   help="continue <out>/checkpoints/last.ckpt with the run's saved config")
    t.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    t.add_argument("--print-config", action="store_true",
                   help="print the resolved config (defaults, overrides, sizes linked from the "
                        "data) as YAML and exit")


def _add_finetune(sub: Any) -> None:
    f = _verb(sub, "finetune", "Spectral-Refiner: refine each test trajectory of a "
              "spatiotemporal Navier-Stokes run on its own, label-free (H^-1 residual on the "
              "fine grid)", (
        "pdeml finetune runs/ns_st --out runs/ns_refined --steps 100",
        "pdeml finetune runs/ns_st --out runs/ns_refined --residual snapshot --force"),
        _cmd_finetune)
    f.add_argument("run", help="run folder or checkpoint")
    f.add_argument("--out", required=True, help="new folder for the refined predictions")
    f.add_argument("--modes", default="all", type=_modes_arg,
                   help="'all' or the refined layer's n_modes (one integer)")
    f.add_argument("--steps", type=int, help="Adam steps per trajectory (default 100)")
    f.add_argument("--lr", type=float, help="step size of the spectral bias (default 2e-3)")
    f.add_argument("--lr-weight", type=float,
                   help="step size of the per-mode weights (default 1e-4)")
    f.add_argument("--batch-size", type=_count(1), help="trajectories refined together "
                   "(default 1)")
    f.add_argument("--data", help="test file (default: the run's data.test)")
    f.add_argument("--field", help="windowed variable to refine on "
                                    "(default: <field>_fine when the file has it)")
    f.add_argument("--residual", choices=("trapezoid", "snapshot"),
                   help="the residual minimized: 'trapezoid' (between consecutive snapshots "
                        "from the last input one, the default) or 'snapshot' (the authors': "
                        "each snapshot on its own)")
    f.add_argument("--force", action="store_true",
                   help="refine even when the parameter guard finds that the input windows "
                        "do not satisfy the equation with the file's viscosity, forcing and "
                        "time spacing")
    f.add_argument("--per-trajectory", action="store_true",
                   help="accepted for old scripts: per-trajectory refinement is what "
                        "finetune does")
    for name in RETIRED_FINETUNE:  # parsed only to answer with the migration line
        f.add_argument(f"--{name.replace('_', '-')}", default=None, help=argparse.SUPPRESS)


def _add_evaluate(sub: Any) -> None:
    e = _verb(sub, "evaluate", "metrics and figures of a trained run, or a benchmark suite", (
        "pdeml evaluate runs/fno",
        "pdeml evaluate runs/fno --data data/other/test.h5 --out runs/fno/eval_other",
        "pdeml evaluate --suite cfd --cases cavity --sweeps bc --out runs/cfd"), _cmd_evaluate)
    e.add_argument("run", nargs="?", help="run folder or checkpoint")
    e.add_argument("--data", help="test HDF5 file (default: the run's data.test)")
    e.add_argument("--out", help="output folder (default: <run>/eval; runs/cfd_suite)")
    e.add_argument("--n-plots", type=_count(0), default=4, help="samples drawn in samples.png")
    e.add_argument("--baselines", choices=("on", "off"), default="on",
                   help="price pdeml's own solver beside the surrogate: equal accuracy, equal "
                        "time, breakeven (default on)")
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
    e.add_argument("--seed", type=int, default=0, help="suite seed (data and training)")
    e.add_argument("--no-baseline", action="store_true", help="skip the persistence baseline")
    e.add_argument("--overwrite", action="store_true",
                   help="replace an earlier evaluation in --out; with --suite, retrain runs")
    e.add_argument("--progress", action="store_true",
                   help="suite: also show generation and training bars (run lines always show)")
    e.add_argument("--case-list", choices=("random", "cfdbench"), default="random",
                   help="suite cases: random draws, or CFDBench's case lists and protocol")
    e.add_argument("--nonauto", action="store_true",
                   help="suite: also CFDBench's non-autoregressive task")
    e.add_argument("--no-mask", action="store_true",
                   help="suite: score solid cells too (default: fluid points only)")


def _add_io(sub: Any) -> None:
    m = _verb(sub, "import", "convert an outside dataset into a pdeml HDF5 file", (
        "pdeml import neuraloperator darcy_train_16.pt --out darcy16.h5",
        "pdeml import pdebench 2D_diff-react_NA_NA.h5 --out rd.h5 --names u,v --limit 100",
        "pdeml import the_well shear_flow_Reynolds_1e5.hdf5 --out shear.h5"), _cmd_import)
    m.add_argument("format", choices=("fno-mat", "pdebench", "neuraloperator", "cfdbench",
                                      "the_well"), help="source format")
    m.add_argument("src", help="source file (or CFDBench folder)")
    m.add_argument("--out", required=True, help="target .h5 file")
    m.add_argument("--inputs", nargs="+", help="declared input selectors, e.g. a or u[0]")
    m.add_argument("--outputs", nargs="+", help="declared output selectors, e.g. u[-1]")
    m.add_argument("--names", help="pdebench: names of the data channels, e.g. u,v")
    m.add_argument("--limit", type=_count(1), help="import only the first N samples")
    m.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    m.add_argument("--subsets", help="cfdbench: subsets of a problem folder, e.g. prop_bc")
    m.add_argument("--split", choices=("train", "val", "test"),
                   help="cfdbench: only this part of CFDBench's seeded 8:1:1 case split")

    d = _verb(sub, "export-data", "write a time-dependent pdeml dataset in The Well's HDF5 "
              "layout", ("pdeml export-data data/ns/test.h5 --out well/ns/data/test/ns.hdf5",),
              _cmd_export_data)
    d.add_argument("src", help="a pdeml HDF5 file with (sample, time, *grid) fields")
    d.add_argument("--format", choices=("the_well",), default="the_well",
                   help="target format (default the_well)")
    d.add_argument("--out", required=True, help="target .hdf5 (or .h5) file")
    d.add_argument("--name", help="The Well's dataset_name (default: the source's problem)")
    d.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)

    x = _verb(sub, "export", "export a run to .pt2 (torch.export) or .onnx + model card", (
        "pdeml export runs/fno --out model/fno.pt2",
        "pdeml export runs/fno --out model/fno.onnx --fixed-resolution",
        "pdeml export runs/fno --out model/fno_bf16.pt2 --precision bf16"), _cmd_export)
    x.add_argument("run", help="run folder or checkpoint")
    x.add_argument("--out", required=True, help="target .pt2 or .onnx file (suffix decides)")
    x.add_argument("--fixed-resolution", action="store_true",
                   help="export for the training grid only (default: dynamic when possible)")
    x.add_argument("--precision", choices=("fp32", "bf16"), default="fp32",
                   help="weights and matrix products in bfloat16 (input, output and "
                        "normalization stay float32; the card records the parity with fp32). "
                        "bf16 is faster only on CPUs with AMX/avx512_bf16 or on GPUs")
    x.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)

    r = _verb(sub, "predict", "run an exported surrogate on .npy or HDF5 input", (
        "pdeml predict model/fno.pt2 data/darcy_pwc/test.h5 --out pred.npy",), _cmd_predict)
    r.add_argument("model", help="exported .pt2 or .onnx file")
    r.add_argument("input", help=".npy (N, C, *grid) or a pdeml HDF5 file")
    r.add_argument("--out", required=True, help="output .npy")
    r.add_argument("--batch-size", type=_count(1), default=32, help="samples per forward pass")
    r.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP)
    r.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_tools(sub: Any) -> None:
    d = _verb(sub, "demo", "generate -> train -> evaluate -> export -> predict on Darcy 64x64",
              ("pdeml demo --out runs/demo --epochs 5",), _cmd_demo)
    d.add_argument("--out", default="runs/demo", help="scratch folder (default runs/demo)")
    d.add_argument("--epochs", type=_count(1), default=None,
                   help="training epochs (default 15)")
    d.add_argument("--n-train", type=_count(1), default=None,
                   help="training samples (default 320)")

    ls = _verb(sub, "list", "list problems, operators, samplers or train settings with their "
               "options", ("pdeml list problems", "pdeml list operators FNO",
                           "pdeml list samplers", "pdeml list settings module"), _cmd_list)
    ls.add_argument("what", choices=("problems", "operators", "samplers", "settings"),
                    help="problems (for generate), operators (model.name), samplers "
                         "(data.online.sampler) or settings (train config keys)")
    ls.add_argument("name", nargs="?", help="only this problem / operator / sampler / config "
                    "section")
    ls.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")

    i = _verb(sub, "info", "describe a pdeml HDF5 file: dims, variables, provenance, solver", (
        "pdeml info data/darcy_pwc/train.h5",), _cmd_info)
    i.add_argument("file", help="a pdeml HDF5 file")
    i.add_argument("--json", action="store_true", help="machine-readable JSON on stdout")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-command per verb."""
    from pdeml import __version__

    p = _Parser(prog="pdeml", description="PDE surrogates: generate, train, evaluate, export.",
                epilog=_examples("pdeml generate --config configs/data/darcy_pwc.yaml "
                                 "--out data/darcy_pwc",
                                 "pdeml train --config configs/experiment/darcy_fno.yaml "
                                 "--out runs/fno",
                                 "pdeml evaluate runs/fno", "pdeml <verb> --help"),
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"pdeml {__version__}")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress on stderr and no JSON on stdout (errors still shown)")
    sub = p.add_subparsers(dest="verb", required=True, parser_class=_Parser, metavar="VERB")
    for add in (_add_generate, _add_train, _add_finetune, _add_evaluate, _add_io, _add_tools):
        add(sub)
    return p


def _cmd_list(args: argparse.Namespace) -> dict[str, Any] | str:
    from pdeml import discover

    found = discover.listing(args.what, args.name)
    return found if args.json else discover.format_listing(args.what, found)


def _cmd_info(args: argparse.Namespace) -> dict[str, Any] | str:
    from pdeml import discover

    found = discover.info(args.file)
    return found if args.json else discover.format_info(found)


def _note(message: str) -> None:
    print(f"pdeml: note: {message}", file=sys.stderr, flush=True)


class _Terminated(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated(signum)


@contextlib.contextmanager
def _stdout_to_stderr() -> Any:
    """Point stdout (the Python object and, where there is one, file descriptor 1) at stderr
    while a verb runs, so that only its result reaches stdout, whoever writes what."""
    sys.stdout.flush()
    try:
        fd = sys.stdout.fileno()
        saved = os.dup(fd)
        os.dup2(sys.stderr.fileno(), fd)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        fd = saved = None
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        if fd is not None:
            os.dup2(saved, fd)
            os.close(saved)


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


def _run(args: argparse.Namespace) -> tuple[int, Any]:
    from pdeml.trainers.callbacks import TrainingInterrupted

    try:
        return 0, args.func(args)
    except TrainingInterrupted as err:
        print(f"pdeml: error: {err}", file=sys.stderr)
        return 128 + err.signum, None
    except (_Terminated, KeyboardInterrupt) as err:
        signum = getattr(err, "signum", signal.SIGINT)
        print(f"pdeml: error: interrupted by {signal.Signals(signum).name}; what was written "
              "is kept (re-run the command to finish)", file=sys.stderr)
        return 128 + signum, None
    except Exception as err:  # only the kinds _user_error knows; real bugs keep the traceback
        message = _user_error(err)
        if message is None or os.environ.get("PDEML_DEBUG"):
            raise
        print(f"pdeml: error: {message}", file=sys.stderr)
        return 1, None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``pdeml`` console script; returns the exit code.

    Progress and logs go to stderr; stdout carries only the verb's result (JSON, or the text
    of ``list``/``info``/``--print-config``), nothing with ``--quiet``.
    """
    from pdeml import progress

    args = build_parser().parse_args(argv)
    quiet = bool(getattr(args, "quiet", False))
    progress.set_enabled(not quiet)
    previous = signal.getsignal(signal.SIGTERM)
    in_main = threading.current_thread() is threading.main_thread()
    if in_main:
        signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        with _stdout_to_stderr():
            rc, result = _run(args)
    finally:
        progress.set_enabled(True)
        if in_main:
            signal.signal(signal.SIGTERM, previous)
    if rc == 0 and result is not None and not quiet:
        text = result if isinstance(result, str) else json.dumps(result, indent=2)
        try:
            print(text, flush=True)
        except BrokenPipeError:  # `pdeml list problems | head`: the reader has had enough
            # Point stdout at /dev/null so that the interpreter's own flush at exit does not
            # raise again, and exit as a Unix tool stopped by SIGPIPE does: quietly, 141.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 128 + 13
    return rc


if __name__ == "__main__":
    sys.exit(main())
