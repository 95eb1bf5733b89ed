"""The whole SoVITS generator `SynthesizerTrn` (gsv_edu.sovits.models) against the official fixtures.

- tiny model (tests/fixtures/sovits_v2/tiny_io.pt, README §5): every deterministic sub-module
  output, infer with noise_scale 0, the decode variants, and the training forward with the
  recorded RNG (by seed and by injection);
- official-size v1 and v2 models filled with `weight_rule.py` (README §6): keys, shapes and
  parameter counts equal to the official listing, and their decode outputs;
- invariants of the frozen quantizer and of the caller's tensors.
"""
from __future__ import annotations

import json
import sys

import pytest
import torch

from conftest import FIXTURES, assert_fixture_close, load_fixture
from gsv_edu.sovits.commons import slice_segments
from gsv_edu.sovits.models import SynthesizerTrn

sys.path.insert(0, str(FIXTURES))
import weight_rule  # noqa: E402  (the fixtures' own helper, imported from the fixtures folder)

LISTING = FIXTURES.parent / "reference" / "sovits_v2_state_dict.txt"
TINY_CONFIG = json.loads((FIXTURES / "tiny_config.json").read_text())


def _official_model_config() -> dict:
    """The model section of the official s2.json (`GPT_SoVITS/configs/s2.json @48b1a01`)."""
    from gsv_edu.config import OFFICIAL_S2_JSON
    return json.loads(OFFICIAL_S2_JSON.read_text())["model"]


def _tiny_model(state_dict) -> SynthesizerTrn:
    model = SynthesizerTrn(1025, TINY_CONFIG["_derived"]["segment_size_frames"], n_speakers=300,
                           **TINY_CONFIG["model"])
    model.load_state_dict(state_dict)
    return model.eval()


@pytest.fixture
def tiny_model(tiny_state_dict):
    return _tiny_model(tiny_state_dict)


# ---------------------------------------------------------------------------------- tiny model

def test_tiny_state_dict_keys_and_order(tiny_state_dict):
    model = SynthesizerTrn(1025, 8, n_speakers=300, **TINY_CONFIG["model"])
    sd = model.state_dict()
    assert list(sd) == list(tiny_state_dict)  # 704 keys in the official order
    assert {k: tuple(v.shape) for k, v in sd.items()} == {k: tuple(v.shape) for k, v in tiny_state_dict.items()}


def test_tiny_submodules_match_fixture(tiny_model, tiny_io):
    """Fixture README §5.2 (`deterministic`): each sub-module with the official inputs."""
    m, inp, det = tiny_model, tiny_io["inputs"], tiny_io["deterministic"]
    with torch.no_grad():
        y_mask = det["y_mask"]
        assert_fixture_close(m.reference_style(inp["spec"], y_mask), det["ge"])
        ssl_proj_out = m.ssl_proj(inp["ssl"])
        assert_fixture_close(ssl_proj_out, det["ssl_proj_out"])
        quantized, codes, commit_loss, _ = m.quantizer(ssl_proj_out, layers=[0])
        assert_fixture_close(quantized, det["quantized"])
        assert_fixture_close(m.extract_latent(inp["ssl"]), det["codes"])
        assert_fixture_close(m.quantizer.decode(det["codes"].transpose(0, 1)), det["quantizer_decode"])
        assert_fixture_close(m._upsample_content(quantized), det["quantized_upsampled"])
        x, m_p, logs_p, _, _, _ = m.enc_p(det["quantized_upsampled"], inp["spec_lengths"], inp["text"],
                                          inp["text_lengths"], det["ge"])
        assert_fixture_close(x, det["enc_p_x"])
        assert_fixture_close(m_p, det["m_p"])
        assert_fixture_close(logs_p, det["logs_p"])
        z, m_q, logs_q, _ = m.enc_q(inp["spec"], inp["spec_lengths"], g=det["ge"], eps=det["enc_q_eps"])
        assert_fixture_close(m_q, det["m_q"])
        assert_fixture_close(logs_q, det["logs_q"])
        assert_fixture_close(z, det["z"])
        z_p = m.flow(det["z"], y_mask, g=det["ge"])
        assert_fixture_close(z_p, det["flow_forward"])
        assert_fixture_close(m.flow(det["flow_forward"], y_mask, g=det["ge"], reverse=True),
                             det["flow_reverse_of_forward"])
        dec_input = slice_segments(det["z"], det["dec_ids_slice"], 8)
        assert_fixture_close(dec_input, det["dec_input"])
        assert_fixture_close(m.dec(dec_input, g=det["ge"]), det["dec_output"])
        assert_fixture_close(m.dec(det["z"] * y_mask, g=det["ge"]), det["dec_output_full"])


