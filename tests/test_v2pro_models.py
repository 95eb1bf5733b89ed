"""SoVITS v2Pro / v2ProPlus (gsv_edu.sovits) against the official classes (tests/fixtures/v2pro).

- official-size generators filled with `sovits_v2/weight_rule.py`: keys and shapes equal to the
  official ones (strict load), codes, ge, ge512, the prior, `decode` with one reference and with a
  list (synth_official.pt);
- tiny generators (the official class at tiny sizes, MRTE width 512): the training forward with
  the recorded RNG (by seed and by injection), decode variants, infer refused (synth_tiny.pt);
- the 7-period discriminator and its losses (mpd7.pt); the presets.
"""
from __future__ import annotations

import pathlib
import sys

import pytest
import torch

from conftest import assert_fixture_close
from gsv_edu.config import Config
from gsv_edu.sovits.discriminators import MultiPeriodDiscriminator
from gsv_edu.sovits.losses import discriminator_loss, feature_loss, generator_loss
from gsv_edu.sovits.models import SynthesizerTrn

V2PRO = pathlib.Path(__file__).parent / "fixtures" / "v2pro"
sys.path.insert(0, str(V2PRO.parent / "sovits_v2"))
sys.path.insert(0, str(V2PRO))
import sv_weight_rule  # noqa: E402  (tests/fixtures/v2pro/sv_weight_rule.py)
import weight_rule  # noqa: E402  (tests/fixtures/sovits_v2/weight_rule.py)

VERSIONS = ["v2Pro", "v2ProPlus"]
PRESET = {"v2Pro": "official-v2pro", "v2ProPlus": "official-v2proplus"}


def load(name):
    return torch.load(V2PRO / name, map_location="cpu", weights_only=True)


def keys_and_shapes(module):
    return [[k, list(v.shape)] for k, v in module.state_dict().items()]


@pytest.fixture(scope="module")
def official_fx():
    return load("synth_official.pt")


@pytest.fixture(scope="module")
def tiny_fx():
    return load("synth_tiny.pt")


def official_model(version):
    cfg = Config.preset(PRESET[version])
    model = SynthesizerTrn(cfg.spec_channels, cfg.segment_frames, n_speakers=cfg.data.n_speakers,
                           **cfg.model_kwargs())
    return weight_rule.fill_module(model).eval()


