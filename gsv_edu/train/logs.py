"""What a training run writes for people to read: a log file, TensorBoard, and a JSONL of the scalars.

Mirrors the logging of `GPT_SoVITS/s2_train.py · run, train_and_evaluate @48b1a01` (through
`GPT_SoVITS/utils.py · get_logger, summarize`): rank 0 writes `train.log`
and TensorBoard summaries into the experiment folder, with the official tag names
(`loss/g/total`, `loss/d/total`, `learning_rate`, `grad_norm_d`, `grad_norm_g`,
`loss/g/fm`, `loss/g/mel`, `loss/g/kl_ssl`, `loss/g/kl`, `loss/g/{i}`, `loss/d_r/{i}`,
`loss/d_g/{i}`; images `slice/mel_org`, `slice/mel_gen`, `all/mel`, `all/stats_ssl`).

gsv_edu additions:
- `metrics.jsonl`: one JSON object per logged step with the same scalars (plain text, easy
  to read with pandas: `pd.read_json(path, lines=True)`);
- audio samples (`audio/real_slice`, `audio/gen_slice`, `audio/gen_full`);
- on resume, both TensorBoard (`purge_step`) and `metrics.jsonl` drop what was logged after
  the checkpoint, so the curves have no duplicated stretch.
Difference: the scalars are the mean over the steps since the previous log line (official:
the values of the single step at the log point); less noisy, same units.
"""
from __future__ import annotations

import json
import logging
import math
import os
import sys
from pathlib import Path

import numpy as np
import torch

from gsv_edu.atomic import atomic_write_text

__all__ = ["setup_logging", "RunLogger", "spectrogram_image", "read_metrics", "METRICS_FILE", "LOG_FILE",
           "log_above_bar"]

METRICS_FILE = "metrics.jsonl"
LOG_FILE = "train.log"
LOGGER_NAME = "gsv_edu.train"


def setup_logging(run_dir: str | os.PathLike | None, is_main: bool, quiet: bool = False) -> logging.Logger:
    """The training logger: INFO to stderr (and to RUN/train.log) on rank 0, warnings only elsewhere."""
    logger = logging.getLogger(LOGGER_NAME)
    logger.setLevel(logging.INFO if is_main else logging.WARNING)
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    console = logging.StreamHandler(sys.stderr)
    console.setLevel(logging.WARNING if quiet or not is_main else logging.INFO)
    console.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(console)
    if is_main and run_dir is not None:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(Path(run_dir) / LOG_FILE, encoding="utf-8")
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(fh)
    return logger


def log_above_bar(log: logging.Logger, bar, text: str) -> None:
    """An info line that does not tear the tqdm progress `bar` (None: no bar)."""
    if bar is not None:
        bar.clear()
    log.info(text)
    if bar is not None:
        bar.refresh()


def spectrogram_image(spec: np.ndarray | torch.Tensor) -> np.ndarray:
    """A [F, T] spectrogram as an RGB image [H, W, 3] uint8, low frequencies at the bottom.

    Mirrors `utils.plot_spectrogram_to_numpy` (matplotlib, viridis) when matplotlib is
    installed; otherwise a plain grey-scale image of the same data. Drawn on an off-screen
    canvas without pyplot, so the process's matplotlib backend (a notebook's, say) is untouched.
    """
    if isinstance(spec, torch.Tensor):
        spec = spec.detach().float().cpu().numpy()
    spec = np.asarray(spec, dtype=np.float32)
    try:  # deferred: matplotlib is an optional dependency (the dev extra)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        lo, hi = float(spec.min()), float(spec.max())
        grey = ((spec - lo) / (hi - lo + 1e-8) * 255).astype(np.uint8)[::-1]  # [F, T], low bins at the bottom
        return np.repeat(grey[:, :, None], 3, axis=2)  # [F, T, 3]
    fig = Figure(figsize=(10, 2.5))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    im = ax.imshow(spec, aspect="auto", origin="lower", interpolation="none")
    fig.colorbar(im, ax=ax)
    ax.set_xlabel("frames")
    ax.set_ylabel("channels")
    fig.tight_layout()
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[:, :, :3].copy()  # [H, W, 3]


def read_metrics(run_dir: str | os.PathLike) -> list[dict]:
    """The rows of RUN/metrics.jsonl (empty list if there is none)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a crash: ignore it
                continue
    return rows


class RunLogger:
    """TensorBoard + metrics.jsonl of one run; inert on ranks other than 0 (`enabled=False`).

    `start_step`: the step the run resumes from; anything logged after it before is dropped.
    """

    def __init__(self, run_dir: str | os.PathLike, enabled: bool = True, start_step: int = 0,
                 tensorboard: bool = True):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.writer = None
        self.metrics_path = self.run_dir / METRICS_FILE
        if not enabled:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._truncate_metrics(start_step)
        if tensorboard:
            try:  # deferred: importing tensorboard takes seconds, and the JSONL works without it
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:  # tensorboard not installed: the JSONL and the log still work
                logging.getLogger(LOGGER_NAME).warning("tensorboard is not installed; writing %s only",
                                                       self.metrics_path)
            else:
                self.writer = SummaryWriter(log_dir=str(self.run_dir), purge_step=start_step + 1 if start_step else None)

    def _truncate_metrics(self, start_step: int) -> None:
        """Keep only rows with step ≤ start_step (a resumed run repeats the steps after its checkpoint)."""
        if not self.metrics_path.is_file():
            return
        rows = read_metrics(self.run_dir)
        kept = [r for r in rows if int(r.get("step", 0)) <= start_step]
        if len(kept) != len(rows):
            atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept))

    def scalars(self, step: int, values: dict[str, float], extra: dict | None = None) -> None:
        """Write scalars (TensorBoard tags as given) and one JSONL row {step, **extra, **values}."""
        if not self.enabled:
            return
        if self.writer is not None:
            for tag, value in values.items():
                self.writer.add_scalar(tag, value, step)
        row = {"step": step, **(extra or {}),
               **{k: (None if not math.isfinite(v) else float(f"{v:.7g}")) for k, v in values.items()}}  # 7 digits
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    def images(self, step: int, spectrograms: dict[str, torch.Tensor]) -> None:
        """Spectrogram images ([F, T] each) under the given tags."""
        if not self.enabled or self.writer is None:
            return
        for tag, spec in spectrograms.items():
            self.writer.add_image(tag, spectrogram_image(spec), step, dataformats="HWC")

    def audio(self, step: int, clips: dict[str, torch.Tensor], sampling_rate: int) -> None:
        """Audio clips ([N] floats in [-1, 1]) under the given tags."""
        if not self.enabled or self.writer is None:
            return
        for tag, clip in clips.items():
            clip = clip.detach().float().cpu().reshape(1, -1).clamp(-1, 1)  # [1, N]
            self.writer.add_audio(tag, clip, step, sample_rate=sampling_rate)

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
