"""Helpers for the book's notebooks: set-up, the sample corpus, plots, audio players, shape tables.

Every chapter starts with `device = book.setup()` and uses these helpers instead of copying plotting
code from chapter to chapter. Nothing here is needed by the library itself; matplotlib, IPython and
ipywidgets are imported inside the functions that use them, because they are optional (the dev extra).
"""
from __future__ import annotations

import contextlib
import inspect
import os
import pathlib
import random
import time
from dataclasses import dataclass

import numpy as np
import torch

from gsv_edu.audio import load_audio, resample

REPO_DIR = pathlib.Path(__file__).resolve().parent.parent
SAMPLE_DIR = REPO_DIR / "data" / "sample"
SAMPLE_LIST = SAMPLE_DIR / "sample.list"


# ------------------------------------------------------------------------------------------ set-up

def setup(seed: int = 0, threads: int | None = 1, quiet: bool = False) -> torch.device:
    """Fix every seed, pick the device (the GPU if there is one, else the CPU), set plot defaults.

    Returns the device. `threads` sets torch's CPU threads: 1 by default, because the chapters'
    tiny models are too small to gain from more and the tests run two notebooks side by side;
    `None` keeps torch's choice. The environment variable GSV_BOOK_THREADS overrides it.
    """
    threads = int(os.environ.get("GSV_BOOK_THREADS", 0)) or threads
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if threads is not None:
        torch.set_num_threads(threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with contextlib.suppress(ImportError):
        import matplotlib

        matplotlib.rcParams.update({"figure.figsize": (9, 3), "figure.dpi": 72, "savefig.dpi": 72,
                                    "axes.grid": False, "image.cmap": "magma", "font.size": 9})
    if not quiet:
        print(f"torch {torch.__version__} on {device} ({torch.get_num_threads()} CPU threads), seed {seed}")
    return device


@contextlib.contextmanager
def timer(label: str = "took"):
    """`with book.timer("forward"):` prints the wall time of the block."""
    start = time.perf_counter()
    yield
    print(f"{label}: {time.perf_counter() - start:.2f} s")


# ------------------------------------------------------------------------------------ sample corpus

@dataclass
class Utterance:
    """One line of data/sample/sample.list."""

    name: str
    path: pathlib.Path
    speaker: str
    language: str
    text: str

    def load(self, sampling_rate: int = 32000) -> np.ndarray:
        return load_audio(self.path, sampling_rate)


def sample_corpus(list_path: str | os.PathLike = SAMPLE_LIST) -> list[Utterance]:
    """The utterances of the sample corpus (data/sample/), in list order."""
    list_path = pathlib.Path(list_path)
    if not list_path.is_file():
        raise FileNotFoundError(f"{list_path}: the sample corpus is missing; the book expects a clone of the "
                                "gsv_edu repository with data/sample/")
    out = []
    for line in list_path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        wav, speaker, language, text = line.split("|", 3)
        path = (list_path.parent / wav).resolve()
        out.append(Utterance(path.name, path, speaker, language.lower(), text))
    return out


def utterance(name: str, list_path: str | os.PathLike = SAMPLE_LIST) -> Utterance:
    """Look up one utterance of the sample corpus by file name (with or without extension)."""
    for u in sample_corpus(list_path):
        if u.name == name or u.path.stem == name:
            return u
    raise KeyError(f"{name}: not in {list_path}")


# ------------------------------------------------------------------------------------------- audio

def audio_player(y, sampling_rate: int = 32000, max_seconds: float = 5.0, store_rate: int = 16000):
    """An inline audio player. The clip is cut to `max_seconds` and stored at `store_rate`
    (16 kHz by default) so that committed notebooks stay small."""
    from IPython.display import Audio

    if isinstance(y, torch.Tensor):
        y = y.detach().float().cpu().numpy()
    y = np.asarray(y, dtype=np.float32).reshape(-1)[: int(max_seconds * sampling_rate)]
    if store_rate and store_rate < sampling_rate:
        y, sampling_rate = resample(y, sampling_rate, store_rate), store_rate
    return Audio(y, rate=sampling_rate, normalize=True)


def players(clips: dict, sampling_rate: int = 32000, **kwargs):
    """Several labelled players side by side: `book.players({"real": y, "generated": y_hat})`."""
    import ipywidgets as widgets

    boxes = []
    for label, y in clips.items():
        out = widgets.Output()
        with out:
            from IPython.display import display

            display(audio_player(y, sampling_rate, **kwargs))
        boxes.append(widgets.VBox([widgets.Label(label), out]))
    return widgets.HBox(boxes)


# ------------------------------------------------------------------------------------------- plots

def _np(x):
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    return np.asarray(x)


def plot_waveform(y, sampling_rate: int = 32000, ax=None, title: str | None = None, **kwargs):
    """Waveform against time in seconds."""
    import matplotlib.pyplot as plt

    y = _np(y).reshape(-1)
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 2))
    ax.plot(np.arange(len(y)) / sampling_rate, y, lw=0.5, **kwargs)
    ax.set(xlabel="time (s)", ylabel="amplitude", xlim=(0, len(y) / sampling_rate))
    if title:
        ax.set_title(title)
    return ax


