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

from gsv_edu.atomic import atomic_write
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

def _playable(y, sampling_rate: int, max_seconds: float, store_rate: int | None) -> tuple[np.ndarray, int]:
    """The samples a player stores: mono float32, cut to `max_seconds`, resampled down to `store_rate`."""
    if isinstance(y, torch.Tensor):
        y = y.detach().float().cpu().numpy()
    y = np.asarray(y, dtype=np.float32).reshape(-1)[: int(max_seconds * sampling_rate)]  # [N]
    if store_rate and store_rate < sampling_rate:
        y, sampling_rate = resample(y, sampling_rate, store_rate), store_rate  # [N · store_rate / sampling_rate]
    return y, sampling_rate


def _peak(y: np.ndarray) -> float:
    return float(np.abs(y).max()) if y.size else 0.0


def playback_gain(peaks) -> float:
    """The one gain a group of clips is played at: 1 (their own levels), or less if the loudest
    would clip (peak > 1), so that every clip keeps its loudness relative to the others."""
    loudest = max(peaks, default=0.0)
    return 1.0 if loudest <= 1.0 else 1.0 / loudest


def clip_levels(y) -> tuple[float, float, float]:
    """(peak in dBFS, RMS around the mean in dBFS, mean) of a clip; full scale is 1.0, silence -inf.

    The RMS is taken around the mean because a constant offset (DC) is not heard: an untrained
    decoder's output can have a large peak and be silent apart from a faint ripple."""
    y = _np(y).astype(np.float64).reshape(-1)
    if not y.size:
        return float("-inf"), float("-inf"), 0.0
    mean = float(y.mean())
    with np.errstate(divide="ignore"):
        return float(20 * np.log10(np.abs(y).max())), float(20 * np.log10(np.std(y))), mean


def audio_player(y, sampling_rate: int = 32000, max_seconds: float = 5.0, store_rate: int = 16000,
                 gain: float | None = None, normalize: bool = False):
    """An inline audio player (IPython `Audio`) that plays the clip at its own level.

    The clip is cut to `max_seconds` and stored at `store_rate` (16 kHz by default) so that
    committed notebooks stay small. It is *not* peak-normalised: a faint clip plays faintly.
    `gain` multiplies it (default: 1, or 1/peak if it would clip); `normalize=True` scales its
    peak to 1 instead — say so next to the player when you use it.
    """
    from IPython.display import Audio  # optional dependency (dev extra)

    y, rate = _playable(y, sampling_rate, max_seconds, store_rate)
    peak = _peak(y)
    if normalize:
        gain = 1.0 / peak if peak > 0 else 1.0
    elif gain is None:
        gain = playback_gain([peak])
    if peak * gain > 1.0:
        raise ValueError(f"gain {gain:g} makes the clip's peak {peak * gain:.3f} > 1: it would clip")
    return Audio(y * np.float32(gain), rate=rate, normalize=False)


def players(clips: dict, sampling_rate: int = 32000, max_seconds: float = 5.0, store_rate: int = 16000,
            gain: float | None = None):
    """Labelled players side by side, **one common gain** for the group, as plain HTML.

    `book.players({"real": y, "generated": y_hat})`. Every clip is multiplied by the same gain
    (default `playback_gain`: 1, or less if the loudest would clip), so relative loudness is kept:
    a faint output next to the real audio sounds faint. Under each label: the clip's peak, its RMS
    around the mean (dBFS) and its mean (DC offset), as `clip_levels` gives them. The output is HTML `<audio>` elements (no widget), so it plays wherever the
    notebook's stored outputs are shown, with or without saved widget state.
    """
    import html

    from IPython.display import HTML  # optional dependency (dev extra)

    prepared = {label: _playable(y, sampling_rate, max_seconds, store_rate) for label, y in clips.items()}
    common = playback_gain(_peak(y) for y, _ in prepared.values()) if gain is None else gain
    cells = []
    for label, (y, rate) in prepared.items():
        peak_db, rms_db, dc = clip_levels(y)
        src = audio_player(y, rate, max_seconds=len(y) / rate + 1, store_rate=None, gain=common).src_attr()
        cells.append(
            '<div style="display:inline-block; margin:0 1.2em 0.4em 0; vertical-align:top">'
            f'<div><b>{html.escape(str(label))}</b></div>'
            f'<audio controls preload="none" src="{src}"></audio>'
            f'<div style="font-size:85%">peak {peak_db:.1f} dBFS, RMS {rms_db:.1f} dBFS, DC {dc:+.3f}</div></div>')
    note = ("played at their own levels" if common == 1.0 else f"played at one common gain ×{common:.3g}")
    caption = f'<div style="font-size:85%; color:#555">{len(cells)} clips, {note}: relative loudness is kept.</div>'
    return HTML("<div>" + "".join(cells) + caption + "</div>")


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

