"""The LightningModule that trains any pdeml operator, and the plain Surrogate it wraps."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics import MeanMetric

from pdeml.datasets.normalization import UnitGaussianNormalizer
from pdeml.operators import build
from pdeml.precision import as_float32, full_precision
from pdeml.trainers.losses import LpLoss, make_loss

SCHEDULERS = ("cosine", "onecycle", "none")


class Surrogate(nn.Module):
    """Normalize, apply the operator, de-normalize: the model as users (and exports) see it."""

    def __init__(
        self,
        model: nn.Module,
        in_normalizer: UnitGaussianNormalizer,
        out_normalizer: UnitGaussianNormalizer,
    ) -> None:
        super().__init__()
        self.model, self.in_normalizer, self.out_normalizer = model, in_normalizer, out_normalizer

    def forward(self, x: torch.Tensor, features: torch.Tensor | None = None,
                mask: torch.Tensor | None = None) -> torch.Tensor:
        """A grid ``x``, or point clouds: coordinates ``x`` with ``features`` and ``mask``
        (channels last; normalized as a ``(batch, channels, points)`` field).

        Normalization runs in float32 (at least) in every precision; the network gets its
        input in its weights' dtype (bf16 for ``bf16-true`` or a bf16 export) and its output
        is de-normalized in float32, so the loss and an export's output are float32.
        """
        if features is None:
            return self.out_normalizer.decode(self.model(self._cast(self.in_normalizer.encode(x))))
        z = self._cast(self.in_normalizer.encode(features.transpose(1, 2)).transpose(1, 2))
        out = self.model(self._cast(x), z, mask)
        return self.out_normalizer.decode(out.transpose(1, 2)).transpose(1, 2)

    def _cast(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the dtype of the network's weights when those are bf16/fp16."""
        p = next(self.model.parameters(), None)
        low = p is not None and p.dtype in (torch.bfloat16, torch.float16)
        return x.to(p.dtype) if low and x.is_floating_point() else x


