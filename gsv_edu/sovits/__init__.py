"""The SoVITS network (stage s2 of GPT-SoVITS), one module per component of `GPT_SoVITS/module/`.

    models          SynthesizerTrn, the whole generator (module/models.py)
    prior           TextEncoder `enc_p`: content + phones (+ MRTE) → the prior's mean and log-scale
    mrte            MRTE, the phones ↔ content cross-attention inside the prior (module/mrte_model.py)
    attention       the relative-position transformer encoder (module/attentions.py)
    style           MelStyleEncoder `ref_enc`: a reference spectrogram → the global style vector
    quantize        ResidualVectorQuantizer: content features → semantic codes (module/quantize.py, core_vq.py)
    posterior       PosteriorEncoder `enc_q` (training only)
    wavenet         WN, the non-causal WaveNet of the posterior and the flow
    flows           ResidualCouplingBlock `flow`
    hifigan         Generator `dec`: latent frames → 32 kHz waveform
    discriminators  MultiPeriodDiscriminator (re-exported by models, as officially)
    losses          the GAN, feature-matching and KL losses (module/losses.py)
    commons         masks, slicing and small helpers (module/commons.py)
    weight_norm     the weight-norm spelling of the official state dicts, and folding it away
    channels_last   a faster CPU layout for the decoder's convolutions (same numbers)
    dft_conv        the decoder's wide convolutions as block-DFT products for CPU inference (same
                    numbers to float32 rounding; used by `load_sovits` for inference on the CPU)

Nothing is imported here: `from gsv_edu.sovits.models import SynthesizerTrn` (or
`from gsv_edu import SynthesizerTrn`).
"""