@dataclass(frozen=True)
class Graph:
    """A block diagram: blocks key → (label, x, y, width, height); edges (from, to, kind, label).

    kind "" is data flow; "ge" is the voice vector conditioning a block; "ge-detached" is `ge`
    entering with its gradient cut (`enc_q` detaches it). `label` is written on the edge.
    """

    title: str
    blocks: dict
    edges: tuple


GE_COLOUR = "#2f6db3"

TRAINING_GRAPH = Graph(
    title="SoVITS (GPT-SoVITS stage s2), training graph",
    blocks={
        "audio": ("wav 32 kHz\n(+16 kHz)", 0.0, 3.0, 1.6, 0.8),
        "text": ("text front-end\nphones", 2.1, 5.4, 1.8, 0.8),
        "hubert": ("HuBERT\ncontent features", 2.1, 4.2, 1.8, 0.8),
        "spectrogram": ("linear\nspectrogram", 2.1, 1.8, 1.8, 0.8),
        "rvq": ("ssl_proj + RVQ\n50→25 Hz codes", 4.4, 4.2, 2.3, 0.8),
        "style": ("ref_enc\nMelStyleEncoder → ge", 4.4, 3.0, 2.3, 0.8),
        "posterior": ("enc_q: posterior\nencoder → z", 4.4, 1.2, 2.3, 0.8),
        "prior": ("enc_p: TextEncoder\n+ MRTE → m_p, logs_p", 7.6, 4.8, 2.6, 0.8),
        "flow": ("flow\nz → z_p", 7.6, 1.8, 1.6, 0.8),
        "decoder": ("dec: HiFi-GAN\nslice of z → ŷ", 7.6, 0.0, 2.0, 0.8),
        "kl": ("KL(z_p ‖ prior)", 10.8, 3.0, 1.9, 0.8),
        "losses": ("losses: mel·45 + KL\n+ GAN + FM", 10.8, 1.5, 2.3, 0.8),
        "discriminator": ("MPD: discriminators\nŷ vs y", 10.8, 0.0, 2.3, 0.8),
    },
    edges=(
        ("audio", "hubert", "", ""), ("audio", "spectrogram", "", ""), ("hubert", "rvq", "", ""),
        ("rvq", "prior", "", "×2"), ("text", "prior", "", ""), ("spectrogram", "style", "", ""),
        ("spectrogram", "posterior", "", ""), ("posterior", "flow", "", "z"), ("posterior", "decoder", "", "z"),
        ("flow", "kl", "", ""), ("prior", "kl", "", ""), ("decoder", "discriminator", "", ""),
        ("discriminator", "losses", "", ""), ("kl", "losses", "", ""),
        ("style", "prior", "ge", "ge"), ("style", "posterior", "ge-detached", "ge (detached)"),
        ("style", "flow", "ge", "ge"), ("style", "decoder", "ge", "ge"),
    ),
)

INFERENCE_GRAPH = Graph(
    title="SoVITS inference (decode): tokens → codebook → ×2 → prior → flow⁻¹ → decoder",
    blocks={
        "tokens": ("semantic tokens, 25 Hz\n(GPT s1, or a recording)", 0.0, 4.4, 2.9, 0.8),
        "codebook": ("quantizer.decode\ncodebook lookup", 3.4, 4.4, 2.1, 0.8),
        "upsample": ("nearest ×2\n25 → 50 Hz", 6.0, 4.4, 1.5, 0.8),
        "text": ("text front-end\nphones of new text", 5.4, 5.7, 2.4, 0.8),
        "prior": ("enc_p (+ MRTE, speed)\n→ m_p, logs_p", 8.1, 4.4, 2.8, 0.8),
        "sample": ("z_p = m_p + ε·σ_p\n× noise_scale", 8.1, 3.0, 2.3, 0.8),
        "flow_inv": ("flow⁻¹\nz_p → z", 8.1, 1.6, 1.6, 0.8),
        "decoder": ("dec: HiFi-GAN\nall of z", 8.1, 0.2, 2.0, 0.8),
        "wav": ("waveform 32 kHz\n1280 samples/token", 10.8, 0.2, 2.5, 0.8),
        "reference": ("reference wav\n→ linear spectrogram", 0.0, 1.6, 2.7, 0.8),
        "style": ("ref_enc\nMelStyleEncoder → ge", 3.4, 1.6, 2.3, 0.8),
    },
    edges=(
        ("tokens", "codebook", "", ""), ("codebook", "upsample", "", ""), ("upsample", "prior", "", ""),
        ("text", "prior", "", ""), ("prior", "sample", "", ""), ("sample", "flow_inv", "", ""),
        ("flow_inv", "decoder", "", ""), ("decoder", "wav", "", ""), ("reference", "style", "", ""),
        ("style", "prior", "ge", "ge"), ("style", "flow_inv", "ge", "ge"), ("style", "decoder", "ge", "ge"),
    ),
)