class OperatorModule(L.LightningModule):
    """Supervised operator learning: ``loss(surrogate(x), y)`` in physical units.

    Any Lightning ``precision`` trains it (``32``, ``bf16-mixed``, ``bf16-true``, ``16-mixed``
    on GPU): the normalization, the loss and the validation metrics are computed in float32
    in all of them (the operators' own fp32 regions are in their docstrings).

    Parameters
    ----------
    model
        A pdeml operator, or its ``config`` dict (how checkpoints rebuild it).
    loss
        Loss name (``l2``: relative L2, ``l1``, ``mse``, ``h1``/``h-1``/``h<s>``: relative
        Sobolev), a mapping such as ``{"name": "sobolev", "s": 1, "periodic": False}``, or a
        loss module; see :func:`pdeml.trainers.losses.make_loss`.
    lr, weight_decay
        AdamW settings.
    scheduler
        ``cosine`` (per step, to zero at the end of training), ``onecycle`` or ``none``.
    refined_modes
        Set only in checkpoints of the shared-weights fine-tuning that pdeml 0.2 retired
        (issue 31: it measured no gain); such a checkpoint is refused with the migration line.
    """

    def __init__(
        self,
        model: nn.Module | dict[str, Any],
        loss: str | dict[str, Any] | nn.Module = "l2",
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        scheduler: str = "cosine",
        refined_modes: dict[str, list[int]] | None = None,
    ) -> None:
        super().__init__()
        if scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler '{scheduler}'; use one of {', '.join(SCHEDULERS)}")
        net = build(model) if isinstance(model, dict) else model
        if not hasattr(net, "config"):
            raise TypeError("OperatorModule needs a pdeml operator (with a .config)")
        if refined_modes:
            raise ValueError("this checkpoint comes from shared-weights fine-tuning, retired in "
                             "pdeml 0.2 (it measured no gain); use the run it was fine-tuned "
                             "from (see the README's 'Fine-tuning: migration')")
        self.loss_fn = make_loss(loss)
        # A loss with a plain config (LpLoss, SobolevLoss) is stored so checkpoints rebuild it.
        loss_spec = loss if isinstance(loss, str | dict) else getattr(
            self.loss_fn, "config", type(loss).__name__)
        self.save_hyperparameters(
            {"model": net.config, "loss": loss_spec, "lr": lr,
             "weight_decay": weight_decay, "scheduler": scheduler}
        )
        kw = net.config["kwargs"]
        self.surrogate = Surrogate(
            net,
            UnitGaussianNormalizer(kw["in_channels"]),
            UnitGaussianNormalizer(kw["out_channels"]),
        )
        self.rel_l2 = LpLoss(2.0, relative=True)
        self._rel_l2_each = LpLoss(2.0, relative=True, reduction="none")
        # Per-sample relative L2 of the last training batch, kept while an active sampler of
        # the online stream asks for it (pdeml.datasets.online.SamplerFeedback).
        self.record_sample_losses = False
        self.last_sample_losses: list[float] | None = None
        # Validation/test metrics accumulate (sum, weight) and torchmetrics reduces them over
        # the DDP ranks at the end of the epoch: the logged value is the whole set's, not one
        # rank's. Their states are not persistent, so checkpoints keep their keys.
        self.eval_metrics = nn.ModuleDict({f"{split}_{name}": MeanMetric()
                                           for split in ("val", "test") for name in ("l2", "mse")})

    @property
    def model(self) -> nn.Module:
        """The bare operator (normalized space)."""
        return self.surrogate.model

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        if not bool(self.surrogate.in_normalizer.fitted) and hasattr(dm, "fit_normalizers"):
            n_in, n_out = dm.fit_normalizers()
            self.surrogate.in_normalizer.load_state_dict(n_in.state_dict())
            self.surrogate.out_normalizer.load_state_dict(n_out.state_dict())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.surrogate(x)

    def _predict(self, batch: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Prediction, target and valid-entry count; point-cloud batches ``(coords, x, y,
        mask)`` get both zeroed on padding, so relative Lp losses cover valid points only."""
        if len(batch) == 4:
            coords, x, y, mask = batch
            keep = mask.unsqueeze(-1)
            pred = torch.where(keep, self.surrogate(coords, x, mask), 0.0)
            y = torch.where(keep, y, 0.0)
            return pred, y, int(mask.sum()) * y.shape[-1]
        x, y = batch
        return self(x), y, y.numel()

    def training_step(
        self, batch: tuple[torch.Tensor, ...], batch_idx: int
    ) -> torch.Tensor:
        pred, y, _ = self._predict(batch)
        with full_precision(pred):  # the loss and its Sobolev weights in fp32, any precision
            loss = self.loss_fn(*as_float32(pred, y))
            if self.record_sample_losses:  # an active sampler's signal (SamplerFeedback)
                each = self._rel_l2_each(*as_float32(pred.detach(), y))
                self.last_sample_losses = each.flatten().tolist()
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True,
                 batch_size=len(y))
        return loss

    def _eval_step(self, batch: tuple[torch.Tensor, ...], prefix: str) -> None:
        pred, y, n_valid = self._predict(batch)
        pred, y = as_float32(pred, y)
        l2, mse = self.eval_metrics[f"{prefix}_l2"], self.eval_metrics[f"{prefix}_mse"]
        l2.update(self._rel_l2_each(pred, y).detach())  # one weight per sample
        mse.update(torch.sum((pred - y) ** 2).detach() / n_valid, weight=n_valid)
        self.log(f"{prefix}_l2", l2, prog_bar=True, on_step=False, on_epoch=True)
        self.log(f"{prefix}_mse", mse, on_step=False, on_epoch=True)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        opt = torch.optim.AdamW(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.scheduler == "none":
            return opt
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        if hp.scheduler == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=hp.lr, total_steps=steps)
        else:
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