def test_tiny_infer_matches_fixture(tiny_model, tiny_io):
    inp, det = tiny_io["inputs"], tiny_io["deterministic"]
    with torch.no_grad():
        o, y_mask, (z, z_p, m_p, logs_p) = tiny_model.infer(inp["ssl"], inp["spec"], inp["spec_lengths"],
                                                            inp["text"], inp["text_lengths"], noise_scale=0)
    assert_fixture_close(o, det["infer_o"])
    assert_fixture_close(y_mask, det["infer_y_mask"])
    assert_fixture_close(z, det["infer_z"])
    assert_fixture_close(z_p, det["infer_z_p"])


@pytest.mark.parametrize("expected_key, kwargs", [
    ("decode_o", {}),
    ("decode_o_refer_list", {"refer_list": True}),
    ("decode_o_speed_1_25", {"speed": 1.25}),
])
def test_tiny_decode_matches_fixture(tiny_model, tiny_io, expected_key, kwargs):
    det = tiny_io["deterministic"]
    refer = [det["decode_refer_list_0"], det["decode_refer"]] if kwargs.pop("refer_list", False) else det["decode_refer"]
    codes, text = det["decode_codes"], det["decode_text"]
    codes_before, text_before = codes.clone(), text.clone()
    o = tiny_model.decode(codes, text, refer, noise_scale=0, **kwargs)
    assert not o.requires_grad  # decode runs without autograd
    assert_fixture_close(o, det[expected_key])
    assert torch.equal(codes, codes_before) and torch.equal(text, text_before)


def test_tiny_decode_noise_injection_equals_seeded_draw(tiny_model, tiny_io):
    det = tiny_io["deterministic"]
    args = (det["decode_codes"], det["decode_text"], det["decode_refer"])
    torch.manual_seed(7)
    seeded = tiny_model.decode(*args, noise_scale=0.5)
    torch.manual_seed(7)
    eps = torch.randn(1, 16, 40)
    torch.manual_seed(99)
    injected = tiny_model.decode(*args, noise_scale=0.5, eps=eps)
    torch.testing.assert_close(seeded, injected, rtol=0, atol=0)
    assert not torch.allclose(seeded, det["decode_o"], atol=1e-3)  # the noise is really used


def _check_forward(out, fw):
    o, commit_loss, ids_slice, y_mask, z_mask, (z, z_p, m_p, logs_p, m_q, logs_q), quantized = out
    assert_fixture_close(o, fw["o"])
    assert_fixture_close(commit_loss, fw["commit_loss"])
    assert_fixture_close(ids_slice, fw["ids_slice"])
    assert_fixture_close(y_mask, fw["y_mask"])
    assert_fixture_close(z_mask, fw["y_mask"])
    for name, value in dict(z=z, z_p=z_p, m_p=m_p, logs_p=logs_p, m_q=m_q, logs_q=logs_q, quantized=quantized).items():
        assert_fixture_close(value, fw[name], msg=name)


def test_tiny_forward_with_the_official_seed(tiny_model, tiny_io):
    """Fixture README §5.3: torch.manual_seed(1234), then forward draws randn_like(m_q), then
    rand([B])."""
    inp, fw = tiny_io["inputs"], tiny_io["forward"]
    with torch.no_grad():
        torch.manual_seed(fw["seed"])
        out = tiny_model(inp["ssl"], inp["spec"], inp["spec_lengths"], inp["text"], inp["text_lengths"])
    _check_forward(out, fw)


def test_tiny_forward_with_injected_noise(tiny_model, tiny_io):
    inp, fw = tiny_io["inputs"], tiny_io["forward"]
    torch.manual_seed(4321)  # a different RNG state: only the injected tensors may matter
    with torch.no_grad():
        out = tiny_model(inp["ssl"], inp["spec"], inp["spec_lengths"], inp["text"], inp["text_lengths"],
                         eps=fw["rng_enc_q_eps"], slice_uniform=fw["rng_slice_uniform"])
    _check_forward(out, fw)


def test_infer_test_1_keeps_the_callers_text(tiny_model, tiny_io):
    """The official infer(test=1) zeroes the caller's text in place (`text[:, :] = 0` in
    `GPT_SoVITS/module/models.py · TextEncoder.forward @48b1a01`); ours does not."""
    inp, det = tiny_io["inputs"], tiny_io["deterministic"]
    text = inp["text"].clone()
    with torch.no_grad():
        o, _, (_, _, m_p, _) = tiny_model.infer(inp["ssl"], inp["spec"], inp["spec_lengths"], text,
                                                inp["text_lengths"], test=1, noise_scale=0)
    assert torch.equal(text, inp["text"])
    assert not torch.allclose(m_p, det["m_p"], atol=1e-3)


