"""The LightningModule that trains any pdeml operator, and the plain Surrogate it wraps."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn

from pdeml.datasets.normalization import UnitGaussianNormalizer
from pdeml.operators import build
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out_normalizer.decode(self.model(self.in_normalizer.encode(x)))


class OperatorModule(L.LightningModule):
    """Supervised operator learning: ``loss(surrogate(x), y)`` in physical units.

    Parameters
    ----------
    model
        A pdeml operator, or its ``config`` dict (how checkpoints rebuild it).
    loss
        Loss name (``l2``: relative L2, ``l1``, ``mse``) or a loss module.
    lr, weight_decay
        AdamW settings.
    scheduler
        ``cosine`` (per step, to zero at the end of training), ``onecycle`` or ``none``.
    """

    def __init__(
        self,
        model: nn.Module | dict[str, Any],
        loss: str | nn.Module = "l2",
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        scheduler: str = "cosine",
    ) -> None:
        super().__init__()
        if scheduler not in SCHEDULERS:
            raise ValueError(f"unknown scheduler '{scheduler}'; use one of {', '.join(SCHEDULERS)}")
        net = build(model) if isinstance(model, dict) else model
        if not hasattr(net, "config"):
            raise TypeError("OperatorModule needs a pdeml operator (with a .config)")
        loss_name = loss if isinstance(loss, str) else type(loss).__name__
        self.save_hyperparameters(
            {"model": net.config, "loss": loss_name, "lr": lr,
             "weight_decay": weight_decay, "scheduler": scheduler}
        )
        kw = net.config["kwargs"]
        self.surrogate = Surrogate(
            net,
            UnitGaussianNormalizer(kw["in_channels"]),
            UnitGaussianNormalizer(kw["out_channels"]),
        )
        self.loss_fn = make_loss(loss)
        self.rel_l2 = LpLoss(2.0, relative=True)

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

    def training_step(
        self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int
    ) -> torch.Tensor:
        x, y = batch
        loss = self.loss_fn(self(x), y)
        self.log("train_loss", loss, prog_bar=True, on_step=False, on_epoch=True,
                 batch_size=len(x))
        return loss

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], prefix: str) -> None:
        x, y = batch
        pred = self(x)
        self.log(f"{prefix}_l2", self.rel_l2(pred, y), prog_bar=True, batch_size=len(x))
        self.log(f"{prefix}_mse", torch.mean((pred - y) ** 2), batch_size=len(x))

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
