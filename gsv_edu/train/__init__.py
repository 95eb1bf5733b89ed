"""Train SoVITS (GPT-SoVITS stage s2): `python -m gsv_edu.train --data DIR --out RUN`.

The command line and the `train()` function around the counterparts in
`GPT_SoVITS/s2_train.py · main, run, train_and_evaluate @48b1a01`:
- `run`: `train()` and `TrainingRun`: set-up, resume, the loop over epochs and batches, the
  checkpoints (`RUN/logs_s2_{version}/G_*.pth`, `D_*.pth`), the exported weights
  (`RUN/weights/{name}_e{epoch}_s{step}.pth`, the format the official inference UI loads) and
  the logs (`RUN/train.log`, TensorBoard in RUN, `RUN/metrics.jsonl`);
- `step`: `Trainer`: the models, optimizers, schedulers and one training step;
- `logs`, `distributed`, `rng`: the logs, the processes, the random states of an exact resume;
- `cli` (and `__main__`): the command line.
The data loader is `gsv_edu.data.loader`, the checkpoint files `gsv_edu.weights`.

    python -m gsv_edu.train                       # the sample corpus, tiny preset, CPU, ~10 min
    python -m gsv_edu.train --data DIR --out RUN --preset official-v2 \\
        --pretrained-g s2G2333k.pth --pretrained-d s2D2333k.pth --set train.batch_size=8
    torchrun --nproc_per_node 2 -m gsv_edu.train --data DIR --out RUN   # several processes/GPUs

What the official trainer does not do and this one does:
- resumes automatically from the newest checkpoint in RUN, exactly (step, data position,
  optimizers, schedulers, GradScaler, RNG states), and says so;
- `train.max_steps` stops after that many optimizer steps in total, with a checkpoint;
  `train.save_every_steps` checkpoints and exports every N steps; `train.keep_last` keeps the
  newest N checkpoints (official: all, or one fixed "latest" name with if_save_latest — ignored);
- atomic writes; a non-finite loss skips the step with a warning, and
  `train.max_nonfinite_steps` of them in a row stop the run without touching the checkpoints;
- one process on the CPU by default, `torchrun` for several (official: its own spawn).
"""
from __future__ import annotations

from gsv_edu.train.cli import build_parser, main
from gsv_edu.train.run import TrainingDiverged, TrainingRun, TrainResult, train

__all__ = ["train", "TrainingRun", "TrainResult", "TrainingDiverged", "main", "build_parser"]
