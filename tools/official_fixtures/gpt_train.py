"""Fixture group `gpt_train`: two epochs of the official s1 training (Lightning) on a tiny model.

Runs `GPT_SoVITS/AR/models/t2s_lightning_module.py · Text2SemanticLightningModule` with
`AR/data/data_module.py · Text2SemanticDataModule` under a `pytorch_lightning.Trainer` set up as
`GPT_SoVITS/s1_train.py · main` does (CPU, precision "32" as the web UI sets it without half
precision, `use_distributed_sampler=False`, `limit_val_batches=0`, a `ModelCheckpoint` with
save_top_k=-1, monitor top_3_acc, every epoch) @48b1a01, with pytorch-lightning 2.6.6.

The prepared folder is the rule-made one of `gpt_dataset` (100 items after repetition, batch
size 8: 13 batches per epoch, optimizer steps after batches 4, 8 and 12). The model is the
s1longer-v2 config shrunk to 16 dims, 2 heads, 1 layer (64 k parameters), seeded by
`seed_everything(1234)` as s1_train.py. One change to the official run, so that the numbers do
not depend on how dropout draws random numbers: the model is put in eval mode before every
batch (dropout off; nothing else in training depends on the mode).

Writes
- `gpt/train_run.pt`: the config, the initial weights, per batch (epoch, batch_idx, loss, acc),
  per optimizer step the learning rate it used, and a checksum of every weight after the run
  (sum and sum of absolute values per tensor, float64);
- `gpt/train_epoch0.ckpt`: the Lightning checkpoint written at the end of epoch 0 (as the
  official file is: hyper_parameters with a pathlib path, loops, callbacks, optimizer and
  scheduler states) — an official checkpoint to resume from.
"""
from __future__ import annotations

import copy
import os
import pathlib
import shutil
import sys
import tempfile

import torch

TINY_MODEL = dict(vocab_size=1025, phoneme_vocab_size=732, embedding_dim=16, hidden_dim=16, head=2, linear_units=64,
                  n_layer=1, dropout=0, EOS=1024, random_bert=0)


def official_config(folder: pathlib.Path, output_dir: pathlib.Path) -> dict:
    """s1longer-v2.yaml with the web UI's additions, a tiny model, 2 epochs, fp32."""
    return {
        "train": {"seed": 1234, "epochs": 2, "batch_size": 8, "save_every_n_epoch": 1, "precision": "32",
                  "gradient_clip": 1.0, "if_save_latest": False, "if_save_every_weights": True, "if_dpo": False,
                  "half_weights_save_dir": str(output_dir / "weights"), "exp_name": "fixture"},
        "optimizer": {"lr": 0.01, "lr_init": 0.00001, "lr_end": 0.0001, "warmup_steps": 2000, "decay_steps": 40000},
        "data": {"max_eval_sample": 8, "max_sec": 54, "num_workers": 1, "pad_val": 1024},
        "model": dict(TINY_MODEL),
        "inference": {"top_k": 15},
        "train_semantic_path": str(folder / "6-name2semantic.tsv"),
        "train_phoneme_path": str(folder / "2-name2text.txt"),
        "output_dir": str(output_dir / "logs_s1_v2"),
        "pretrained_s1": None,
    }


def make(official: pathlib.Path, out: pathlib.Path) -> list[pathlib.Path]:
    root = str(official / "GPT_SoVITS")
    if root not in sys.path:
        sys.path.insert(0, root)
    os.environ["version"] = "v2"
    torch.set_num_threads(1)
    from AR.data.data_module import Text2SemanticDataModule
    from AR.models.t2s_lightning_module import Text2SemanticLightningModule
    from pytorch_lightning import Trainer, seed_everything
    from pytorch_lightning.callbacks import ModelCheckpoint
    from text import symbols2

    from official_fixtures.gpt_dataset import build_files, write_folder

    class Recording(Text2SemanticLightningModule):
        """The official module, recording each batch's loss/acc and each optimizer step's lr."""

        def on_fit_start(self):
            self.rows, self.lrs = [], []
            forward_old = self.model.forward_old

            def recording_forward_old(*args):
                loss, acc = forward_old(*args)
                self.rows.append((self.current_epoch, self._batch_idx, loss.item(), acc))
                return loss, acc

            self.model.forward_old = recording_forward_old

        def on_train_batch_start(self, batch, batch_idx):
            self._batch_idx = batch_idx
            self.model.eval()  # dropout off (see the module docstring)

        def on_before_optimizer_step(self, optimizer):
            self.lrs.append(optimizer.param_groups[0]["lr"])

    tmp = pathlib.Path(tempfile.mkdtemp())
    try:
        folder = tmp / "prepared"
        folder.mkdir()
        write_folder(folder, build_files(list(symbols2.symbols)))
        config = official_config(folder, tmp)
        output_dir = pathlib.Path(config["output_dir"])
        ckpt_dir = output_dir / "ckpt"
        ckpt_dir.mkdir(parents=True)
        seed_everything(config["train"]["seed"], workers=True)
        checkpoint = ModelCheckpoint(save_top_k=-1, monitor="top_3_acc", mode="max", save_on_train_epoch_end=True,
                                     every_n_epochs=1, dirpath=ckpt_dir)
        trainer = Trainer(max_epochs=config["train"]["epochs"], accelerator="cpu", limit_val_batches=0, devices=1,
                          benchmark=False, fast_dev_run=False, strategy="auto",
                          precision=config["train"]["precision"], logger=False, num_sanity_val_steps=0,
                          callbacks=[checkpoint], use_distributed_sampler=False, enable_progress_bar=False)
        model = Recording(config, output_dir)
        initial = {k: v.detach().clone() for k, v in model.model.state_dict().items()}
        data = Text2SemanticDataModule(config, train_semantic_path=config["train_semantic_path"],
                                       train_phoneme_path=config["train_phoneme_path"])
        trainer.fit(model, data)
        final = model.model.state_dict()
        record = {
            "config": copy.deepcopy(config),
            "initial": initial,
            "batches": model.rows,
            "step_lrs": model.lrs,
            "final_sum": {k: v.double().sum().item() for k, v in final.items()},
            "final_abs_sum": {k: v.double().abs().sum().item() for k, v in final.items()},
            "global_step": trainer.global_step,
            "checkpoints": sorted(os.listdir(ckpt_dir)),
        }
        folder_out = out / "gpt"
        folder_out.mkdir(parents=True, exist_ok=True)
        run_path = folder_out / "train_run.pt"
        torch.save(record, run_path)
        ckpt_path = folder_out / "train_epoch0.ckpt"
        shutil.copyfile(ckpt_dir / "epoch=0-step=3.ckpt", ckpt_path)
        return [run_path, ckpt_path]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
