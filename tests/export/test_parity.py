"""Every operator exports to .pt2 and ONNX and runs in a fresh process like eager PyTorch."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from pdeml import operators
from pdeml.export import export_module
from pdeml.operators import build, list_operators

# Small configurations per registered operator (2-D grids). An operator that cannot export to a
# format goes into NOT_EXPORTABLE with the reason, which the README repeats.
CONFIGS = {
    "FNO": {"n_modes": [6, 6], "hidden_channels": 8, "n_layers": 2},
    "T1": {"n_modes": [6, 6], "hidden_channels": 8, "n_layers": 2},
    "TFNO": {"n_modes": [6, 6], "hidden_channels": 8, "n_layers": 2, "rank": 0.3},
    "MGTFNO": {"n_modes": [6, 6], "hidden_channels": 8, "n_layers": 2, "rank": 0.3},
    "MgNO": {"hidden_channels": 4, "n_layers": 2, "n_levels": 2},
    "LSM": {"hidden_channels": 8, "n_scales": 2, "n_heads": 2, "patches": 2},
    "GNOT": {"hidden_channels": 8, "n_layers": 1, "n_heads": 2, "n_experts": 2},
}
NOT_EXPORTABLE: dict[tuple[str, str], str] = {}
SIZES = (12, 13)  # even and odd grids
# Every operator takes the even and the odd grid (MgNO pads 13 to 14 and crops).
GRID_SIZES: dict[str, tuple[int, int]] = {}
FORMATS = ("pt2", "onnx")
TOLERANCE = 1e-5  # max absolute difference vs eager, float32

LOADER = """
import json, sys
import numpy as np, torch
from pdeml.export import load_exported
jobs = json.loads(sys.argv[1])
for job in jobs:
    module, card = load_exported(job["model"])
    x = torch.from_numpy(np.load(job["input"]))
    with torch.no_grad():
        np.save(job["output"], module(x).numpy())
"""


def test_every_registered_operator_is_covered():
    public = {name for name in list_operators() if hasattr(operators, name)}  # not test models
    missing = sorted(public - set(CONFIGS))
    assert not missing, f"add export configs for {missing}"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Export each operator x format once (dynamic grid where possible), eager outputs kept.

    Operators are exported in a pool of spawned processes, one per core (at most two)."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    from parity_jobs import export_operator

    root = tmp_path_factory.mktemp("export")
    jobs, expected, info = [], {}, {}
    todo = {name: tuple(f for f in FORMATS if (name, f) not in NOT_EXPORTABLE)
            for name in CONFIGS}
    workers = max(1, min(2, os.cpu_count() or 1))
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        runs = {name: pool.submit(export_operator, name, CONFIGS[name], formats,
                                  GRID_SIZES.get(name, SIZES), str(root))
                for name, formats in todo.items() if formats}
        for name, run in runs.items():
            name_jobs, name_expected, name_info = run.result(timeout=900)
            jobs += name_jobs
            expected.update({(name, *k): v for k, v in name_expected.items()})
            info.update({(name, fmt): v for fmt, v in name_info.items()})
    # one fresh interpreter loads every file: nothing of this process's state is reused
    done = subprocess.run([sys.executable, "-c", LOADER, json.dumps(jobs)], timeout=600,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    got = {tuple(j["key"]): np.load(j["output"]) for j in jobs}
    return expected, got, info


@pytest.mark.parametrize("name", sorted(CONFIGS))
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("grid", ["even", "odd"])
def test_exported_matches_eager_in_a_fresh_process(exported, name, fmt, grid):
    if (name, fmt) in NOT_EXPORTABLE:
        pytest.skip(NOT_EXPORTABLE[name, fmt])
    expected, got, _ = exported
    n = GRID_SIZES.get(name, SIZES)[grid == "odd"]
    diff = np.abs(got[name, fmt, n] - expected[name, fmt, n]).max()
    assert got[name, fmt, n].shape == expected[name, fmt, n].shape
    assert diff <= TOLERANCE, diff


def test_spectral_operators_export_with_a_dynamic_grid(exported):
    _, _, info = exported
    for fmt in FORMATS:
        assert info["FNO", fmt]["dynamic_resolution"]


def test_unknown_format_and_unexportable_model_fail_clearly(tmp_path):
    net = build({"name": "FNO", "kwargs": {"in_channels": 1, "out_channels": 1,
                                           **CONFIGS["FNO"]}})
    with pytest.raises(ValueError, match="must end in .pt2 or .onnx"):
        export_module(net, torch.randn(1, 1, 8, 8), tmp_path / "m.tflite")

    class DataDependent(torch.nn.Module):
        def forward(self, x):
            return x[x > 0]  # output size depends on the values

    with pytest.raises(ValueError, match="cannot export DataDependent to pt2"):
        export_module(DataDependent(), torch.randn(1, 1, 8, 8), tmp_path / "m.pt2")
    assert not (tmp_path / "m.pt2").exists()


STATIC_GRID = sorted(n for n in CONFIGS if not getattr(operators, n).dynamic_grid_export)


@pytest.mark.slow  # each failed symbolic trace takes up to ~30 s
@pytest.mark.parametrize("name", STATIC_GRID)
def test_operators_declared_static_cannot_trace_a_symbolic_grid(name):
    """``dynamic_grid_export = False`` only skips a trace that would fail: it must still fail."""
    from pdeml.export import _dynamic_shapes, prepare_for_export

    net = prepare_for_export(build({"name": name, "kwargs": {"in_channels": 2,
                                                             "out_channels": 1,
                                                             **CONFIGS[name]}}))
    example = torch.randn(2, 2, SIZES[0], SIZES[0])
    with pytest.raises(Exception, match="Constraints violated"):
        torch.export.export(net, (example,), dynamic_shapes=_dynamic_shapes(example, True))


def test_static_grid_operators_are_declared():
    assert STATIC_GRID == ["LSM", "MGTFNO", "MgNO"]
    for name in STATIC_GRID:  # the cards say so, as when the fallback found it by trial
        assert getattr(operators, name).dynamic_grid_export is False
