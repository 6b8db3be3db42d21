"""CFDBench's scoring protocols: one-step and non-autoregressive scores of a model on a file.

Shared by :mod:`pdeml.evaluate` (``pdeml evaluate`` on a CFDBench run) and :mod:`pdeml.suite`
(the CFD suite), below both: they used to import each other for these functions.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

IDENTITY = "identity"
PERSISTENCE = "persistence"  # the suite's name for the identity baseline
# CFDBench's train_auto.evaluate: the identity row (``input_*`` scores) and the DeepONet-style
# models, which predict one value per query point (``label[:, 0]``), are scored on u; the grid
# models (fno, unet, resnet, ``out_chan=2``) on u and v together
CFDBENCH_U_ONLY = ("auto_deeponet", "auto_edeeponet", "auto_deeponet_cnn", "auto_ffn",
                   "deeponet", "ffn")
CFDBENCH_GRID_FIELDS = ("u", "v")


def cfdbench_fields(model: str) -> tuple[str, ...]:
    """The fields CFDBench's one-step evaluation scores for a model of this name's family.

    ``("u",)`` for the identity baseline (``identity`` / ``persistence``) and for
    CFDBench's DeepONet-style models (:data:`CFDBENCH_U_ONLY`, any case); ``("u", "v")``
    for every other model: pdeml's operators map the frame to the next frame, as CFDBench's
    FNO, U-Net and ResNet (``out_chan=2``) do.
    """
    name = str(model).lower()
    if name in (IDENTITY, PERSISTENCE) or name in CFDBENCH_U_ONLY:
        return ("u",)
    return CFDBENCH_GRID_FIELDS


def _channels(fields: Sequence[str], available: Sequence[str], what: str) -> list[int]:
    """Channel indices of ``fields`` among ``available`` (the dataset's fields)."""
    missing = [f for f in fields if f not in available]
    if missing or not fields:
        raise ValueError(f"{what} fields {list(fields)} are not all among the data's "
                         f"{list(available)}")
    return [list(available).index(f) for f in fields]


@torch.no_grad()
def cfdbench_profile(model: Any, data: str | Path, spec: dict[str, Any], batch_size: int = 16,
                     masked: bool = True, fields: Sequence[str] = CFDBENCH_GRID_FIELDS,
                     identity_fields: Sequence[str] = ("u",)) -> dict[str, Any]:
    """CFDBench's one-step scores of ``model`` and of the identity baseline on a test file.

    Pairs are visited as CFDBench's loader does (cases in file order, frames in time order,
    cut at the converged-frame rule of ``spec``) in batches of ``batch_size``. Returns
    ``model`` and ``identity`` (:meth:`pdeml.metrics.CFDBenchScores.compute`), ``pooled``
    (pdeml's :class:`pdeml.metrics.MetricAccumulator` of the same pairs, fluid points only
    unless ``masked=False``) and ``fields`` (what each was scored on).

    Parameters
    ----------
    model, data, spec, batch_size, masked
        The one-step model, the test file, its rollout spec, CFDBench's evaluation batch
        size and pdeml's masking of the pooled metrics.
    fields
        Fields the model's CFDBench scores pool: ``("u", "v")`` (the default, CFDBench's
        FNO / U-Net / ResNet and so pdeml's grid operators) or ``("u",)`` (CFDBench's
        DeepONet-style models); :func:`cfdbench_fields` gives a family's default.
    identity_fields
        Fields of the identity baseline's scores (CFDBench: ``("u",)``).
    """
    from torch.utils.data import DataLoader

    from pdeml.datasets.timeseries import StepDataset
    from pdeml.metrics import CFDBenchScores, MetricAccumulator
    from pdeml.trainers.rollout import next_frame

    ds = StepDataset(data, **{k: v for k, v in spec.items() if k != "task"})
    step = next_frame(model, ds.n_fields, ds.history, ds.residual)
    ours = CFDBenchScores(batch_size, _channels(fields, ds.fields, "model"))
    ident = CFDBenchScores(batch_size, _channels(identity_fields, ds.fields, "identity"))
    pooled = MetricAccumulator(ds.fields)
    for idx in DataLoader(range(len(ds)), batch_size=batch_size, shuffle=False):
        pairs = [ds.pair_index(int(k)) for k in idx]
        x = torch.stack([ds.input_at(i, t) for i, t in pairs])
        y = torch.stack([ds.series[i, t + 1] for i, t in pairs])
        mask = ds.mask_of([i for i, _ in pairs])
        pred = step(x)
        ours.update(pred, y, mask)  # CFDBench masks the model's output and label ...
        ident.update(torch.stack([ds.series[i, t] for i, t in pairs]), y)  # ... not these
        pooled.update(pred, y, mask=mask if masked else None)
    return {"model": ours.compute(), "identity": ident.compute(), "pooled": pooled.compute(),
            "fields": {"model": list(fields), "identity": list(identity_fields)}}


@torch.no_grad()
def nonauto_profile(model: Any, data: str | Path, spec: dict[str, Any], batch_size: int = 16,
                    masked: bool = True, fields: Sequence[str] = ("u",)) -> dict[str, Any]:
    """CFDBench's scores (and pdeml's pooled metrics) of a non-autoregressive model over
    every frame of every test case, in order, batches of ``batch_size``; the CFDBench scores
    pool ``fields`` (CFDBench's ``train.evaluate`` scores its DeepONet / FFN on u:
    ``label[:, :1]``)."""
    from torch.utils.data import DataLoader

    from pdeml.datasets.timeseries import NonAutoDataset
    from pdeml.metrics import CFDBenchScores, MetricAccumulator

    ds = NonAutoDataset(data, spec["fields"], spec.get("static", ()))
    ours = CFDBenchScores(batch_size, _channels(fields, ds.fields, "model"))
    pooled = MetricAccumulator(ds.fields)
    at = ds.static.index("mask") if "mask" in ds.static else None
    for x, y in DataLoader(ds, batch_size=batch_size, shuffle=False):
        mask = x[:, at] if at is not None else None
        pred = model(x)
        ours.update(pred, y, mask)
        pooled.update(pred, y, mask=mask if masked else None)
    return {"model": ours.compute(), "pooled": pooled.compute(),
            "fields": {"model": list(fields)}}
