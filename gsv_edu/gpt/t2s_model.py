"""Text2SemanticDecoder: the GPT stage (s1) of GPT-SoVITS, phonemes → 25 Hz semantic tokens.

Mirrors `GPT_SoVITS/AR/models/t2s_model.py · Text2SemanticDecoder @48b1a01` (a VALL-E style
decoder-only model; Wang et al. 2023, "Neural Codec Language Models are Zero-Shot Text to
Speech Synthesizers", §4.2 — the AR model, with one codebook instead of eight). Same module
tree, state-dict keys (295 for the official size), initialisation order and numerics:

    bert_proj              Linear(1024 → D)           phone-level BERT features (zeros but for Chinese)
    ar_text_embedding      TokenEmbedding(phones, D)  + bert_proj, + ar_text_position (sine, learnable alpha)
    ar_audio_embedding     TokenEmbedding(1025, D)    semantic codes 0..1023 and EOS 1024, + ar_audio_position
    h                      TransformerEncoder(n_layer × post-LN block, 16 heads, FFN 4·D)
    ar_predict_layer       Linear(D → 1025, no bias)

The sequence is [text ; audio]. The attention mask makes it a *prefix LM*: text positions see
all text (and no audio), audio positions see all text and the audio up to themselves.

Training (`forward_old`, the plain loss; `forward` adds the DPO term): teacher forcing. The
audio input is the codes (EOS at padded places), the targets are the codes followed by EOS;
the logit at the last text position predicts the first code, the logit at audio position t
predicts code t+1. Loss = cross-entropy *summed* over the batch (EOS targets at padded
places counted, as upstream), accuracy = top-3 over the non-EOS targets.

**The text-mask quirk (upstream PR #2537).** Since that PR the official training builds the
text key-padding mask with `make_pad_mask_left` (it assumes the text is padded on the left),
while its collate function pads the phonemes on the *right* (`AR/data/dataset.py · collate`).
In a batch of unequal texts, a shorter text therefore has its first phones hidden and its
padding (phone id 0, zero BERT) visible, and its first code is predicted from the padded
position `max(x_lens) - 1`. The right thing — and our default — masks the padding that is
really there (`make_pad_mask`, positions ≥ length) and predicts each item's first code from
its own last phone (position `x_lens[b] - 1`): then every item's loss is exactly what it would
be alone, whatever it is batched with (the test suite checks this). Pass
`pr2537_text_mask=True` to get the upstream numbers bit for bit; both agree when all texts in
the batch have the same length (e.g. batch size 1).

Inference (`infer_panel`, the official signature and results): the text and the prompt
(the reference's codes) are run once (prefill), then one token at a time through a KV cache
(`gsv_edu.gpt.kv_cache`); EOS is masked out for the first 11 steps; decoding stops when the
sampled token or the arg-max of the (penalised) logits is EOS, or after `early_stop_num` new
tokens, or after 1500 steps. Sampling: `gsv_edu.gpt.sampling`.
"""
from __future__ import annotations

import numbers
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gsv_edu.gpt.config import GPTConfig
from gsv_edu.gpt.embedding import SinePositionalEmbedding, TokenEmbedding
from gsv_edu.gpt.kv_cache import KVCacheDecoder
from gsv_edu.gpt.sampling import sample
from gsv_edu.gpt.transformer import TransformerEncoder, TransformerEncoderLayer

__all__ = ["Text2SemanticDecoder", "make_pad_mask", "make_pad_mask_left", "prefix_lm_mask",
           "top_k_accuracy", "MAX_DECODE_STEPS", "MIN_TOKENS_BEFORE_EOS"]

MAX_DECODE_STEPS = 1500  # upstream's hard cap on inference steps (60 s of 25 Hz tokens)
MIN_TOKENS_BEFORE_EOS = 11  # EOS is not a candidate in steps 0..10 (upstream: "at least 0.4 s")
BERT_DIM = 1024  # chinese-roberta-wwm-ext-large hidden size


