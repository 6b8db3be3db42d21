"""scripts/bench_precision.py at smoke size: its step table and the bf16 emulation it uses for
accuracy studies on CPUs without bf16 instructions."""

import importlib.util
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_precision",
                                               ROOT / "scripts" / "bench_precision.py")
bench_precision = importlib.util.module_from_spec(_spec)
sys.modules["bench_precision"] = bench_precision
_spec.loader.exec_module(bench_precision)


def test_steps_reports_both_precisions_side_by_side(tmp_path, capsys):
    out = tmp_path / "steps.json"
    assert bench_precision.main(["steps", "--ops", "FNO", "T1", "--sizes", "16", "--batch", "2",
                                 "--repeats", "1", "--out", str(out),
                                 "--threads", str(torch.get_num_threads())]) == 0
    report = json.loads(out.read_text())
    assert report["machine"]["cpu_bf16"]["detail"]["capability"]
    assert [r["operator"] for r in report["rows"]] == ["FNO", "T1"]
    for row in report["rows"]:
        for mode in ("fp32", "bf16-mixed"):
            assert row[f"{mode}_s"] > 0 and row[f"{mode}_peak_MiB"] > 0
        # bf16 keeps half-size activations for the backward pass
        assert row["bf16-mixed_peak_MiB"] < row["fp32_peak_MiB"]
    assert "| FNO | 16^2 |" in capsys.readouterr().out


def test_emulation_runs_bf16_products_with_bf16_error_size():
    torch.manual_seed(0)
    a, b = torch.randn(4, 32, 40), torch.randn(4, 40, 24)
    exact = a.double() @ b.double()
    native = torch.bmm(a.bfloat16(), b.bfloat16())
    mode = bench_precision.EmulatedBF16()
    with mode:
        emulated = torch.bmm(a.bfloat16(), b.bfloat16())
    assert mode.calls == 1 and emulated.dtype == torch.bfloat16

    def rel(x):
        return float((x.double() - exact).norm() / exact.norm())

    # bf16 rounding of the operands and the result (2^-9 relative), not fp32 (1e-7)
    assert 1e-3 < rel(emulated) < 3e-3 and abs(rel(emulated) / rel(native) - 1) < 0.05


def test_emulation_intercepts_the_backward_pass_too():
    net = torch.nn.Linear(8, 8)
    mode = bench_precision.EmulatedBF16()
    with mode, torch.autocast("cpu", torch.bfloat16):
        net(torch.randn(4, 8)).float().sum().backward()
    assert mode.calls >= 2 and net.weight.grad is not None  # forward addmm, backward mm(s)