GRAPHS = {"training": TRAINING_GRAPH, "inference": INFERENCE_GRAPH}
CHAPTER_BLOCKS = {
    "overview": [], "audio": ["audio", "spectrogram"], "hubert": ["hubert"], "rvq": ["rvq"],
    "prior": ["text", "prior", "style"], "posterior": ["posterior", "kl"], "flow": ["flow"],
    "decoder": ["decoder"], "discriminator": ["discriminator"], "losses": ["losses", "kl"],
    "training": list(TRAINING_GRAPH.blocks), "inference": list(INFERENCE_GRAPH.blocks),
    "v2pro": ["style", "prior"],  # the speaker-verification vector joins ge (ge_to512 feeds MRTE)
}
CHAPTER_GRAPH = {"inference": "inference"}  # every other chapter is drawn on the training graph


def _anchors(graph: Graph, a: str, b: str, kind: str = "") -> tuple[tuple[float, float], tuple[float, float]]:
    """Start and end points of the arrow a → b: right edge → left edge when b lies to the right,
    otherwise bottom → top (or top → bottom). Where both `ge` and data enter a block from the
    left, `ge` enters at its upper part and the data at its lower part."""
    _, xa, ya, wa, ha = graph.blocks[a]
    _, xb, yb, wb, hb = graph.blocks[b]
    if xb > xa + wa - 0.05:
        from_left = [k for f, t, k, _ in graph.edges if t == b and graph.blocks[f][1] + graph.blocks[f][3] - 0.05 < xb]
        shared = any(k.startswith("ge") for k in from_left) and any(not k for k in from_left)
        fraction = (0.72 if kind.startswith("ge") else 0.28) if shared else 0.5
        return (xa + wa, ya + ha / 2), (xb, yb + fraction * hb)
    down = yb < ya
    return (xa + wa / 2, ya if down else ya + ha), (xb + wb / 2, yb + hb if down else yb)


def sovits_diagram(highlight: str | list[str] | None = None, ax=None, title: str | None = None,
                   graph: str | None = None):
    """Draw the SoVITS training graph (or, for the chapter key "inference" or graph="inference",
    the inference path). Blocks of `highlight` (a chapter key of CHAPTER_BLOCKS or a list of block
    keys) are coloured, the rest grey. Edges that carry the voice vector `ge` are blue (dashed
    where `ge` is detached). Every arrow is an annotation with gid "from->to"."""
    import matplotlib.pyplot as plt  # optional dependency (dev extra)
    from matplotlib.patches import FancyBboxPatch

    if graph is None:
        graph = CHAPTER_GRAPH.get(highlight, "training") if isinstance(highlight, str) else "training"
    g = GRAPHS[graph]
    if isinstance(highlight, str):
        highlight = CHAPTER_BLOCKS.get(highlight, [highlight])
    highlight = set(highlight or [])
    xs = [x + w for _, x, _, w, _ in g.blocks.values()]
    ys = [y + h for _, _, y, _, h in g.blocks.values()]
    if ax is None:  # the same inches per unit for every graph, so that the labels fit their blocks
        _, ax = plt.subplots(figsize=(0.86 * (max(xs) + 0.4), 0.68 * (max(ys) + 0.6)))
    for key, (label, x, y, w, h) in g.blocks.items():
        on = key in highlight
        ax.add_patch(FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.05", gid=key,
                                    fc="#f6c453" if on else "#e8e8e8", ec="#333" if on else "#999",
                                    lw=1.6 if on else 0.8))
        ax.text(x + w / 2, y + h / 2, label, ha="center", va="center", fontsize=8.5,
                fontweight="bold" if on else "normal", color="#111" if on else "#555")
    for a, b, kind, label in g.edges:
        start, end = _anchors(g, a, b, kind)
        colour = GE_COLOUR if kind.startswith("ge") else "#666"
        ax.annotate("", xy=end, xytext=start, gid=f"{a}->{b}",
                    arrowprops=dict(arrowstyle="->", color=colour, lw=1.1 if kind else 0.9,
                                    linestyle="--" if kind == "ge-detached" else "-"))
        if label:
            t = 0.8 if kind.startswith("ge") else 0.3  # ge: near the block it conditions; data: near the source
            ax.text(start[0] + t * (end[0] - start[0]), start[1] + t * (end[1] - start[1]), label, fontsize=7.5,
                    color=colour, ha="center", va="center", bbox=dict(fc="white", ec="none", pad=0.6))
    ax.set_xlim(-0.2, max(xs) + 0.2)
    ax.set_ylim(-0.3, max(ys) + 0.3)
    ax.axis("off")
    ax.set_title(title or g.title, fontsize=10)
    return ax


def save_sovits_figure(path: str | os.PathLike = REPO_DIR / "book" / "figures" / "sovits.png") -> pathlib.Path:
    """Write README's figure (the training graph, every block coloured) as PNG; returns the path."""
    import matplotlib.pyplot as plt  # optional dependency (dev extra)

    path = pathlib.Path(path)
    ax = sovits_diagram(list(TRAINING_GRAPH.blocks), title="SoVITS (GPT-SoVITS stage s2): the training graph")
    with atomic_write(path, "wb") as f:
        ax.figure.savefig(f, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(ax.figure)
    return path
