"""Discoverability and config handling of the CLI: --version, list, info, help texts,
--print-config, typed validation, --quiet, --resume without a run."""

import json

import pytest
import yaml

from pdeml.cli import build_parser, main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_version(capsys):
    from pdeml import __version__

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"pdeml {__version__}"


def test_every_option_has_help_and_every_verb_an_example():
    parser = build_parser()
    verbs = parser._subparsers._group_actions[0].choices
    assert {"generate", "train", "evaluate", "export", "predict", "list", "info"} <= set(verbs)
    for name, sub in verbs.items():
        assert sub.epilog and sub.epilog.startswith("example:") and "pdeml" in sub.epilog, name
        for action in sub._actions:
            if action.dest != "help":
                assert action.help, f"pdeml {name}: {action.option_strings or action.dest}"


def test_list_problems_operators_settings(capsys):
    code, out, _ = run(capsys, "list", "problems")
    assert code == 0 and "darcy" in out and "resolution (int, default 64)" in out
    code, out, _ = run(capsys, "list", "operators", "FNO", "--json")
    options = {o["key"]: o for o in json.loads(out)["FNO"]["options"]}
    assert options["hidden_channels"]["default"] == 32 and options["hidden_channels"]["help"]
    code, out, _ = run(capsys, "list", "settings", "trainer")
    assert "trainer.max_epochs (int | None, default 20)" in out.replace("Optional[int]",
                                                                        "int | None")
    assert "trainer.logger" in out and "trainer.callbacks" in out
    code, _, err = run(capsys, "list", "operators", "Nope")
    assert code == 1 and err.startswith("pdeml: error: unknown operator 'Nope'")


def test_info_reports_dims_variables_provenance_solver(capsys, darcy_dir):
    code, out, _ = run(capsys, "info", str(darcy_dir / "train.h5"), "--json")
    info = json.loads(out)
    assert info["dims"]["sample"] == 40 and info["dims"]["x"] == 16
    assert info["variables"]["a"]["dims"] == ["sample", "y", "x"]
    assert info["attributes"]["problem"] == "darcy"
    assert info["solver_stats"]["solver_residual"]["max"] < 1e-6
    code, out, _ = run(capsys, "info", str(darcy_dir / "train.h5"))
    assert code == 0 and "provenance:" in out


def test_print_config_links_sizes_and_shows_defaults(capsys, darcy_dir):
    code, out, _ = run(capsys, "train", "--print-config", "--set",
                       f"data.train={darcy_dir / 'train.h5'}", "--set", "model.n_layers=2")
    cfg = yaml.safe_load(out)
    assert code == 0 and cfg["model"]["in_channels"] == 1 and cfg["model"]["n_layers"] == 2
    assert cfg["trainer"]["accelerator"] == "auto" and cfg["trainer"]["logger"] == "csv"


@pytest.mark.parametrize("setting, message", [
    ("module.lr=fast", "module.lr must be a number, got 'fast'"),
    ("trainer.max_epoch=3", "did you mean trainer.max_epochs?"),
    ("model.hidden_channels=[3]", "model.hidden_channels must be an integer"),
    ("trainer.logger=wandb", "trainer.logger must be false, csv or tensorboard"),
    ("trainer.callbacks=[EarlyStop]", "unknown callback 'EarlyStop'"),
])
def test_typed_validation_one_line(capsys, darcy_dir, tmp_path, setting, message):
    code, out, err = run(capsys, "train", "--out", str(tmp_path / "r"), "--set",
                         f"data.train={darcy_dir / 'train.h5'}", "--set", setting)
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert message in err, err


def test_tensorboard_without_the_package_is_a_one_line_error(capsys, darcy_dir, tmp_path):
    import importlib.util

    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        pytest.skip("tensorboard is installed here")
    code, out, err = run(capsys, "train", "--out", str(tmp_path / "r"), "--set",
                         f"data.train={darcy_dir / 'train.h5'}", "--set",
                         "trainer.logger=tensorboard")
    assert code == 1 and out == "" and len(err.strip().splitlines()) == 1
    assert "needs the tensorboard package (pip install tensorboard)" in err, err
    assert not (tmp_path / "r").exists()  # refused before anything was written


def test_logger_false_and_early_stopping_callback(darcy_dir, tmp_path):
    from conftest import TINY_RUN

    from pdeml.trainers.fit import train

    cfg = {**TINY_RUN, "data": {"train": str(darcy_dir / "train.h5"), "batch_size": 8},
           "trainer": {"max_epochs": 30, "logger": False, "enable_progress_bar": False,
                       "callbacks": [{"name": "EarlyStopping", "monitor": "val_l2",
                                      "patience": 1, "min_delta": 10.0}]}}
    train(cfg, tmp_path / "r")
    assert not (tmp_path / "r" / "logs").exists()
    import torch

    ckpt = torch.load(tmp_path / "r" / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["epoch"] < 5  # stopped early: no epoch improves val_l2 by 10


def test_resume_without_checkpoint_and_quiet(capsys, tmp_path):
    code, out, err = run(capsys, "train", "--out", str(tmp_path / "none"), "--resume")
    assert code == 1 and err.startswith("pdeml: error: nothing to resume")
    assert len(err.strip().splitlines()) == 1
    code, out, err = run(capsys, "--quiet", "list", "problems")
    assert code == 0 and out == ""