def make_pad_mask(lengths: torch.Tensor, max_len: int = 0) -> torch.Tensor:
    """[B, T] True at padded places of *right*-padded sequences (t >= length)."""
    max_len = max(int(max_len), int(lengths.max()))
    steps = torch.arange(max_len, device=lengths.device)  # [T]
    return steps.unsqueeze(0) >= lengths.unsqueeze(1)


def make_pad_mask_left(lengths: torch.Tensor, max_len: int = 0) -> torch.Tensor:
    """[B, T] True at padded places of *left*-padded sequences (t < max_len - length)."""
    max_len = max(int(max_len), int(lengths.max()))
    steps = torch.arange(max_len, device=lengths.device)  # [T]
    return steps.unsqueeze(0) < (max_len - lengths).unsqueeze(1)


def prefix_lm_mask(x_len: int, y_len: int, device: torch.device | str | None = None) -> torch.Tensor:
    """[x_len + y_len, x_len + y_len] boolean, True = may not attend.

    Text rows see every text column and no audio column; audio row t sees all text and
    audio columns 0..t (causal).
    """
    text_rows = F.pad(torch.zeros(x_len, x_len, dtype=torch.bool, device=device), (0, y_len), value=True)
    causal = torch.triu(torch.ones(y_len, y_len, dtype=torch.bool, device=device), diagonal=1)
    audio_rows = F.pad(causal, (x_len, 0), value=False)
    return torch.cat([text_rows, audio_rows], dim=0)


def top_k_accuracy(logits: torch.Tensor, targets: torch.Tensor, k: int, ignore_index: int) -> torch.Tensor:
    """Share of targets (ignoring `ignore_index`) found among the k largest logits.

    logits [B, V, T], targets [B, T]. The same number as torchmetrics'
    `MulticlassAccuracy(V, top_k=k, average="micro", multidim_average="global",
    ignore_index=ignore_index)` that upstream uses; 0 when every target is ignored.
    """
    k = min(k, logits.size(1))
    top = logits.topk(k, dim=1).indices  # [B, k, T]
    hit = (top == targets.unsqueeze(1)).any(dim=1)  # [B, T]
    valid = targets != ignore_index
    n = valid.sum()
    if n == 0:
        return torch.zeros((), device=logits.device)
    return (hit & valid).sum().float() / n