def tiny_model(tiny_fx, version):
    kwargs = dict(tiny_fx[version]["model_kwargs"])
    model = SynthesizerTrn(1025, tiny_fx["segment_size"] // 640, n_speakers=300, **kwargs, version=version)
    return sv_weight_rule.fill_tiny_sovits(model).eval()


@pytest.mark.parametrize("version", VERSIONS)
def test_official_size_keys_and_decode(official_fx, version):
    expected = official_fx[version]
    model = official_model(version)
    assert keys_and_shapes(model) == expected["state_dict_shapes"]  # strict: names, shapes, order
    assert len(expected["state_dict_shapes"]) == 781
    inputs = official_fx["inputs"]
    with torch.no_grad():
        codes = model.extract_latent(inputs["ssl"])
        assert torch.equal(codes, expected["codes"])
        mask = torch.ones(1, 1, inputs["refer"].shape[-1])
        ge = model.fuse_speaker_vector(model.reference_style(inputs["refer"], mask), inputs["sv"])
        assert_fixture_close(ge, expected["ge"], "ge")
        assert_fixture_close(model.mrte_style(ge), expected["ge512"], "ge512")
        quantized = model._upsample_content(model.quantizer.decode(codes.transpose(0, 1)))
        _, m_p, logs_p, _, _, _ = model.enc_p(quantized, torch.LongTensor([24]), inputs["text"],
                                              torch.LongTensor([10]), model.mrte_style(ge))
        assert_fixture_close(m_p, expected["m_p"], "m_p")
        assert_fixture_close(logs_p, expected["logs_p"], "logs_p")
        wav = model.decode(codes.transpose(0, 1), inputs["text"], inputs["refer"], noise_scale=0.0,
                           sv_emb=inputs["sv"])
        assert wav.shape == (1, 1, 15360)
        assert_fixture_close(wav, expected["wav"], "decode")
        wav_list = model.decode(codes.transpose(0, 1), inputs["text"], [inputs["refer"], inputs["refer2"]],
                                noise_scale=0.0, sv_emb=[inputs["sv"], inputs["sv2"]])
        assert_fixture_close(wav_list, expected["wav_refer_list"], "decode, two references")
        # the speaker vector matters: another one gives another voice
        other = model.decode(codes.transpose(0, 1), inputs["text"], inputs["refer"], noise_scale=0.0,
                             sv_emb=inputs["sv2"])
        assert (other - wav).abs().max() > 1e-3


def test_proplus_widens_only_the_decoder(official_fx):
    pro = dict(map(tuple, [(k, tuple(s)) for k, s in official_fx["v2Pro"]["state_dict_shapes"]]))
    plus = dict(map(tuple, [(k, tuple(s)) for k, s in official_fx["v2ProPlus"]["state_dict_shapes"]]))
    assert pro.keys() == plus.keys()
    differ = sorted(k for k in pro if pro[k] != plus[k])
    assert differ and all(k.startswith("dec.") for k in differ)
    assert plus["dec.conv_pre.weight"] == (768, 192, 7) and plus["dec.ups.0.weight_v"] == (768, 384, 20)
    assert pro["sv_emb.weight"] == (1024, 20480) and pro["ge_to512.weight"] == (512, 1024)
    assert pro["prelu.weight"] == (1024,) and pro["enc_p.mrte.c_pre.weight"] == (512, 192, 1)


@pytest.mark.parametrize("version", VERSIONS)
def test_tiny_training_forward(tiny_fx, version):
    expected = tiny_fx[version]
    model = tiny_model(tiny_fx, version)
    assert keys_and_shapes(model) == expected["state_dict_shapes"]
    x = tiny_fx["inputs"]
    args = (x["ssl"], x["spec"], x["spec_lengths"], x["text"], x["text_lengths"], x["sv"])
    ref = expected["forward"]
    with torch.no_grad():
        mask = (torch.arange(42)[None] < x["spec_lengths"][:, None]).float()[:, None]
        ge = model.fuse_speaker_vector(model.reference_style(x["spec"], mask), x["sv"])
        assert_fixture_close(ge, expected["ge"], "ge")
        assert_fixture_close(model.mrte_style(ge), expected["ge512"], "ge512")
        torch.manual_seed(1234)
        by_seed = model(*args)
        injected = model(*args, eps=ref["rng_enc_q_eps"], slice_uniform=ref["rng_slice_uniform"])
    for out in (by_seed, injected):
        o, commit_loss, ids_slice, y_mask, _, (z, z_p, m_p, logs_p, m_q, logs_q), quantized = out
        assert torch.equal(ids_slice, ref["ids_slice"])
        for name, value in dict(o=o, y_mask=y_mask, z=z, z_p=z_p, m_p=m_p, logs_p=logs_p, m_q=m_q,
                                logs_q=logs_q).items():
            assert_fixture_close(value, ref[name], name)
        assert_fixture_close(commit_loss, ref["commit_loss"])
        assert_fixture_close(quantized.sum(), ref["quantized_sum"])


@pytest.mark.parametrize("version", VERSIONS)
def test_tiny_decode_variants(tiny_fx, version):
    expected = tiny_fx[version]
    model = tiny_model(tiny_fx, version)
    x = tiny_fx["inputs"]
    codes = expected["decode_codes"].transpose(0, 1)
    with torch.no_grad():
        assert torch.equal(model.extract_latent(x["ssl"][0:1, :, :40]), expected["decode_codes"])
        refer0, refer1 = x["spec"][0:1, :, :40], x["spec"][1:2, :, :30]
        text = x["text"][0:1]
        assert_fixture_close(model.decode(codes, text, refer1, noise_scale=0.0, sv_emb=x["sv"][1:2]),
                             expected["decode"], "decode")
        assert_fixture_close(model.decode(codes, text, [refer0, refer1], noise_scale=0.0,
                                          sv_emb=[x["sv"][0:1], x["sv"][1:2]]),
                             expected["decode_refer_list"], "two references")
        # a stacked [n_refs, 1, D] tensor works like the list (official: sv_emb[idx])
        assert_fixture_close(model.decode(codes, text, [refer0, refer1], noise_scale=0.0,
                                          sv_emb=x["sv"][:, None]), expected["decode_refer_list"])
        assert_fixture_close(model.decode(codes, text, refer1, noise_scale=0.0, speed=1.25, sv_emb=x["sv"][1:2]),
                             expected["decode_speed_1_25"], "speed 1.25")


def test_speaker_vector_errors_and_infer(tiny_fx):
    model = tiny_model(tiny_fx, "v2Pro")
    x = tiny_fx["inputs"]
    codes = tiny_fx["v2Pro"]["decode_codes"].transpose(0, 1)
    with pytest.raises(ValueError, match=r"needs the speaker vector sv_emb \[B, 20480\]"):
        model.decode(codes, x["text"][0:1], x["spec"][1:2])
    with pytest.raises(ValueError, match=r"must be \[B, 20480\].*got \(1, 1280\)"):
        model.decode(codes, x["text"][0:1], x["spec"][1:2], sv_emb=torch.zeros(1, 1280))
    with pytest.raises(ValueError, match="2 references need 2 speaker vectors"):
        model.decode(codes, x["text"][0:1], [x["spec"][1:2]] * 2, sv_emb=[x["sv"][0:1]])
    # the official infer() fails with a shape error for v2Pro (recorded); ours says what to use
    assert "must match the size" in tiny_fx["v2Pro"]["infer_official_error"]
    with pytest.raises(RuntimeError, match="infer is not available for v2Pro.*decode"):
        model.infer(x["ssl"], x["spec"], x["spec_lengths"], x["text"], x["text_lengths"])
    v2 = SynthesizerTrn(1025, 8, **{**tiny_fx["v2Pro"]["model_kwargs"], "gin_channels": 64, "version": "v2"})
    assert not hasattr(v2, "sv_emb")
    with pytest.raises(ValueError, match="v2 SynthesizerTrn takes no speaker vector"):
        v2.decode(codes, x["text"][0:1], x["spec"][1:2], sv_emb=x["sv"][1:2])


def test_seven_period_discriminator():
    fx = load("mpd7.pt")
    mpd = weight_rule.fill_module(MultiPeriodDiscriminator(False, version="v2Pro")).eval()
    assert keys_and_shapes(mpd) == fx["state_dict_shapes"]
    assert [None] + mpd.periods == fx["periods"] == [None, 2, 3, 5, 7, 11, 17, 23]
    assert MultiPeriodDiscriminator(False, version="v2ProPlus").periods == mpd.periods
    with torch.no_grad():
        y_d_rs, y_d_gs, fmap_rs, fmap_gs = mpd(fx["y"], fx["y_hat"])
    for ours, ref in [(y_d_rs, fx["y_d_rs"]), (y_d_gs, fx["y_d_gs"]), ([f[0] for f in fmap_rs], fx["fmap_rs_first"]),
                      ([f[0] for f in fmap_gs], fx["fmap_gs_first"])]:
        assert len(ours) == len(ref) == 8
        for a, b in zip(ours, ref):
            assert_fixture_close(a, b)
    for i, k in enumerate((6, 7)):
        for a, b in zip(fmap_rs[k], fx["fmap_rs_new"][i]):
            assert_fixture_close(a, b)
        for a, b in zip(fmap_gs[k], fx["fmap_gs_new"][i]):
            assert_fixture_close(a, b)
    loss_disc, r_list, g_list = discriminator_loss(y_d_rs, y_d_gs)
    assert_fixture_close(loss_disc, fx["loss_disc"])
    assert_fixture_close(torch.tensor([float(v) for v in r_list]), torch.stack(fx["loss_disc_r_list"]).float())
    loss_gen, gen_list = generator_loss(y_d_gs)
    assert_fixture_close(loss_gen, fx["loss_gen"])
    assert_fixture_close(feature_loss(fmap_rs, fmap_gs), fx["loss_fm"])


def test_presets_read_the_official_configs():
    pro, plus = Config.preset("official-v2pro"), Config.preset("official-v2proplus")
    assert pro.version == "v2Pro" and plus.version == "v2ProPlus"
    assert pro.model.gin_channels == plus.model.gin_channels == 1024
    assert pro.model.p_dropout == 0.0 and pro.model.upsample_initial_channel == 512
    assert plus.model.upsample_initial_channel == 768 and plus.model.upsample_kernel_sizes == [20, 16, 8, 2, 2]
    assert pro.model.sv_dim == 20480
    tiny = Config.preset("tiny-v2pro").validate()
    assert tiny.version == "v2Pro" and tiny.model.sv_dim == 1280 and tiny.model.gin_channels == 64
    model = SynthesizerTrn(tiny.spec_channels, tiny.segment_frames, **tiny.model_kwargs())
    assert model.sv_emb.in_features == 1280 and model.enc_p.mrte.c_pre.out_channels == 512
