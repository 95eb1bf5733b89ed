"""The notebook helpers: they must work headless (Agg) and say clearly when data is missing."""
import re

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest
import torch

from gsv_edu import book


def test_setup_fixes_seeds():
    book.setup(seed=3, quiet=True)
    a = torch.rand(3)
    book.setup(seed=3, quiet=True)
    assert torch.equal(a, torch.rand(3))


def test_diagram_highlights_the_chapter_blocks():
    ax = book.sovits_diagram("prior")
    bold = {t.get_text().split("\n")[0] for t in ax.texts if t.get_fontweight() == "bold"}
    assert bold == {"text front-end", "enc_p: TextEncoder", "ref_enc"}
    assert all(set(keys) <= set(book.GRAPHS[book.CHAPTER_GRAPH.get(chapter, "training")].blocks)
               for chapter, keys in book.CHAPTER_BLOCKS.items())


def test_shapes_table(capsys):
    book.shapes({"x": torch.zeros(2, 3), "pair": (torch.zeros(1), 5)})
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["x", "[2,", "3]", "float32"] and out[2].split()[0] == "pair[1]"


def test_missing_corpus_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="sample corpus is missing"):
        book.sample_corpus(tmp_path / "nope.list")


def test_sample_corpus_lines_resolve(tmp_path):
    (tmp_path / "a.flac").write_bytes(b"")
    lst = tmp_path / "x.list"
    lst.write_text("a.flac|spk|EN|Hello there.\n\n")
    (u,) = book.sample_corpus(lst)
    assert u.path == (tmp_path / "a.flac").resolve() and u.language == "en" and u.text == "Hello there."


def test_source_of_a_decorated_method_points_at_the_library(capsys):
    from gsv_edu.sovits.quantize import EuclideanCodebook

    book.source(EuclideanCodebook._ema_update, lines=3)
    first = capsys.readouterr().out.splitlines()[0]
    assert first.startswith("# gsv_edu/sovits/quantize.py, line "), first


# ------------------------------------------------------------------------------- the diagrams

def _arrows(ax):
    from matplotlib.text import Annotation

    return {t.get_gid(): t for t in ax.texts if isinstance(t, Annotation) and t.get_gid()}


def _on_box(point, patch, tol=1e-9):
    """The point lies on the border of the drawn block (inside its rectangle, on one of its sides)."""
    x, y = point
    x0, y0, x1, y1 = patch.get_x(), patch.get_y(), patch.get_x() + patch.get_width(), patch.get_y() + patch.get_height()
    inside = x0 - tol <= x <= x1 + tol and y0 - tol <= y <= y1 + tol
    return inside and min(abs(x - x0), abs(x - x1), abs(y - y0), abs(y - y1)) < tol


def _check_drawn_edges(ax, graph):
    arrows = _arrows(ax)
    boxes = {p.get_gid(): p for p in ax.patches if p.get_gid()}
    assert set(arrows) == {f"{a}->{b}" for a, b, _, _ in graph.edges}
    for a, b, kind, _ in graph.edges:
        arrow = arrows[f"{a}->{b}"]
        assert _on_box(arrow.xyann, boxes[a]) and _on_box(arrow.xy, boxes[b]), (a, b)  # wired to the right blocks
        colour = matplotlib.colors.to_hex(arrow.arrow_patch.get_edgecolor())
        assert (colour == book.GE_COLOUR.lower()) == kind.startswith("ge"), (a, b, colour)
    return arrows


def test_training_diagram_ge_conditions_prior_posterior_flow_and_decoder():
    ax = book.sovits_diagram("overview")
    arrows = _check_drawn_edges(ax, book.TRAINING_GRAPH)
    ge_targets = {b for a, b, kind, _ in book.TRAINING_GRAPH.edges if a == "style" and kind.startswith("ge")}
    assert ge_targets == {"prior", "posterior", "flow", "decoder"}
    assert arrows["style->posterior"].arrow_patch.get_linestyle() != "-"  # enc_q detaches ge: dashed
    solid = [arrows[f"style->{b}"].arrow_patch.get_linestyle() for b in ("prior", "flow", "decoder")]
    assert solid == ["-", "-", "-"]
    assert "training graph" in ax.get_title()