def plot_spectrogram(spec, ax=None, title: str | None = None, hop_seconds: float = 0.02,
                     log: bool = True, ylabel: str = "frequency bin", colorbar: bool = True, **kwargs):
    """A [F, T] (or [1, F, T]) spectrogram as an image; `log` applies log(max(x, 1e-5)) first."""
    import matplotlib.pyplot as plt

    s = _np(spec).squeeze()
    if log:
        s = np.log(np.maximum(s, 1e-5))
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3))
    im = ax.imshow(s, origin="lower", aspect="auto", interpolation="nearest",
                   extent=(0, s.shape[1] * hop_seconds, 0, s.shape[0]), **kwargs)
    ax.set(xlabel="time (s)", ylabel=ylabel)
    if title:
        ax.set_title(title)
    if colorbar:
        plt.colorbar(im, ax=ax, pad=0.01)
    return ax


def plot_matrix(m, ax=None, title: str | None = None, xlabel: str = "", ylabel: str = "",
                colorbar: bool = True, **kwargs):
    """Any 2-D tensor (latents [C, T], attention maps [T_q, T_k], codebooks) as an image."""
    import matplotlib.pyplot as plt

    m = _np(m).squeeze()
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3))
    im = ax.imshow(m, origin="lower", aspect="auto", interpolation="nearest", **kwargs)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    if title:
        ax.set_title(title)
    if colorbar:
        plt.colorbar(im, ax=ax, pad=0.01)
    return ax


