"""Training: the LightningModule, losses, and (later) fine-tuning and rollouts."""

from pdeml.trainers.losses import LpLoss, make_loss
from pdeml.trainers.module import OperatorModule, Surrogate

__all__ = ["LpLoss", "OperatorModule", "Surrogate", "make_loss"]
