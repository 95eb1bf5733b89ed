"""The g2p_en neural predictor for English words that no dictionary knows.

The official English front-end (`GPT_SoVITS/text/english.py`, class `en_G2p`, a subclass of
g2p_en's `G2p`) falls back to g2p_en's `predict` for out-of-vocabulary words. That predictor is
a small GRU encoder–decoder (Park & Kim, g2p_en, Apache-2.0) whose trained weights ship inside
the g2p_en wheel as a plain NumPy archive, `checkpoint20.npz`. Importing g2p_en is not an
option for us (it imports NLTK and downloads tagger data at import time), so we ship that
archive unchanged (`data/g2p_en_checkpoint20.npz`, licence and provenance in
`data/g2p_en_NOTICE.txt`) and run it here with a few lines of NumPy. Same weights, same greedy
decoding → the same predictions as the official fallback.

The model, in shapes (E = 256 embedding and hidden size):

    letters "cat" → ids [c, a, t, </s>]                     # [L+1]
    encoder: embedding [29, E] → GRU over the letters        # final hidden h [1, E]
    decoder: start token <s>; each step: GRU cell on the previous phone's embedding
             [74, E] → linear [74, E] → argmax → next phone; stop at </s> or after 20 phones.

The GRU cell is PyTorch's: gates in the order reset r, update z, candidate n, with
n = tanh(W_in·x + b_in + r ⊙ (W_hn·h + b_hn)) and h' = (1 − z) ⊙ n + z ⊙ h.
"""
from __future__ import annotations

import functools
from importlib import resources

import numpy as np

# Vocabularies of the trained model (their order is fixed by the weights).
GRAPHEMES = ["<pad>", "<unk>", "</s>"] + list("abcdefghijklmnopqrstuvwxyz")
PHONEMES = ["<pad>", "<unk>", "<s>", "</s>"] + [
    "AA0", "AA1", "AA2", "AE0", "AE1", "AE2", "AH0", "AH1", "AH2", "AO0", "AO1", "AO2",
    "AW0", "AW1", "AW2", "AY0", "AY1", "AY2", "B", "CH", "D", "DH", "EH0", "EH1", "EH2",
    "ER0", "ER1", "ER2", "EY0", "EY1", "EY2", "F", "G", "HH", "IH0", "IH1", "IH2", "IY0",
    "IY1", "IY2", "JH", "K", "L", "M", "N", "NG", "OW0", "OW1", "OW2", "OY0", "OY1", "OY2",
    "P", "R", "S", "SH", "T", "TH", "UH0", "UH1", "UH2", "UW", "UW0", "UW1", "UW2", "V", "W",
    "Y", "Z", "ZH",
]
_START, _END = PHONEMES.index("<s>"), PHONEMES.index("</s>")
MAX_PHONES = 20


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class NeuralG2p:
    """Greedy decoder over the g2p_en checkpoint. `NeuralG2p()(word)` → list of ARPAbet phones."""

    def __init__(self, weights: dict[str, np.ndarray] | None = None):
        if weights is None:
            path = resources.files("gsv_edu.text").joinpath("data").joinpath("g2p_en_checkpoint20.npz")
            with resources.as_file(path) as file, np.load(file) as archive:
                weights = {name: archive[name] for name in archive.files}
        self.w = weights
        self.hidden = self.w["enc_w_hh"].shape[1]  # E = 256

    def _gru_cell(self, x: np.ndarray, h: np.ndarray, prefix: str) -> np.ndarray:
        """One PyTorch-convention GRU step. x [1, E], h [1, E] → h' [1, E]."""
        w = self.w
        gi = x @ w[prefix + "w_ih"].T + w[prefix + "b_ih"]  # [1, 3E]
        gh = h @ w[prefix + "w_hh"].T + w[prefix + "b_hh"]  # [1, 3E]
        e = self.hidden
        r = _sigmoid(gi[:, :e] + gh[:, :e])  # [1, E]
        z = _sigmoid(gi[:, e:2 * e] + gh[:, e:2 * e])  # [1, E]
        n = np.tanh(gi[:, 2 * e:] + r * gh[:, 2 * e:])  # [1, E]
        return (1.0 - z) * n + z * h  # [1, E]

    def __call__(self, word: str) -> list[str]:
        """Predict the pronunciation of one lower-case word (other characters become <unk>)."""
        ids = [GRAPHEMES.index(c) if c in GRAPHEMES[3:] else 1 for c in word] + [2]  # [L+1]
        h = np.zeros((1, self.hidden), dtype=np.float32)  # [1, E]
        for i in ids:
            h = self._gru_cell(self.w["enc_emb"][i][None], h, "enc_")  # [1, E]
        phones: list[str] = []
        prev = _START
        for _ in range(MAX_PHONES):
            h = self._gru_cell(self.w["dec_emb"][prev][None], h, "dec_")  # [1, E]
            logits = h @ self.w["fc_w"].T + self.w["fc_b"]  # [1, 74]
            prev = int(logits.argmax())
            if prev == _END:
                break
            phones.append(PHONEMES[prev])
        return phones


@functools.lru_cache(maxsize=1)
def get_neural_g2p() -> NeuralG2p:
    """The shared predictor, loaded on first use (3.3 MB of weights)."""
    return NeuralG2p()