def test_frozen_quantizer_in_training_mode(tiny_state_dict, tiny_io):
    """`GPT_SoVITS/module/models.py · SynthesizerTrn.forward @48b1a01`: with freeze_quantizer the
    codebook never changes, commit_loss is 0,
    ssl_proj gets no gradient; the rest of the model trains (ref_enc through enc_p and dec)."""
    model = _tiny_model(tiny_state_dict).train()
    inp = tiny_io["inputs"]
    buffers = {k: v.clone() for k, v in model.quantizer.state_dict().items()}
    torch.manual_seed(0)
    out = model(inp["ssl"], inp["spec"], inp["spec_lengths"], inp["text"], inp["text_lengths"])
    o, commit_loss, _, _, _, (z, z_p, m_p, logs_p, m_q, logs_q), quantized = out
    assert not model.quantizer.training and not model.ssl_proj.training
    assert model.enc_p.training and model.dec.training
    assert float(commit_loss) == 0.0
    (o.abs().mean() + (z_p - m_p).pow(2).mean() + logs_q.mean()).backward()
    assert model.ssl_proj.weight.grad is None
    assert model.ref_enc.fc.fc.weight.grad is not None and model.ref_enc.fc.fc.weight.grad.abs().sum() > 0
    assert model.enc_p.ssl_proj.weight.grad is not None
    for k, v in model.quantizer.state_dict().items():
        assert torch.equal(v, buffers[k]), k
    model.extract_latent(inp["ssl"])  # also safe in train mode
    for k, v in model.quantizer.state_dict().items():
        assert torch.equal(v, buffers[k]), k


