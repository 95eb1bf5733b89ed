"""Phone-level BERT features (gsv_edu.text.bert) on a tiny random BERT made in the test."""
from __future__ import annotations

import pytest
import torch

from gsv_edu.text import clean_text
from gsv_edu.text.bert import BERT_DIM, BertError, load_bert, phone_features, repeat_per_phone

transformers = pytest.importorskip("transformers")

TEXT = "你好，今天天气很好。"
N_LAYERS = 4


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory):
    """A BertForMaskedLM (the class of the released chinese-roberta-wwm-ext-large) with random
    weights, 16 wide, 4 layers, and a vocab.txt of the characters the tests use."""
    folder = tmp_path_factory.mktemp("tiny_bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(TEXT + "。，世界"))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=N_LAYERS,
                                     num_attention_heads=2, intermediate_size=32, max_position_embeddings=64)
    torch.manual_seed(0)
    transformers.BertForMaskedLM(config).save_pretrained(folder)
    return folder


def test_third_last_layer_repeated_per_phone(bert_dir):
    bert = load_bert(bert_dir)
    phones, word2ph, norm_text = clean_text(TEXT, "zh")
    assert len(word2ph) == len(norm_text) and sum(word2ph) == len(phones)
    feats = bert.features(norm_text, word2ph)
    assert feats.shape == (16, len(phones))

    # Expected, independently: a 2-layer BertModel (L - 2 layers) with the same weights; its
    # last hidden state is the 4-layer model's third-last hidden state.
    config = transformers.BertConfig.from_pretrained(bert_dir)
    config.num_hidden_layers = N_LAYERS - 2
    short = transformers.BertModel(config, add_pooling_layer=False).eval()
    full = transformers.BertForMaskedLM.from_pretrained(bert_dir).eval()
    missing, _ = short.load_state_dict(full.bert.state_dict(), strict=False)
    assert missing == []
    ids = bert.tokenizer(norm_text, return_tensors="pt")
    with torch.no_grad():
        chars = short(**ids).last_hidden_state[0, 1:-1]  # [n_chars, 16]
        last = full(**ids, output_hidden_states=True).hidden_states[-1][0, 1:-1]
    col = 0
    for i, n in enumerate(word2ph):
        for _ in range(n):
            torch.testing.assert_close(feats[:, col], chars[i], rtol=1e-5, atol=1e-6)
            col += 1
    assert col == feats.shape[1]
    assert not torch.allclose(chars, last, atol=1e-3)  # the layer matters: the last one differs


def test_repeat_per_phone_values():
    chars = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])  # [3 chars, H=2]
    out = repeat_per_phone(chars, [2, 0, 3])
    assert out.tolist() == [[1, 1, 5, 5, 5], [2, 2, 6, 6, 6]]


def test_zeros_for_other_languages_and_without_bert(bert_dir):
    bert = load_bert(bert_dir)
    en = phone_features(bert, 7, None, "Hello.", "en")
    assert en.shape == (BERT_DIM, 7) and not en.any()
    zh = phone_features(None, 4, [2, 2], "你好", "zh")
    assert zh.shape == (BERT_DIM, 4) and not zh.any()
    phones, word2ph, norm_text = clean_text("你好。", "zh")
    real = phone_features(bert, len(phones), word2ph, norm_text, "all_zh")
    assert real.shape == (16, len(phones)) and real.abs().sum() > 0


def test_errors(bert_dir, tmp_path):
    with pytest.raises(BertError, match="no such folder"):
        load_bert(tmp_path / "absent")
    with pytest.raises(BertError, match="no config.json"):
        load_bert(tmp_path)
    bert = load_bert(bert_dir)
    with pytest.raises(BertError, match="one token per character"):
        bert.features("hello", [1, 1, 1, 1, 1])  # one word piece ([UNK]) for five characters
    with pytest.raises(BertError, match="word2ph has 1 entries"):
        bert.features("你好", [2])
