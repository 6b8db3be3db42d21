"""Training: the LightningModule, losses, and (later) fine-tuning and rollouts."""

import warnings

from pdeml.trainers.losses import LpLoss, make_loss
from pdeml.trainers.module import OperatorModule, Surrogate

# Warnings a pdeml run cannot act on, silenced by their exact text. Lightning's own pytree
# helper calls a check that torch >= 2.10 deprecates (a FutureWarning on every fit);
# Lightning's "fewer training batches than the logging interval" is about per-step logging
# (pdeml logs its metrics per epoch); its "IterableDataset has __len__" is about DataLoader
# workers, among which the online dataset splits its epoch's batches.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                        category=FutureWarning)
warnings.filterwarnings("ignore", message=r"The number of training batches \(\d+\) is smaller "
                        r"than the logging interval")
warnings.filterwarnings("ignore", message=r"Your `IterableDataset` has `__len__` defined")

__all__ = ["LpLoss", "OperatorModule", "Surrogate", "make_loss"]