def plot_curves(curves: dict, ax=None, title: str | None = None, xlabel: str = "step", ylabel: str = "",
                logy: bool = False):
    """Named 1-D series (losses, accuracies) on one axis."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3))
    for label, ys in curves.items():
        ys = _np(ys).reshape(-1)
        ax.plot(np.arange(len(ys)), ys, label=label)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.legend()
    return ax


# ------------------------------------------------------------------------------------------ tables

def shapes(tensors: dict) -> None:
    """Print a table of names, shapes and dtypes (tuples/lists of tensors are expanded)."""
    rows = []

    def add(name, t):
        if isinstance(t, torch.Tensor):
            rows.append((name, "[" + ", ".join(map(str, t.shape)) + "]", str(t.dtype).replace("torch.", "")))
        elif isinstance(t, (list, tuple)):
            for i, v in enumerate(t):
                add(f"{name}[{i}]", v)
        else:
            rows.append((name, repr(t), type(t).__name__))

    for k, v in tensors.items():
        add(k, v)
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    for name, shape, dtype in rows:
        print(f"{name:<{w0}}  {shape:<{w1}}  {dtype}")


def count_parameters(module: torch.nn.Module) -> int:
    """Number of parameters (buffers not counted)."""
    return sum(p.numel() for p in module.parameters())


def source(obj, lines: int | None = None) -> None:
    """Print where a library object is defined and its source (the first `lines` lines)."""
    obj = inspect.unwrap(obj)  # decorated functions (e.g. @torch.no_grad()) point at the decorator
    path = pathlib.Path(inspect.getsourcefile(obj)).resolve()
    try:
        where = path.relative_to(REPO_DIR)
    except ValueError:
        where = path
    text, first = inspect.getsourcelines(obj)
    print(f"# {where}, line {first}")
    print("".join(text[:lines] if lines else text).rstrip())


# ---------------------------------------------------------------------------------- the big picture

# Blocks of the SoVITS diagram: key -> (label, x, y, width, height).
_BLOCKS = {
    "audio": ("wav 32 kHz\n(+16 kHz)", 0.0, 3.0, 1.6, 0.8),
    "hubert": ("HuBERT\ncontent features", 2.1, 4.2, 1.8, 0.8),
    "rvq": ("ssl_proj + RVQ\n50→25 Hz codes", 4.4, 4.2, 2.1, 0.8),
    "text": ("text front-end\nphones", 2.1, 5.4, 1.8, 0.8),
    "spectrogram": ("linear\nspectrogram", 2.1, 1.8, 1.8, 0.8),
    "style": ("ref_enc\nMelStyleEncoder → ge", 4.4, 3.0, 2.1, 0.8),
    "prior": ("enc_p: TextEncoder\n+ MRTE → m_p, logs_p", 6.8, 4.8, 2.6, 0.8),
    "posterior": ("enc_q: posterior\nencoder → z", 4.4, 1.2, 2.1, 0.8),
    "flow": ("flow\nz → z_p", 6.8, 1.2, 1.6, 0.8),
    "kl": ("KL(z_p ‖ prior)", 9.8, 3.0, 1.8, 0.8),
    "decoder": ("dec: HiFi-GAN\nslice of z → ŷ", 6.8, 0.0, 2.0, 0.8),
    "discriminator": ("MPD: discriminators\nŷ vs y", 9.8, 0.0, 2.1, 0.8),
    "losses": ("losses: mel·45 + KL\n+ GAN + FM", 9.8, 1.5, 2.1, 0.8),
}
_ARROWS = [("audio", "hubert"), ("audio", "spectrogram"), ("hubert", "rvq"), ("rvq", "prior"), ("text", "prior"),
           ("spectrogram", "style"), ("spectrogram", "posterior"), ("style", "prior"), ("style", "posterior"),
           ("posterior", "flow"), ("flow", "kl"), ("prior", "kl"), ("posterior", "decoder"),
           ("decoder", "discriminator"), ("discriminator", "losses"), ("kl", "losses")]
CHAPTER_BLOCKS = {
    "overview": [], "audio": ["audio", "spectrogram"], "hubert": ["hubert"], "rvq": ["rvq"],
    "prior": ["text", "prior", "style"], "posterior": ["posterior", "kl"], "flow": ["flow"],
    "decoder": ["decoder"], "discriminator": ["discriminator"], "losses": ["losses", "kl"],
    "training": list(_BLOCKS), "inference": ["rvq", "prior", "style", "flow", "decoder"],
}


def sovits_diagram(highlight: str | list[str] | None = None, ax=None, title: str | None = None):
    """Draw the SoVITS training graph; blocks of `highlight` (a chapter key of CHAPTER_BLOCKS or a
    list of block keys) are coloured, the rest grey."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyBboxPatch

    if isinstance(highlight, str):
        highlight = CHAPTER_BLOCKS.get(highlight, [highlight])
    highlight = set(highlight or [])
    if ax is None:
        _, ax = plt.subplots(figsize=(11, 4.6))
    for key, (label, x, y, w, h) in _BLOCKS.items():
        on = key in highlight
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.05",
                                    fc="#f6c453" if on else "#e8e8e8", ec="#333" if on else "#999", lw=1.6 if on else 0.8))
        ax.text(x + w / 2, y + h / 2, label, ha="center", va="center", fontsize=8.5,
                fontweight="bold" if on else "normal", color="#111" if on else "#555")
    for a, b in _ARROWS:
        _, xa, ya, wa, ha = _BLOCKS[a]
        _, xb, yb, wb, hb = _BLOCKS[b]
        start = (xa + wa, ya + ha / 2) if xb > xa + wa - 0.05 else (xa + wa / 2, ya if yb < ya else ya + ha)
        end = (xb, yb + hb / 2) if xb > xa + wa - 0.05 else (xb + wb / 2, yb + hb if yb < ya else yb)
        ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="->", color="#666", lw=0.9))
    ax.set_xlim(-0.2, 12.1)
    ax.set_ylim(-0.3, 6.4)
    ax.axis("off")
    ax.set_title(title or "SoVITS (GPT-SoVITS stage s2), training graph", fontsize=10)
    return ax
