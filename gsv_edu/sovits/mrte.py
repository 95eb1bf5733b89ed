"""MRTE, the "Multi-Reference Timbre Encoder" block where text meets content in the SoVITS prior.

Mirrors `GPT_SoVITS/module/mrte_model.py · MRTE.forward @48b1a01`. The content frames
(queries) attend to the phoneme encodings (keys/values) through one plain cross-attention
(no relative positions, no dropout); the global style vector ge is added here and only here.
The idea of MRTE comes from Mega-TTS (Jiang et al. 2023); GPT-SoVITS keeps only the
cross-attention and the additive ge.

Official quirk (`GPT_SoVITS/module/models.py · TextEncoder.__init__ @48b1a01`): the official
`TextEncoder` builds `MRTE()` with the defaults of `GPT_SoVITS/module/mrte_model.py ·
MRTE.__init__` (content 192, hidden 512, out 192), so the official model only works with
hidden_channels 192 and gin_channels 512. Our `TextEncoder` passes content = out =
hidden_channels and hidden = gin_channels, which gives exactly the official sizes under the
official config and lets smaller models (the tiny fixture) work too.
"""
from __future__ import annotations

import torch
from torch import nn

from gsv_edu.sovits.attention import MultiHeadAttention


class MRTE(nn.Module):
    """Cross-attention from content frames to phonemes, plus the style vector.

    Keys: `cross_attention` (MultiHeadAttention(hidden, hidden, n_heads), no window),
    `c_pre` (content → hidden, 1×1), `text_pre` (content → hidden, 1×1),
    `c_post` (hidden → out, 1×1). `kernel_size` and `ge_layer` are accepted for signature
    parity with the official constructor and unused there too.
    """

    def __init__(self, content_enc_channels: int = 192, hidden_size: int = 512, out_channels: int = 192,
                 kernel_size: int = 5, n_heads: int = 4, ge_layer: int = 2):
        super().__init__()
        self.cross_attention = MultiHeadAttention(hidden_size, hidden_size, n_heads)
        self.c_pre = nn.Conv1d(content_enc_channels, hidden_size, 1)
        self.text_pre = nn.Conv1d(content_enc_channels, hidden_size, 1)
        self.c_post = nn.Conv1d(hidden_size, out_channels, 1)

    def forward(self, ssl_enc: torch.Tensor, ssl_mask: torch.Tensor, text: torch.Tensor, text_mask: torch.Tensor,
                ge: torch.Tensor | None, test: int | None = None) -> torch.Tensor:
        """ssl_enc [B, content, T], ssl_mask [B, 1, T], text [B, content, L], text_mask [B, 1, L],
        ge [B, hidden, 1] or None → [B, out, T].

        `test` (official diagnostic switch): None or 0 normal; 1 drops the cross-attention
        (content + ge only); 2 drops the content (attention from an all-zero query, + ge).
        """
        if ge is None:
            ge = 0
        attn_mask = text_mask.unsqueeze(2) * ssl_mask.unsqueeze(-1)  # [B, 1, T, L]
        ssl_enc = self.c_pre(ssl_enc * ssl_mask)  # [B, hidden, T]
        text_enc = self.text_pre(text * text_mask)  # [B, hidden, L]
        if test is None or test == 0:
            x = self.cross_attention(ssl_enc * ssl_mask, text_enc * text_mask, attn_mask) + ssl_enc + ge
        elif test == 1:
            x = ssl_enc + ge
        elif test == 2:
            x = self.cross_attention(ssl_enc * 0 * ssl_mask, text_enc * text_mask, attn_mask) + ge
        else:
            raise ValueError(f"MRTE: test must be None, 0, 1 or 2, got {test!r}")
        return self.c_post(x * ssl_mask)  # [B, out, T]
