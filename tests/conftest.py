"""Shared fixtures: a tiny Darcy dataset and a tiny trained + exported run, built once."""

import os
import subprocess
import sys

# Before numpy/torch load OpenBLAS: its worker threads slow small BLAS calls badly on 2 cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

TINY_RUN = {
    "seed": 0,
    "model": {"name": "FNO", "n_modes": [4, 4], "hidden_channels": 8, "n_layers": 2},
    "module": {"lr": 1e-2},
    "trainer": {"max_epochs": 2, "enable_progress_bar": False},
}


@pytest.fixture(scope="session")
def darcy_dir(tmp_path_factory):
    from pdeml.datasets import generate_dataset
    from pdeml.solvers.problems import DarcyFlow

    out = tmp_path_factory.mktemp("darcy")
    generate_dataset(DarcyFlow(resolution=16), out, {"train": 40, "test": 10}, seed=0,
                     progress=False)
    return out


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, darcy_dir):
    from pdeml.trainers.fit import train

    out = tmp_path_factory.mktemp("run")
    cfg = {**TINY_RUN, "data": {"train": str(darcy_dir / "train.h5"),
                                "test": str(darcy_dir / "test.h5"), "batch_size": 8}}
    train(cfg, out)
    return out


@pytest.fixture(scope="session")
def exported_model(trained_run):
    from pdeml.export import export_run

    return export_run(trained_run, trained_run / "model.pt2")["program"]


@pytest.fixture(scope="module")
def client():
    """A two-process Dask LocalCluster client, one per test module."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0")
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture
def burnt_core():
    """One process spinning on a core for the whole test (the machine is busy)."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    yield proc
    proc.kill()
    proc.wait()
