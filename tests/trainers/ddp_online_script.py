"""Two CPU ranks (gloo DDP) train on a stream; run by tests/trainers/test_online.py.

Usage: ``python ddp_online_script.py OUT EPOCHS [--resume]``. Lightning starts rank 1 by
running this script again; each rank writes the stream indices it trained on to
``OUT/log_<EPOCHS>_rank<r>.json``.
"""

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def main() -> None:
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint

    from pdeml.datasets.online import OnlineDataModule
    from pdeml.operators import FNO
    from pdeml.trainers import OperatorModule

    torch.set_num_threads(1)
    out, epochs, resume = Path(sys.argv[1]), int(sys.argv[2]), "--resume" in sys.argv
    L.seed_everything(0, verbose=False)
    dm = OnlineDataModule("darcy", {"resolution": 16, "solver": "direct"}, batch_size=4,
                          batches_per_epoch=3, buffer="fifo", capacity=16, n_workers=1,
                          chunk=2, record_indices=True)
    net = FNO(in_channels=1, out_channels=1, n_modes=(4, 4), hidden_channels=8, n_layers=2)
    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", devices=2, strategy="ddp",
                        logger=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[ModelCheckpoint(dirpath=out / "ck", save_last=True)])
    trainer.fit(OperatorModule(net, lr=1e-2), dm,
                ckpt_path=out / "ck" / "last.ckpt" if resume else None)
    log = out / f"log_{epochs}_rank{trainer.global_rank}.json"
    log.write_text(json.dumps(dm.train_set.index_log))


if __name__ == "__main__":
    main()
