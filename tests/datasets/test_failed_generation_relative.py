"""A generation that fails before its first shard leaves the user's folder as it was, also
when ``--out`` is a relative path (the clean-up compared it with absolute ones)."""

from __future__ import annotations

import pytest

from pdeml.datasets import generate_dataset
from pdeml.solvers.problems import DarcyFlow


def _broken(rngs):
    raise RuntimeError("solver blew up")


@pytest.mark.parametrize("relative", [True, False])
def test_failed_first_shard_leaves_nothing(tmp_path, monkeypatch, relative):
    monkeypatch.chdir(tmp_path)
    out = "data/darcy" if relative else tmp_path / "data" / "darcy"
    problem = DarcyFlow(resolution=8)
    monkeypatch.setattr(problem, "sample_batch", _broken)  # this instance only
    with pytest.raises(RuntimeError, match="blew up"):
        generate_dataset(problem, out, {"train": 4}, progress=False)
    assert list(tmp_path.iterdir()) == []