def test_inference_chapter_draws_the_inference_path():
    ax = book.sovits_diagram("inference")
    arrows = _check_drawn_edges(ax, book.INFERENCE_GRAPH)
    path = ["tokens", "codebook", "upsample", "prior", "sample", "flow_inv", "decoder", "wav"]
    assert all(f"{a}->{b}" in arrows for a, b in zip(path, path[1:]))
    assert {f"style->{b}" for b in ("prior", "flow_inv", "decoder")} <= set(arrows)
    assert "posterior" not in book.INFERENCE_GRAPH.blocks and "discriminator" not in book.INFERENCE_GRAPH.blocks
    bold = sum(t.get_fontweight() == "bold" for t in ax.texts)
    assert bold == len(book.INFERENCE_GRAPH.blocks)  # every block of the path coloured
    assert "inference" in ax.get_title() and "training" not in ax.get_title()


def test_readme_figure_is_written(tmp_path):
    from PIL import Image

    path = book.save_sovits_figure(tmp_path / "sovits.png")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 900 and im.size[1] > 350


# ------------------------------------------------------------------------------- audio players

def _wav_of(src: str) -> np.ndarray:
    """Samples of a data:audio/wav;base64 URI as IPython wrote them (int16, scaled by 32767)."""
    import base64
    import io

    from scipy.io import wavfile

    assert src.startswith("data:audio/wav;base64,")
    _, data = wavfile.read(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
    return data.astype(np.float64) / 32767


def _sources(html: str) -> list[str]:
    return re.findall(r'<audio controls preload="none" src="([^"]+)">', html)


TONE = np.sin(2 * np.pi * 441 * np.arange(16000) / 16000).astype(np.float32)  # 1 s at 16 kHz, peak 1


def test_audio_player_keeps_the_clip_level():
    faint = book.audio_player(0.01 * TONE, sampling_rate=16000)
    assert abs(np.abs(_wav_of(faint.src_attr())).max() - 0.01) < 2e-4  # not blown up to full scale
    normalised = book.audio_player(0.01 * TONE, sampling_rate=16000, normalize=True)
    assert abs(np.abs(_wav_of(normalised.src_attr())).max() - 1.0) < 2e-4
    too_loud = book.audio_player(3.0 * TONE, sampling_rate=16000)  # would clip: scaled to peak 1
    assert abs(np.abs(_wav_of(too_loud.src_attr())).max() - 1.0) < 2e-4
    with pytest.raises(ValueError, match="clip"):
        book.audio_player(TONE, sampling_rate=16000, gain=2.0)


def test_players_keep_relative_loudness_as_plain_html():
    out = book.players({"loud": 0.8 * TONE, "faint": 0.02 * TONE}, sampling_rate=16000)
    html = out.data
    loud, faint = (_wav_of(s) for s in _sources(html))
    assert abs(np.abs(loud).max() - 0.8) < 2e-4 and abs(np.abs(faint).max() - 0.02) < 2e-4
    assert abs(np.abs(loud).max() / np.abs(faint).max() - 40) < 0.5
    assert html.count("<audio") == 2 and "widget" not in html  # shows without widget state
    assert "peak -1.9 dBFS, RMS -4.9 dBFS, DC +0.000" in html and "peak -34.0 dBFS" in html  # levels, printed
    assert "own levels" in html


def test_players_scale_a_clipping_group_with_one_gain():
    html = book.players({"hot": 2.0 * TONE, "half as loud": 1.0 * TONE}, sampling_rate=16000).data
    hot, half = (_wav_of(s) for s in _sources(html))
    assert abs(np.abs(hot).max() - 1.0) < 2e-4 and abs(np.abs(half).max() - 0.5) < 2e-4
    assert "common gain ×0.5" in html


def test_clip_levels_separate_the_dc_offset_from_what_is_heard():
    peak_db, rms_db, dc = book.clip_levels(0.3 + 0.01 * TONE)  # an offset with a faint ripple
    assert abs(dc - 0.3) < 1e-6 and abs(peak_db - 20 * np.log10(0.31)) < 1e-3
    assert abs(rms_db - 20 * np.log10(0.01 / np.sqrt(2))) < 1e-2  # the ripple, not the offset
    assert book.clip_levels(np.zeros(10))[:2] == (float("-inf"), float("-inf"))


def test_players_store_32k_clips_at_16k_and_cut_them():
    y = np.tile(0.5 * TONE, 8)  # 8 s at 16 kHz = 4 s at 32 kHz (as a 32 kHz clip)
    html = book.players({"clip": y}, sampling_rate=32000, max_seconds=2.0).data
    (src,) = _sources(html)
    assert len(_wav_of(src)) == 2 * 16000  # 2 s kept, stored at 16 kHz
