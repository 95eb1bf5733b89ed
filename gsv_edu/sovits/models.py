"""`SynthesizerTrn`, the whole SoVITS generator, and the re-exported discriminator.

Mirrors `GPT_SoVITS/module/models.py · SynthesizerTrn @48b1a01` for v1, v2, v2Pro and
v2ProPlus.
It is a VITS (Kim et al. 2021) variational autoencoder whose prior is computed not from text
alone but from quantized HuBERT content, phonemes and a reference style vector:

    ge      = ref_enc(spectrogram)                               global style [B, G, 1]
    content = quantizer(ssl_proj(HuBERT features))  ×2 in time  [B, 768, T]
    prior   = enc_p(content, phonemes, ge)            →  m_p, logs_p
    z       = enc_q(spectrogram, ge)                  (training only; the VAE posterior)
    z_p     = flow(z, ge)                             (KL(z_p ‖ prior) during training)
    wav     = dec(z, ge)                              HiFi-GAN, 640 samples per frame

Children in official state-dict order: `enc_p`, `dec`, `enc_q`, `flow`, `ref_enc`,
`ssl_proj`, `quantizer` (776 tensors at the official size; `sovits_v2_state_dict.txt`).

v2Pro / v2ProPlus (`GPT_SoVITS/module/models.py · SynthesizerTrn @48b1a01`, version in
{"v2Pro", "v2ProPlus"}) add a *speaker vector* sv [B, 20480] — the time-mean of a pretrained
speaker-verification network's feature map (`gsv_edu.sv`, ERes2NetV2.forward3) — to the style:

    ge      = prelu(ref_enc(spectrogram) + sv_emb(sv))           [B, 1024, 1]  (gin 1024)
    ge512   = ge_to512(ge)                                        [B, 512, 1]   → MRTE only
    enc_q, flow and dec are conditioned on ge; the prior's MRTE on ge512

and three children after `quantizer`: `sv_emb` (Linear 20480 → gin), `ge_to512` (Linear gin →
512), `prelu` (PReLU, one slope per channel); 781 tensors. v2ProPlus differs only in its config
(HiFi-GAN 768 initial channels, first upsampling kernel 20). The MRTE width is 512 (= the
ge_to512 output) for these versions.

Deliberate differences from the official class (none changes an output in eval mode):
- `ssl_dim` (content width) is a constructor argument; the official hard-codes 768.
- The MRTE width follows `gin_channels` and its content width `hidden_channels`
  (official: fixed 512/192, see `gsv_edu.sovits.mrte`).
- The random draws can be injected (`eps=`, `slice_uniform=`); by default they are drawn with
  the same calls in the same order as the official code.
- `infer` and `extract_latent` use the same frozen-quantizer path as `forward`: with
  `freeze_quantizer` the codebook is evaluated in eval mode, so calling them on a model in
  train mode cannot update the EMA codebook (the official would).
- `semantic_frame_rate=None` means "25hz" (the official asserts).
- `sv_dim` (the speaker-vector width, 20480 officially, hard-coded there) is a constructor
  argument, so a tiny speaker-verification model can feed a tiny v2Pro.
- v2Pro `infer()`: the official method was never updated (it hands the gin-wide ge to the
  512-wide MRTE and fails with a shape error); ours raises a clear error pointing to `decode`.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from gsv_edu.config import SUPPORTED_VERSIONS
from gsv_edu.sovits.commons import rand_slice_segments, sequence_mask
from gsv_edu.sovits.discriminators import MultiPeriodDiscriminator  # re-exported: models.MultiPeriodDiscriminator
from gsv_edu.sovits.flows import ResidualCouplingBlock
from gsv_edu.sovits.hifigan import Generator
from gsv_edu.sovits.posterior import PosteriorEncoder
from gsv_edu.sovits.prior import TextEncoder
from gsv_edu.sovits.quantize import ResidualVectorQuantizer
from gsv_edu.sovits.style import MelStyleEncoder

__all__ = ["SynthesizerTrn", "MultiPeriodDiscriminator", "V2PRO_VERSIONS", "SV_DIM"]

V2_REF_BINS = 704  # v2's ref_enc sees spectrogram bins 0..703 (0–11 kHz); v1 all of them
V2PRO_VERSIONS = ("v2Pro", "v2ProPlus")  # the versions with a speaker-verification branch
SV_DIM = 20480       # official speaker-vector width: ERes2NetV2 forward3, 2048 channels × 10 bands
MRTE_GE_WIDTH = 512  # v2Pro: width of ge_to512's output, the style MRTE receives


class SynthesizerTrn(nn.Module):
    """The SoVITS generator (v1/v2/v2Pro/v2ProPlus), constructed exactly like the official one:

        SynthesizerTrn(filter_length // 2 + 1, segment_size // hop_length, n_speakers=300,
                       **s2_json["model"])

    Unknown keys of the config's model section (`n_layers_q`, `use_spectral_norm`, ...) are
    accepted and ignored, as officially. `n_speakers` and `use_sdp` are stored and unused.
    Hard-coded sizes kept from the official code: posterior encoder (kernel 5, dilation 1,
    16 WaveNet layers), flow (4 couplings × 4 layers, kernel 5), ref_enc internals (128 wide,
    2 heads), codebook (1 layer × 1024 codes).
    """

    def __init__(self, spec_channels: int, segment_size: int, inter_channels: int, hidden_channels: int,
                 filter_channels: int, n_heads: int, n_layers: int, kernel_size: int, p_dropout: float,
                 resblock: str, resblock_kernel_sizes: list[int], resblock_dilation_sizes: list[list[int]],
                 upsample_rates: list[int], upsample_initial_channel: int, upsample_kernel_sizes: list[int],
                 n_speakers: int = 0, gin_channels: int = 0, use_sdp: bool = True,
                 semantic_frame_rate: str | None = None, freeze_quantizer: bool | None = None,
                 version: str = "v2", ssl_dim: int = 768, sv_dim: int = SV_DIM, **kwargs):
        super().__init__()
        version = version or "v2"
        if version not in SUPPORTED_VERSIONS:
            raise ValueError(f"SynthesizerTrn: version {version!r} is not supported yet "
                             f"(supported: {', '.join(SUPPORTED_VERSIONS)})")
        semantic_frame_rate = semantic_frame_rate or "25hz"
        if semantic_frame_rate not in ("25hz", "50hz"):
            raise ValueError(f"SynthesizerTrn: semantic_frame_rate must be '25hz' or '50hz', "
                             f"got {semantic_frame_rate!r}")
        if gin_channels <= 0:
            raise ValueError("SynthesizerTrn: gin_channels must be positive (the style vector ge "
                             "conditions every part of the model; 512 officially)")
        self.spec_channels = spec_channels
        self.inter_channels = inter_channels
        self.hidden_channels = hidden_channels
        self.filter_channels = filter_channels
        self.n_heads = n_heads
        self.n_layers = n_layers
        self.kernel_size = kernel_size
        self.p_dropout = p_dropout
        self.resblock = resblock
        self.resblock_kernel_sizes = resblock_kernel_sizes
        self.resblock_dilation_sizes = resblock_dilation_sizes
        self.upsample_rates = upsample_rates
        self.upsample_initial_channel = upsample_initial_channel
        self.upsample_kernel_sizes = upsample_kernel_sizes
        self.segment_size = segment_size
        self.n_speakers = n_speakers
        self.gin_channels = gin_channels
        self.use_sdp = use_sdp
        self.semantic_frame_rate = semantic_frame_rate
        self.freeze_quantizer = freeze_quantizer
        self.version = version
        self.ssl_dim = ssl_dim
        self.is_v2pro = version in V2PRO_VERSIONS
        self.sv_dim = sv_dim if self.is_v2pro else None
        # v2 looks at the first 704 bins only; v1 at the whole spectrogram.
        self.ref_bins = spec_channels if version == "v1" else V2_REF_BINS

        self.enc_p = TextEncoder(inter_channels, hidden_channels, filter_channels, n_heads, n_layers,
                                 kernel_size, p_dropout, version=version, ssl_dim=ssl_dim,
                                 gin_channels=MRTE_GE_WIDTH if self.is_v2pro else gin_channels)
        self.dec = Generator(inter_channels, resblock, resblock_kernel_sizes, resblock_dilation_sizes,
                             upsample_rates, upsample_initial_channel, upsample_kernel_sizes,
                             gin_channels=gin_channels)
        self.enc_q = PosteriorEncoder(spec_channels, inter_channels, hidden_channels, 5, 1, 16,
                                      gin_channels=gin_channels)
        self.flow = ResidualCouplingBlock(inter_channels, hidden_channels, 5, 1, 4, gin_channels=gin_channels)
        self.ref_enc = MelStyleEncoder(self.ref_bins, style_vector_dim=gin_channels)
        if semantic_frame_rate == "25hz":
            self.ssl_proj = nn.Conv1d(ssl_dim, ssl_dim, 2, stride=2)  # 50 Hz → 25 Hz
        else:
            self.ssl_proj = nn.Conv1d(ssl_dim, ssl_dim, 1, stride=1)
        self.quantizer = ResidualVectorQuantizer(dimension=ssl_dim, n_q=1, bins=1024)
        if self.is_v2pro:
            self.sv_emb = nn.Linear(sv_dim, gin_channels)             # speaker vector → style space
            self.ge_to512 = nn.Linear(gin_channels, MRTE_GE_WIDTH)    # the style MRTE sees
            self.prelu = nn.PReLU(num_parameters=gin_channels)

    # ------------------------------------------------------------------ shared pieces
    def reference_style(self, spec: torch.Tensor, spec_mask: torch.Tensor) -> torch.Tensor:
        """ge [B, G, 1] from a linear spectrogram [B, spec_channels, T] and its mask [B, 1, T].

        Official quirk (`GPT_SoVITS/module/models.py · SynthesizerTrn.forward` and
        `SynthesizerTrn.decode @48b1a01` pass `y[:, :704]`): the "MelStyleEncoder" gets the
        linear magnitude spectrogram, cut to its first 704 bins for v2.
        """
        if spec.dim() != 3 or spec.size(1) < self.ref_bins:
            raise ValueError(f"expected a spectrogram [B, {self.spec_channels}, T], got {tuple(spec.shape)}")
        return self.ref_enc(spec[:, : self.ref_bins] * spec_mask, spec_mask)  # [B, G, 1]

    def fuse_speaker_vector(self, ge: torch.Tensor, sv: torch.Tensor | None) -> torch.Tensor:
        """v2Pro: ge [B, G, 1] and speaker vector sv [B, sv_dim] → prelu(ge + sv_emb(sv)) [B, G, 1].

        Other versions return ge unchanged (and take no sv). Official: `SynthesizerTrn.forward` /
        `decode · get_ge` @48b1a01.
        """
        if not self.is_v2pro:
            if sv is not None:
                raise ValueError(f"a {self.version} SynthesizerTrn takes no speaker vector (sv_emb); "
                                 "only v2Pro/v2ProPlus do")
            return ge
        if sv is None:
            raise ValueError(f"a {self.version} SynthesizerTrn needs the speaker vector sv_emb "
                             f"[B, {self.sv_dim}] of the reference (gsv_edu.sv.speaker_vector)")
        if sv.shape[-1] != self.sv_dim:
            raise ValueError(f"sv_emb must be [B, {self.sv_dim}] (the speaker-verification model's "
                             f"forward3 width), got {tuple(sv.shape)}")
        sv = self.sv_emb(sv.to(ge.dtype))  # [B, G]
        return self.prelu(ge + sv.unsqueeze(-1))  # [B, G, 1]

    def mrte_style(self, ge: torch.Tensor) -> torch.Tensor:
        """The style the prior's MRTE receives: ge_to512(ge) [B, 512, 1] for v2Pro, else ge itself."""
        if not self.is_v2pro:
            return ge
        return self.ge_to512(ge.transpose(2, 1)).transpose(2, 1)  # [B, 512, 1]

    def _quantize(self, ssl: torch.Tensor, layers: list[int] | None = None):
        """ssl [B, ssl_dim, T] → quantizer outputs (quantized [B, ssl_dim, T/2], codes [n_q, B, T/2],
        commit_loss, quantized_list) of `ssl_proj(ssl)`.

        As in `GPT_SoVITS/module/models.py · SynthesizerTrn.forward @48b1a01`: this part always
        runs in float32 with autocast disabled, and with `freeze_quantizer` ssl_proj and the
        quantizer are switched to eval mode. The official code relies on the eval-mode codebook lookup to cut the gradient
        to ssl_proj ("frozen by accident"); we say it explicitly with `torch.no_grad()`, which
        gives the same values and the same (absent) gradients.
        """
        if ssl.dim() != 3 or ssl.size(1) != self.ssl_dim:
            raise ValueError(f"expected content features [B, {self.ssl_dim}, T], got {tuple(ssl.shape)}")
        with torch.autocast(device_type=ssl.device.type, enabled=False):
            ssl = ssl.to(self.ssl_proj.weight.dtype)
            if self.freeze_quantizer:
                self.ssl_proj.eval()
                self.quantizer.eval()
                with torch.no_grad():
                    return self.quantizer(self.ssl_proj(ssl), layers=layers)
            return self.quantizer(self.ssl_proj(ssl), layers=layers)

    def _upsample_content(self, quantized: torch.Tensor) -> torch.Tensor:
        """25 Hz codes back to the 50 Hz spectrogram rate: nearest ×2 in time ([B, D, T] → [B, D, 2T])."""
        if self.semantic_frame_rate == "25hz":
            return F.interpolate(quantized, size=int(quantized.shape[-1] * 2), mode="nearest")
        return quantized

    def _require_enc_q(self) -> PosteriorEncoder:
        if self.enc_q is None:
            raise RuntimeError("this SynthesizerTrn was loaded for inference only (enc_q dropped); "
                               "forward() needs the posterior encoder: load with inference=False")
        return self.enc_q

    # ------------------------------------------------------------------ training
    def forward(self, ssl: torch.Tensor, y: torch.Tensor, y_lengths: torch.Tensor, text: torch.Tensor,
                text_lengths: torch.Tensor, sv_emb: torch.Tensor | None = None, *,
                eps: torch.Tensor | None = None, slice_uniform: torch.Tensor | None = None):
        """The training forward (`GPT_SoVITS/module/models.py · SynthesizerTrn.forward @48b1a01`).

        ssl [B, ssl_dim, T] content features, y [B, spec_channels, T] linear spectrogram (T even),
        y_lengths [B], text [B, L] phoneme ids, text_lengths [B]; v2Pro: sv_emb [B, sv_dim], the
        speaker vectors of the items (7-sv_cn/), fused into ge (`fuse_speaker_vector`).
        `eps` [B, I, T]: posterior noise (default one `torch.randn_like(m_q)`); `slice_uniform`
        [B]: the uniforms of the decoder window (default one `torch.rand([B])`), drawn in this
        order, so `torch.manual_seed(s)` reproduces the official forward.

        Returns (o [B, 1, segment_size·hop], commit_loss, ids_slice [B], y_mask, y_mask,
        (z, z_p, m_p, logs_p, m_q, logs_q) each [B, I, T], quantized [B, ssl_dim, T]).
        """
        enc_q = self._require_enc_q()
        y_mask = sequence_mask(y_lengths, y.size(2)).unsqueeze(1).to(y.dtype)  # [B, 1, T]
        ge = self.fuse_speaker_vector(self.reference_style(y, y_mask), sv_emb)  # [B, G, 1]
        quantized, codes, commit_loss, quantized_list = self._quantize(ssl, layers=[0])  # [B, D, T/2]
        quantized = self._upsample_content(quantized)  # [B, D, T]

        x, m_p, logs_p, y_mask, _, _ = self.enc_p(quantized, y_lengths, text, text_lengths, self.mrte_style(ge))
        z, m_q, logs_q, y_mask = enc_q(y, y_lengths, g=ge, eps=eps)  # [B, I, T]
        z_p = self.flow(z, y_mask, g=ge)  # [B, I, T]

        z_slice, ids_slice = rand_slice_segments(z, y_lengths, self.segment_size, uniform=slice_uniform)
        o = self.dec(z_slice, g=ge)  # [B, 1, segment_size·hop]
        return o, commit_loss, ids_slice, y_mask, y_mask, (z, z_p, m_p, logs_p, m_q, logs_q), quantized

    # ------------------------------------------------------------------ inference
    def infer(self, ssl: torch.Tensor, y: torch.Tensor, y_lengths: torch.Tensor, text: torch.Tensor,
              text_lengths: torch.Tensor, test: int | None = None, noise_scale: float = 0.5, *,
              eps: torch.Tensor | None = None):
        """Re-synthesis from content features: the prior replaces the posterior.

        Mirrors `GPT_SoVITS/module/models.py · SynthesizerTrn.infer @48b1a01`.

        z_p = m_p + ε·exp(logs_p)·noise_scale (ε default one `torch.randn_like(m_p)`),
        z = flow⁻¹(z_p), o = dec(z·mask). Returns (o [B, 1, T·hop], y_mask, (z, z_p, m_p, logs_p)).
        `test == 1` runs the prior with all phoneme ids 0 (the caller's tensor is not modified).
        Not available for v2Pro/v2ProPlus (the official method was never updated for them).
        """
        if self.is_v2pro:
            raise RuntimeError(f"SynthesizerTrn.infer is not available for {self.version}: the official "
                               "infer() was never updated for v2Pro (it feeds the 1024-wide ge to the 512-wide "
                               "MRTE and fails). Use decode(codes, text, refer, sv_emb=...) with "
                               "codes = extract_latent(ssl).transpose(0, 1)")
        y_mask = sequence_mask(y_lengths, y.size(2)).unsqueeze(1).to(y.dtype)  # [B, 1, T]
        ge = self.reference_style(y, y_mask)  # [B, G, 1]
        quantized, _, _, _ = self._quantize(ssl, layers=[0])
        quantized = self._upsample_content(quantized)  # [B, D, T]

        x, m_p, logs_p, y_mask, _, _ = self.enc_p(quantized, y_lengths, text, text_lengths, ge, test=test)
        if eps is None:
            eps = torch.randn_like(m_p)
        z_p = m_p + eps * torch.exp(logs_p) * noise_scale  # [B, I, T]
        z = self.flow(z_p, y_mask, g=ge, reverse=True)  # [B, I, T]
        o = self.dec(z * y_mask, g=ge)  # [B, 1, T·hop]
        return o, y_mask, (z, z_p, m_p, logs_p)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, text: torch.Tensor, refer: torch.Tensor | list[torch.Tensor],
               noise_scale: float = 0.5, speed: float = 1,
               sv_emb: torch.Tensor | list[torch.Tensor] | None = None, *,
               eps: torch.Tensor | None = None) -> torch.Tensor:
        """Text-to-speech synthesis from semantic tokens, as the inference UI calls it.

        Mirrors `GPT_SoVITS/module/models.py · SynthesizerTrn.decode @48b1a01`, as
        `GPT_SoVITS/inference_webui.py · get_tts_wav @48b1a01` calls it.

        codes [n_q=1, B, T_c] (quantizer layer first), text [B, L] phoneme ids of the text to speak,
        refer: a spectrogram [B, spec_channels, T_r] or a list of them (their ge's are averaged).
        Every item is taken at full length (no padding masks). `speed` ≠ 1 stretches the prior to
        int(2·T_c/speed) + 1 frames. `eps` [B, I, T'] replaces the one `torch.randn_like(m_p)` draw.
        v2Pro: sv_emb [B, sv_dim] (or, with a list of references, one vector per reference, a list
        or a stacked tensor): each reference's ge is fused with its own speaker vector before the
        average, and MRTE gets ge_to512 of the average (official `decode · get_ge`).
        Returns the waveform [B, 1, 640·T'].
        """
        if codes.dim() != 3:
            raise ValueError(f"decode: codes must be [n_q, B, T_codes] (quantizer layer first), got {tuple(codes.shape)}")
        if text.dim() != 2:
            raise ValueError(f"decode: text must be [B, L] phoneme ids, got {tuple(text.shape)}")

        def style_of(spec: torch.Tensor) -> torch.Tensor:
            if spec.dim() != 3:
                raise ValueError(f"decode: a reference spectrogram must be [B, {self.spec_channels}, T], "
                                 f"got {tuple(spec.shape)}")
            mask = torch.ones(1, 1, spec.size(2), dtype=spec.dtype, device=spec.device)  # [1, 1, T_r]
            return self.reference_style(spec, mask)  # [B, G, 1]

        if isinstance(refer, (list, tuple)):
            if not refer:
                raise ValueError("decode: refer is an empty list")
            if self.is_v2pro and (sv_emb is None or len(sv_emb) != len(refer)):
                raise ValueError(f"decode: {len(refer)} references need {len(refer)} speaker vectors "
                                 f"(sv_emb[i] for refer[i]), got {'none' if sv_emb is None else len(sv_emb)}")
            ges = [self.fuse_speaker_vector(style_of(r), sv_emb[i] if self.is_v2pro else sv_emb)
                   for i, r in enumerate(refer)]
            ge = torch.stack(ges, 0).mean(0)  # [B, G, 1]
        else:
            ge = self.fuse_speaker_vector(style_of(refer), sv_emb)

        y_lengths = torch.tensor([codes.size(2) * 2], dtype=torch.long, device=codes.device)  # [1]
        text_lengths = torch.tensor([text.size(-1)], dtype=torch.long, device=text.device)  # [1]
        quantized = self._upsample_content(self.quantizer.decode(codes))  # [B, D, 2·T_c]
        x, m_p, logs_p, y_mask, _, _ = self.enc_p(quantized, y_lengths, text, text_lengths, self.mrte_style(ge), speed)
        if eps is None:
            eps = torch.randn_like(m_p)
        z_p = m_p + eps * torch.exp(logs_p) * noise_scale  # [B, I, T']
        z = self.flow(z_p, y_mask, g=ge, reverse=True)  # [B, I, T']
        return self.dec(z * y_mask, g=ge)  # [B, 1, 640·T']

    def extract_latent(self, x: torch.Tensor) -> torch.Tensor:
        """Semantic tokens of content features x [B, ssl_dim, T] → codes [B, n_q, T/2].

        Mirrors `GPT_SoVITS/module/models.py · SynthesizerTrn.extract_latent @48b1a01`.

        Note the order: batch first here, quantizer layer first in `decode`.
        """
        _, codes, _, _ = self._quantize(x)
        return codes.transpose(0, 1)  # [B, n_q, T/2]
