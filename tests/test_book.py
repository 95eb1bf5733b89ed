"""The notebook helpers: they must work headless (Agg) and say clearly when data is missing."""
import matplotlib

matplotlib.use("Agg")
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
    assert all(set(keys) <= set(book._BLOCKS) for keys in book.CHAPTER_BLOCKS.values())


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
