"""bf16 exports (issue 29): ``pdeml export --precision bf16``, ``pdeml predict`` on it, and the
parity with the fp32 model that the model card records."""

import json

import numpy as np
import pytest
import torch

from pdeml.cli import main
from pdeml.export import export_module, load_exported
from pdeml.operators import FNO
from pdeml.precision import PARITY


@pytest.fixture(scope="module")
def bf16_export(trained_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("bf16") / "model_bf16.pt2"
    # --fixed-resolution: one trace (the dynamic-grid trial is the fp32 tests' business)
    assert main(["-q", "export", str(trained_run), "--out", str(out), "--precision", "bf16",
                 "--fixed-resolution"]) == 0
    return out


def test_card_records_precision_and_parity_within_tolerance(bf16_export, exported_model):
    card = json.loads((bf16_export.parent / (bf16_export.name + ".json")).read_text())
    assert card["precision"] == "bf16"
    parity = card["parity"]
    assert parity["tolerance"] == PARITY["bf16"] and parity["inputs"].startswith("first 8")
    assert 0 < parity["measured"]["rel_l2"] <= PARITY["bf16"]["rel_l2"]
    with open(exported_model + ".json") as fh:
        fp32_card = json.load(fh)
    assert fp32_card["precision"] == "fp32"
    assert fp32_card["parity"]["measured"]["max_rel"] <= PARITY["fp32"]["max_rel"]


def test_predict_on_the_bf16_export_matches_fp32_within_the_card(bf16_export, exported_model,
                                                                 darcy_dir, tmp_path):
    outs = {}
    for name, model in (("bf16", bf16_export), ("fp32", exported_model)):
        path = tmp_path / f"{name}.npy"
        assert main(["-q", "predict", str(model), str(darcy_dir / "test.h5"), "--out",
                     str(path)]) == 0
        outs[name] = np.load(path)
    assert outs["bf16"].dtype == np.float32 and outs["bf16"].shape == outs["fp32"].shape
    rel = np.linalg.norm(outs["bf16"] - outs["fp32"]) / np.linalg.norm(outs["fp32"])
    # bf16 really ran (not the fp32 graph again), within the recorded tolerance, and as far
    # from fp32 as the card says (its figure is measured on 8 of these samples)
    assert 1e-4 < rel <= PARITY["bf16"]["rel_l2"]
    card = json.loads((bf16_export.parent / (bf16_export.name + ".json")).read_text())
    assert 0.5 < rel / card["parity"]["measured"]["rel_l2"] < 2
    program = torch.export.load(bf16_export)
    dtypes = {v.dtype for k, v in program.state_dict.items() if "normalizer" not in k}
    assert dtypes == {torch.bfloat16}


def test_onnx_bf16_is_refused_in_one_line(tmp_path):
    pytest.importorskip("onnxruntime")
    net = FNO(1, 1, n_modes=(4, 4), hidden_channels=4, n_layers=1)
    with pytest.raises(ValueError, match="ONNX Runtime cannot run the bf16 export") as err:
        export_module(net, torch.randn(1, 1, 8, 8), tmp_path / "m.onnx", precision="bf16",
                      dynamic_resolution=False)
    assert "\n" not in str(err.value) and "export bf16 to .pt2" in str(err.value)
    assert not list(tmp_path.iterdir())


def test_bare_operator_exports_in_bf16_with_float32_io(tmp_path):
    net = FNO(1, 1, n_modes=(4, 4), hidden_channels=4, n_layers=1).eval()
    x = torch.randn(2, 1, 13, 13)
    info = export_module(net, x, tmp_path / "m.pt2", precision="bf16", dynamic_resolution=False)
    assert info["precision"] == "bf16"
    module, card = load_exported(tmp_path / "m.pt2")
    with torch.no_grad():
        y = module(x)
    assert card["precision"] == "bf16" and y.dtype == torch.float32
    with torch.no_grad():
        want = net(x)
    assert 1e-4 < float((y - want).norm() / want.norm()) < PARITY["bf16"]["rel_l2"]