class Text2SemanticDecoder(nn.Module):
    """The s1 GPT. `config` is a `GPTConfig` or the official nested dict (e.g. `ckpt["config"]`).

    `norm_first` and `top_k` (the accuracy's k) are the official constructor's arguments;
    `pr2537_text_mask` reproduces the upstream text-mask quirk (see the module docstring).
    """

    def __init__(self, config: GPTConfig | dict, norm_first: bool = False, top_k: int = 3, *,
                 pr2537_text_mask: bool = False):
        super().__init__()
        cfg = GPTConfig.from_dict(config)
        m = cfg.model
        self.config = cfg
        self.model_dim = m.hidden_dim
        self.embedding_dim = m.embedding_dim
        self.num_head = m.head
        self.num_layers = m.n_layer
        self.norm_first = norm_first
        self.vocab_size = m.vocab_size
        self.phoneme_vocab_size = m.phoneme_vocab_size
        self.p_dropout = m.dropout
        self.EOS = m.EOS
        self.top_k = top_k
        self.pr2537_text_mask = pr2537_text_mask

        # construction order = upstream's, so that a seed gives the same initial weights
        self.bert_proj = nn.Linear(BERT_DIM, self.embedding_dim)
        self.ar_text_embedding = TokenEmbedding(self.embedding_dim, self.phoneme_vocab_size, self.p_dropout)
        self.ar_text_position = SinePositionalEmbedding(self.embedding_dim, dropout=0.1, scale=False, alpha=True)
        self.ar_audio_embedding = TokenEmbedding(self.embedding_dim, self.vocab_size, self.p_dropout)
        self.ar_audio_position = SinePositionalEmbedding(self.embedding_dim, dropout=0.1, scale=False, alpha=True)
        self.h = TransformerEncoder(
            TransformerEncoderLayer(self.model_dim, self.num_head, dim_feedforward=m.ffn_dim, dropout=0.1,
                                    norm_first=norm_first),
            num_layers=self.num_layers,
            norm=nn.LayerNorm(self.model_dim) if norm_first else None,
        )
        self.ar_predict_layer = nn.Linear(self.model_dim, self.vocab_size, bias=False)
        self._fast: KVCacheDecoder | None = None  # built on first inference, rebuilt when weights change

    # ------------------------------------------------------------------ inputs
    def embed_text(self, x: torch.Tensor, bert_feature: torch.Tensor) -> torch.Tensor:
        """Phone ids [B, T] and BERT features [B, 1024, T] → [B, T, D] (with positions)."""
        x = self.ar_text_embedding(x)  # [B, T, D]
        x = x + self.bert_proj(bert_feature.transpose(1, 2))
        return self.ar_text_position(x)

    def pad_y_eos(self, y: torch.Tensor, y_mask_int: torch.Tensor, eos_id: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(audio input [B, T], targets [B, T+1]): codes with EOS at padded places, and the codes followed by EOS."""
        targets = F.pad(y, (0, 1), value=0) + eos_id * F.pad(y_mask_int, (0, 1), value=1)  # [B, T+1]
        return targets[:, :-1], targets

    def make_input_data(self, x: torch.Tensor, x_lens: torch.Tensor, y: torch.Tensor, y_lens: torch.Tensor,
                        bert_feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(xy_pos [B, S, D], additive mask [B·H, S, S], targets [B, T_y + 1]) for teacher forcing.

        x [B, T_x] phone ids (right-padded), y [B, T_y] codes (any padding value), S = T_x + T_y.
        """
        x = self.embed_text(x, bert_feature)  # [B, T_x, D]
        x_mask = make_pad_mask_left(x_lens) if self.pr2537_text_mask else make_pad_mask(x_lens)  # [B, T_x]
        y_mask = make_pad_mask(y_lens)  # [B, T_y]
        y_mask_int = y_mask.long()
        codes = y.long() * (1 - y_mask_int)
        y_in, targets = self.pad_y_eos(codes, y_mask_int, eos_id=self.EOS)
        y_pos = self.ar_audio_position(self.ar_audio_embedding(y_in))  # [B, T_y, D]

        x_len, y_len = int(x_lens.max()), int(y_lens.max())
        B, S, H = x.size(0), x_len + y_len, self.num_head
        padding = torch.cat([x_mask, y_mask], dim=1)  # [B, S] True = padded key
        padding = padding.view(B, 1, 1, S).expand(-1, H, -1, -1).reshape(B * H, 1, S)
        blocked = prefix_lm_mask(x_len, y_len, x.device).logical_or(padding)  # [B·H, S, S]
        mask = torch.zeros_like(blocked, dtype=x.dtype).masked_fill_(blocked, float("-inf"))
        return torch.cat([x, y_pos], dim=1), mask, targets

    def _predict(self, xy_dec: torch.Tensor, x_lens: torch.Tensor) -> torch.Tensor:
        """Logits [B, T_y + 1, V]: from the last text position, then from every audio position."""
        x_len = int(x_lens.max())
        if self.pr2537_text_mask:  # upstream: position max(x_lens) - 1 for every item
            return self.ar_predict_layer(xy_dec[:, x_len - 1:])
        last_text = xy_dec[torch.arange(xy_dec.size(0), device=xy_dec.device), x_lens - 1]  # [B, D]
        dec = torch.cat([last_text.unsqueeze(1), xy_dec[:, x_len:]], dim=1)  # [B, T_y + 1, D]
        return self.ar_predict_layer(dec)

    # ------------------------------------------------------------------ training
    def forward_old(self, x: torch.Tensor, x_lens: torch.Tensor, y: torch.Tensor, y_lens: torch.Tensor,
                    bert_feature: torch.Tensor) -> tuple[torch.Tensor, float]:
        """(summed cross-entropy, top-k accuracy as a float): the plain training objective."""
        xy_pos, mask, targets = self.make_input_data(x, x_lens, y, y_lens, bert_feature)
        logits = self._predict(self.h(xy_pos, mask), x_lens).permute(0, 2, 1)  # [B, V, T_y + 1]
        loss = F.cross_entropy(logits, targets, reduction="sum")
        acc = top_k_accuracy(logits.detach(), targets, self.top_k, self.EOS).item()
        return loss, acc

    def forward(self, x: torch.Tensor, x_lens: torch.Tensor, y: torch.Tensor, y_lens: torch.Tensor,
                bert_feature: torch.Tensor) -> tuple[torch.Tensor, float]:
        """(summed cross-entropy + DPO loss, accuracy): training with `train.if_dpo`.

        The rejected sequence is the target with a random span repeated or deleted
        (`make_reject_y`, drawn from the global generator as upstream), and the DPO loss
        (Rafailov et al. 2023, eq. 7) is taken reference-free with beta 0.2 on summed log-probs.
        """
        reject_y, reject_y_lens = make_reject_y(y, y_lens)
        xy_pos, mask, targets = self.make_input_data(x, x_lens, y, y_lens, bert_feature)
        logits = self._predict(self.h(xy_pos, mask), x_lens)  # [B, T + 1, V]
        r_pos, r_mask, r_targets = self.make_input_data(x, x_lens, reject_y, reject_y_lens, bert_feature)
        r_logits = self._predict(self.h(r_pos, r_mask), x_lens)

        loss_ce = F.cross_entropy(logits.permute(0, 2, 1), targets, reduction="sum")
        acc = top_k_accuracy(logits.permute(0, 2, 1).detach(), targets, self.top_k, self.EOS).item()
        chosen = logits.log_softmax(-1).gather(2, targets.unsqueeze(2)).squeeze(2).sum(-1)  # [B]
        rejected = r_logits.log_softmax(-1).gather(2, r_targets.unsqueeze(2)).squeeze(2).sum(-1)
        loss_dpo = -F.logsigmoid(0.2 * (chosen - rejected)).mean()
        return loss_ce + loss_dpo, acc

    # ------------------------------------------------------------------ inference
    def fast_decoder(self) -> KVCacheDecoder:
        """The KV-cache decoder over the current weights (rebuilt if they changed since)."""
        if self._fast is None or not self._fast.matches(self):
            self._fast = KVCacheDecoder(self)
        return self._fast

    def _check_inference_inputs(self, x: torch.Tensor, prompts: torch.Tensor | None, bert_feature: torch.Tensor,
                                top_k: int) -> None:
        """Clear errors for what would otherwise fail deep inside (or silently decode garbage)."""
        if isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or top_k < 1:
            raise ValueError(f"infer_panel: top_k must be a whole number >= 1 (the web UI uses 15), got {top_k!r}")
        if x.dim() != 2 or x.size(1) == 0:
            raise ValueError(f"infer_panel: x must be phone ids [batch, phones], got shape {tuple(x.shape)}")
        if tuple(bert_feature.shape) != (x.size(0), BERT_DIM, x.size(1)):
            raise ValueError(f"infer_panel: bert_feature must be [batch, {BERT_DIM}, phones] = "
                             f"{[x.size(0), BERT_DIM, x.size(1)]}, got {list(bert_feature.shape)}")
        _ids_in_range("x", x, self.phoneme_vocab_size)
        if prompts is not None:
            if prompts.dim() != 2 or prompts.size(0) != x.size(0):
                raise ValueError(f"infer_panel: prompts must be codes [batch={x.size(0)}, tokens], "
                                 f"got shape {tuple(prompts.shape)}")
            _ids_in_range("prompts", prompts, self.vocab_size)

    @torch.no_grad()
    def infer_panel(self, x: torch.LongTensor, x_lens: torch.LongTensor, prompts: torch.LongTensor | None,
                    bert_feature: torch.Tensor, top_k: int = -100, top_p: float = 100, early_stop_num: int = -1,
                    temperature: float = 1.0, repetition_penalty: float = 1.35,
                    **kwargs: Any) -> tuple[torch.Tensor, int]:
        """Generate semantic tokens: (y [B, prompt + new], idx), as upstream's `infer_panel`.

        x [B, T_x] phone ids of prompt text + target text, bert_feature [B, 1024, T_x], prompts
        [B, T_p] the reference's codes (None: no reference, then idx is returned as 0). `y`
        holds the prompt followed by the new tokens (without the final EOS); `idx` is the step
        at which decoding stopped (the number of new tokens when it stopped on EOS), so
        `y[:, -idx:]` are the new tokens. The stop test looks at batch item 0 only (upstream).
        `top_k` must be given (upstream's default -100 is not a usable value); `top_p >= 1`
        disables nucleus filtering. Extra keyword arguments are accepted and ignored.
        """
        self._check_inference_inputs(x, prompts, bert_feature, top_k)
        decoder = self.fast_decoder()
        x = self.embed_text(x, bert_feature)  # [B, T_x, D]
        x_len = x.size(1)
        if prompts is not None:
            y = prompts
            prefix_len = y_len = y.size(1)
            xy_pos = torch.cat([x, self.ar_audio_position(self.ar_audio_embedding(y))], dim=1)
        else:
            y = torch.zeros(x.size(0), 0, dtype=torch.int, device=x.device)
            prefix_len = y_len = 0
            xy_pos = x
        blocked = prefix_lm_mask(x_len, y_len, x.device)  # [S, S]

        pos = self.ar_audio_position
        hidden = decoder.prefill(xy_pos, blocked, MAX_DECODE_STEPS)  # [B, S, D], with the caller's threads
        idx = 0
        with decoder.decoding():
            for idx in range(MAX_DECODE_STEPS):
                if idx > 0:
                    hidden = decoder.step(xy_pos)  # [B, D]
                logits = decoder.predict(hidden)  # [B, V]
                if idx < MIN_TOKENS_BEFORE_EOS:
                    logits = logits[:, :-1]  # EOS is not a candidate yet
                samples = sample(logits, y, top_k=top_k, top_p=top_p, repetition_penalty=repetition_penalty,
                                 temperature=temperature)[0]  # [B, 1]; penalises `logits` in place
                y = torch.cat([y, samples], dim=1)

                stop = early_stop_num != -1 and (y.size(1) - prefix_len) > early_stop_num
                if int(torch.argmax(logits, dim=-1)[0]) == self.EOS or int(samples[0, 0]) == self.EOS:
                    stop = True
                    y = y[:, :-1]
                if idx == MAX_DECODE_STEPS - 1:
                    stop = True
                if stop:
                    if y.size(1) == 0:
                        y = torch.cat([y, torch.zeros_like(samples)], dim=1)
                    break
                # the newest token, embedded at its audio position
                xy_pos = self.ar_audio_embedding(y[:, -1:]) * pos.x_scale + pos.alpha * pos.position(
                    y_len + idx).to(dtype=xy_pos.dtype)  # [B, 1, D]
        return y, (0 if prompts is None else idx)


def _ids_in_range(name: str, ids: torch.Tensor, size: int) -> None:
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= size):
        raise ValueError(f"infer_panel: {name} holds ids from {int(ids.min())} to {int(ids.max())}, "
                         f"outside 0..{size - 1}")


def make_reject_y(y: torch.Tensor, y_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The DPO "rejected" sequences: per item, a random span [a, b) repeated (coin 0) or deleted (coin 1).

    Mirrors `GPT_SoVITS/AR/models/utils.py · make_reject_y @48b1a01`, draws included (one coin,
    then two sorted integers in [0, T) per item, from the global generator). Upstream quirk kept:
    the span is drawn over the *padded* length T = y.size(1), not the item's own length. The
    results are right-padded with 0.
    """
    rows, lens = [], []
    for b in range(len(y_lens)):
        coin = torch.randint(0, 2, size=(1,))[0]
        item = y[b]
        start, end = torch.randint(0, len(item), size=(2,)).sort()[0]
        head, span, tail = item[:start], item[start:end], item[end:]
        new = torch.cat([head, span, span, tail]) if coin == 0 else torch.cat([head, tail])
        rows.append(new)
        lens.append(len(new))
    longest = max(lens)
    rows = [torch.cat([r, torch.zeros(longest - len(r), dtype=y.dtype, device=y.device)]) for r in rows]
    return torch.stack(rows), torch.tensor(lens, device=y_lens.device)