def test_quantizer_runs_in_float32_under_autocast(tiny_model, tiny_io):
    """`GPT_SoVITS/module/models.py · SynthesizerTrn.forward @48b1a01`: ssl_proj + quantizer run
    with autocast disabled (codes stay exact)."""
    inp, det = tiny_io["inputs"], tiny_io["deterministic"]
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        quantized, codes, _, _ = tiny_model._quantize(inp["ssl"], layers=[0])
        assert torch.nn.functional.linear(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16
    assert quantized.dtype == torch.float32
    assert_fixture_close(codes.transpose(0, 1), det["codes"])
    assert_fixture_close(quantized, det["quantized"])


def test_forward_without_enc_q_is_a_clear_error(tiny_model, tiny_io):
    inp = tiny_io["inputs"]
    tiny_model.enc_q = None
    with pytest.raises(RuntimeError, match="inference only"):
        tiny_model(inp["ssl"], inp["spec"], inp["spec_lengths"], inp["text"], inp["text_lengths"])


def test_constructor_accepts_the_official_config_and_refuses_later_versions():
    cfg = dict(TINY_CONFIG["model"])  # includes n_layers_q, use_spectral_norm: swallowed like the official
    cfg["some_future_key"] = 1
    model = SynthesizerTrn(1025, 8, n_speakers=300, **cfg)
    assert model.version == "v2" and model.ref_enc.in_dim == 704 and model.segment_size == 8
    assert SynthesizerTrn(1025, 8, **{**cfg, "version": "v1"}).ref_enc.in_dim == 1025
    with pytest.raises(ValueError, match="not supported yet"):
        SynthesizerTrn(1025, 8, **{**cfg, "version": "v3"})
    with pytest.raises(ValueError, match="content features"):
        model.extract_latent(torch.zeros(1, 512, 10))


def test_ssl_dim_is_a_parameter():
    cfg = {**TINY_CONFIG["model"], "ssl_dim": 24}
    sd = SynthesizerTrn(1025, 8, **cfg).state_dict()
    assert tuple(sd["ssl_proj.weight"].shape) == (24, 24, 2)
    assert tuple(sd["enc_p.ssl_proj.weight"].shape) == (32, 24, 1)
    assert tuple(sd["quantizer.vq.layers.0._codebook.embed"].shape) == (1024, 24)


def test_discriminator_re_exported_by_models_is_the_official_one():
    """`gsv_edu.sovits.models.MultiPeriodDiscriminator` (where the trainer takes it from, as the
    official `GPT_SoVITS/module/models.py @48b1a01` defines it beside SynthesizerTrn) at the official
    v2 size with the rule weights gives the official scores of mpd_official_io.pt (README §7)."""
    from gsv_edu.sovits import models

    mpd = weight_rule.fill_module(models.MultiPeriodDiscriminator(False, "v2")).eval()
    io = load_fixture("mpd_official_io.pt")
    with torch.no_grad():
        y_d_rs, y_d_gs, _, _ = mpd(io["y"], io["y_hat"])
    assert mpd.periods == io["periods"] == [2, 3, 5, 7, 11]
    for ours, ref in ((y_d_rs, io["y_d_rs"]), (y_d_gs, io["y_d_gs"])):
        assert len(ours) == len(ref) == 6
        for a, b in zip(ours, ref):
            assert_fixture_close(a, b)


# ---------------------------------------------------------------------------------- official size

def _read_listing():
    """{key: (shape, kind)} and the summary lines of tests/fixtures/reference/sovits_v2_state_dict.txt."""
    entries, totals = {}, {}
    for line in LISTING.read_text().splitlines():
        if line.startswith("#   "):
            name, rest = line[4:].split(":", 1)
            words = rest.split()  # "params N buffers M"
            totals[name] = (int(words[1]), int(words[3]))
        elif line and not line.startswith("#"):
            key, shape, _, kind, _ = line.split("\t")
            entries[key] = (tuple(json.loads(shape)), kind)
    return entries, totals


@pytest.fixture(scope="module", params=["v2", "v1"])
def official_model(request):
    model = SynthesizerTrn(1025, 32, n_speakers=300, **{**_official_model_config(), "version": request.param})
    weight_rule.fill_module(model)
    return request.param, model.eval()


def test_official_size_keys_shapes_and_counts(official_model):
    version, model = official_model
    listing, totals = _read_listing()
    expected = {k: shape for k, (shape, _) in listing.items()}
    # v1 differs in exactly these two shapes (GPT_SoVITS/module/models.py @48b1a01:
    # TextEncoder.__init__ sizes text_embedding by the v1 symbols, SynthesizerTrn.__init__ gives
    # MelStyleEncoder all spec_channels)
    if version == "v1":
        expected["enc_p.text_embedding.weight"] = (322, 192)
        expected["ref_enc.spectral.0.fc.weight"] = (128, 1025)
    sd = model.state_dict()
    assert len(sd) == 776
    assert list(sd) == list(listing)  # same keys, same order
    assert {k: tuple(v.shape) for k, v in sd.items()} == expected
    buffers = {k for k, _ in model.named_buffers()}
    assert buffers == {k for k, (_, kind) in listing.items() if kind == "buffer"}
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == (51_310_080 if version == "v2" else 51_272_448)
    assert sum(b.numel() for b in model.buffers()) == 1_573_889
    if version == "v2":
        named_buffers = dict(model.named_buffers())
        for name, (n_par, n_buf) in totals.items():
            in_module = [k for k in sd if k.startswith(name + ".")]
            assert sum(sd[k].numel() for k in in_module if k not in named_buffers) == n_par, name
            assert sum(sd[k].numel() for k in in_module if k in named_buffers) == n_buf, name


def test_official_size_decode_matches_fixture(official_model):
    version, model = official_model
    io = load_fixture(f"official_{version}_io.pt")
    inp, out = io["inputs"], io["outputs"]
    with torch.no_grad():
        codes = model.extract_latent(inp["ssl"])
        assert_fixture_close(codes, out["codes"])
        ones = torch.ones(1, 1, inp["refer"].size(2))
        ge = model.reference_style(inp["refer"], ones)
        assert_fixture_close(ge, out["ge"])
        quantized = model._upsample_content(model.quantizer.decode(codes.transpose(0, 1)))
        _, m_p, logs_p, y_mask, _, _ = model.enc_p(quantized, torch.tensor([24]), inp["text"],
                                                   torch.tensor([inp["text"].size(1)]), ge)
        assert_fixture_close(m_p, out["m_p"])
        assert_fixture_close(logs_p, out["logs_p"])
        assert_fixture_close(model.flow(m_p, y_mask, g=ge, reverse=True), out["z_from_m_p"])
        _, m_q, logs_q, _ = model.enc_q(inp["refer"], torch.tensor([30]), g=ge)
        assert_fixture_close(m_q, out["enc_q_m"])
        assert_fixture_close(logs_q, out["enc_q_logs"])
    wav = model.decode(codes.transpose(0, 1), inp["text"], inp["refer"], noise_scale=0)
    assert wav.shape == (1, 1, 15360)
    assert_fixture_close(wav, out["wav"])
