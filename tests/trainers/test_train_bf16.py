"""Training in reduced precision (issue 29): ``trainer.precision`` reaches Lightning."""

import json

import pytest
import torch
from conftest import TINY_RUN

from pdeml.checks import InputError
from pdeml.precision import bf16_support, precision_problem
from pdeml.trainers.fit import train


def _cfg(darcy_dir, **trainer):
    return {**TINY_RUN, "trainer": {**TINY_RUN["trainer"], "accelerator": "cpu", **trainer},
            "data": {"train": str(darcy_dir / "train.h5"), "test": str(darcy_dir / "test.h5"),
                     "batch_size": 8}}


def test_bf16_mixed_trains_end_to_end(tmp_path, darcy_dir, trained_run):
    result = train(_cfg(darcy_dir, precision="bf16-mixed"), tmp_path / "run")
    fp32 = json.loads((trained_run / "metrics.json").read_text())
    assert result["cost"]["precision"] == "bf16-mixed"
    assert result["cost"]["bf16_native"] == bf16_support("cpu")["native"]
    # The same seed and steps as the fp32 run: close to it, but not bitwise (bf16 GEMMs ran).
    assert result["test_l2"] != fp32["test_l2"]
    assert abs(result["test_l2"] / fp32["test_l2"] - 1) < 0.2
    held = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    weights = [v for k, v in held["state_dict"].items() if k.startswith("surrogate.model.")]
    assert all(w.dtype == torch.float32 for w in weights)  # mixed: fp32 master weights


def test_bf16_true_keeps_normalization_in_fp32(tmp_path, darcy_dir):
    result = train(_cfg(darcy_dir, precision="bf16-true", max_epochs=1), tmp_path / "run")
    assert result["cost"]["precision"] == "bf16-true" and result["test_l2"] < 1.0
    held = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    sd = held["state_dict"]
    assert sd["surrogate.model.lifting.weight"].dtype == torch.bfloat16
    assert sd["surrogate.in_normalizer.std"].dtype == torch.float32


def test_float16_on_cpu_is_refused_in_one_line(tmp_path, darcy_dir):
    with pytest.raises(InputError, match="float16.*needs a GPU; on CPU use bf16-mixed"):
        train(_cfg(darcy_dir, precision="16-mixed"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_slow_bf16_is_detected():
    error, note = precision_problem("bf16-mixed", "cpu")
    assert error is None
    assert (note is None) == bf16_support("cpu")["native"]
    if note:
        assert "no bf16 instructions" in note and "\n" not in note
    assert precision_problem("32", "cpu") == (None, None)
