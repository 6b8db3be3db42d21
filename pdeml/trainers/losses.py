"""Training losses on ``(batch, channels, *spatial)`` fields."""

from __future__ import annotations

import torch
from torch import nn


class LpLoss(nn.Module):
    """Lp distance between fields, relative (per sample) or absolute.

    The relative form is ``||pred - target||_p / ||target||_p`` per sample, channels and grid
    points pooled; the absolute form is the discrete Lp norm on the unit cube,
    ``(mean |pred - target|^p)^(1/p)`` (the grid spacing cancels into the mean).

    Parameters
    ----------
    p
        Order of the norm (``p >= 1``).
    relative
        Divide by the target's norm, per sample.
    reduction
        ``"mean"``, ``"sum"`` or ``"none"`` over the batch.
    eps
        Guards the division for an all-zero target.
    """

    def __init__(
        self, p: float = 2.0, relative: bool = True, reduction: str = "mean", eps: float = 1e-12
    ) -> None:
        super().__init__()
        if p < 1:
            raise ValueError(f"Lp loss needs p >= 1, got {p}")
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"unknown reduction '{reduction}'; use mean, sum or none")
        self.p, self.relative, self.reduction, self.eps = float(p), relative, reduction, eps

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if pred.shape != target.shape:
            raise ValueError(
                f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ"
            )
        diff = (pred - target).flatten(1)
        if self.relative:
            num = torch.linalg.vector_norm(diff, ord=self.p, dim=1)
            den = torch.linalg.vector_norm(target.flatten(1), ord=self.p, dim=1)
            per_sample = num / (den + self.eps)
        else:
            per_sample = diff.abs().pow(self.p).mean(dim=1).pow(1.0 / self.p)
        if self.reduction == "mean":
            return per_sample.mean()
        if self.reduction == "sum":
            return per_sample.sum()
        return per_sample


LOSSES = {"l2": lambda: LpLoss(2.0), "l1": lambda: LpLoss(1.0), "mse": nn.MSELoss}


def make_loss(spec: str | nn.Module) -> nn.Module:
    """A loss module from its name (``l2``, ``l1``, ``mse``) or passed through as is."""
    if isinstance(spec, nn.Module):
        return spec
    if spec not in LOSSES:
        raise ValueError(f"unknown loss '{spec}'; available: {', '.join(LOSSES)}")
    return LOSSES[spec]()
