"""v2Pro / v2ProPlus weight files (gsv_edu.weights): the official "05"/"06" exports of the fixtures,
our exports (tag, format, strict reload, fp16 parity), pretrained-format plain zips, version detection."""
from __future__ import annotations

import hashlib
import io
import pathlib
import sys
import zipfile

import pytest
import torch

from gsv_edu import weights as weights_module
from gsv_edu.config import Config
from gsv_edu.sovits.models import SynthesizerTrn
from gsv_edu.weights import (CheckpointError, HParams, detect_version, load_sovits, read_sovits_file,
                             save_sovits)

V2PRO = pathlib.Path(__file__).parent / "fixtures" / "v2pro"
EXPORTS = V2PRO / "export"
sys.path.insert(0, str(V2PRO.parent / "sovits_v2"))
sys.path.insert(0, str(V2PRO))
import sv_weight_rule  # noqa: E402  (tests/fixtures/v2pro/sv_weight_rule.py)
import weight_rule  # noqa: E402

VERSIONS = ["v2Pro", "v2ProPlus"]
META = torch.load(V2PRO / "export_meta.pt", weights_only=True)
TINY = torch.load(V2PRO / "synth_tiny.pt", weights_only=True)


def official_export(version):
    return EXPORTS / f"tiny_{version}_e3_s7.pth"


def tiny_model(version):
    model = SynthesizerTrn(1025, 8, n_speakers=300, **TINY[version]["model_kwargs"], version=version)
    return sv_weight_rule.fill_tiny_sovits(model)


def tiny_hps(version):
    """A config that rebuilds the tiny fixture model (official layout, tiny model section)."""
    return {"train": {"segment_size": 5120}, "data": {"filter_length": 2048, "hop_length": 640, "n_speakers": 300},
            "model": {**TINY[version]["model_kwargs"], "version": version}}


def fp16_rounded(model):
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.half().float())
    return model


@pytest.mark.parametrize("version", VERSIONS)
def test_official_export_is_read(version):
    path = official_export(version)
    meta = META[path.name]
    assert meta["first_two_bytes"] == {"v2Pro": "05", "v2ProPlus": "06"}[version]
    sovits = read_sovits_file(path)
    assert sovits.version == version and sovits.kind == "export" and sovits.info == "3epoch_7iteration"
    assert list(sovits.weight) == meta["exported_keys"]
    assert sovits.hps["model"]["version"] == version and sovits.hps["model"]["gin_channels"] == 64
    expected = tiny_model(version).state_dict()
    for key, value in sovits.weight.items():
        assert value.dtype == torch.float16 and torch.equal(value, expected[key].half()), key
    # the tag decides even without the config
    assert detect_version(sovits.weight, None, tag=path.read_bytes()[:2]) == version


@pytest.mark.parametrize("version", VERSIONS)
def test_our_export_has_the_official_format_and_reloads(tmp_path, version):
    model = tiny_model(version)
    official = read_sovits_file(official_export(version))
    path = tmp_path / f"ours_{version}.pth"
    save_sovits(model, path, official.hps, 3, 7)
    data = path.read_bytes()
    assert data[:2] == official_export(version).read_bytes()[:2]            # "05" / "06"
    assert zipfile.is_zipfile(io.BytesIO(b"PK" + data[2:]))
    ours = read_sovits_file(path)
    assert ours.version == version and ours.info == official.info and ours.kind == "export"
    assert [k for k in ours.weight if k in official.weight] == list(official.weight)  # same order
    assert not any(k.startswith("enc_q.") for k in ours.weight)
    assert len(ours.weight) == len(META[official_export(version).name]["full_model_keys"]) - 103
    for key, value in official.weight.items():
        assert torch.equal(ours.weight[key], value), key
    loaded = load_sovits(path)
    assert loaded.version == version == loaded.model.version and loaded.kind == "export"
    x = TINY["inputs"]
    codes = TINY[version]["decode_codes"].transpose(0, 1)
    reference = fp16_rounded(tiny_model(version)).eval()
    with torch.no_grad():
        expected = reference.decode(codes, x["text"][0:1], x["spec"][1:2, :, :30], noise_scale=0, sv_emb=x["sv"][1:2])
        got = loaded.model.decode(codes, x["text"][0:1], x["spec"][1:2, :, :30], noise_scale=0, sv_emb=x["sv"][1:2])
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("version", VERSIONS)
def test_pretrained_format_is_a_plain_zip_found_by_its_keys(tmp_path, version):
    model = tiny_model(version)
    path = tmp_path / "s2G_pro.pth"
    save_sovits(model, path, tiny_hps(version), 0, 0, enc_q=True)
    assert path.read_bytes()[:2] == b"PK"
    loaded = load_sovits(path, inference=False)
    assert loaded.version == version and loaded.kind == "pretrained" and loaded.missing_keys == []
    state = loaded.model.state_dict()
    for key, value in tiny_model(version).state_dict().items():
        assert torch.equal(state[key], value.half().float()), key


def test_version_from_keys_and_shapes():
    pro = {"sv_emb.weight": torch.zeros(4, 20480), "dec.ups.0.weight_v": torch.zeros(8, 4, 16)}
    plus = {"sv_emb.weight": torch.zeros(4, 20480), "dec.ups.0.weight_v": torch.zeros(8, 4, 20)}
    assert detect_version(pro) == "v2Pro" and detect_version(plus) == "v2ProPlus"
    assert detect_version(pro, HParams(model={"version": "v2ProPlus"})) == "v2ProPlus"  # config beats shapes
    assert detect_version(plus, None, tag=b"05") == "v2Pro"                             # tag beats both
    with pytest.raises(CheckpointError, match="marked v2Pro .*no sv_emb"):
        detect_version({"enc_p.text_embedding.weight": torch.zeros(732, 4)}, None, "f.pth", tag=b"05")


def test_official_pretrained_is_known_by_its_hash(tmp_path, monkeypatch):
    model = tiny_model("v2Pro")
    path = tmp_path / "s2Gv2Pro.pth"
    save_sovits(model, path, tiny_hps("v2Pro"), 0, 0, enc_q=True)
    digest = hashlib.md5(path.read_bytes()[:8192]).hexdigest()
    assert read_sovits_file(path).version == "v2Pro"
    monkeypatch.setitem(weights_module.OFFICIAL_PRETRAINED_MD5, digest, "v2ProPlus")
    assert read_sovits_file(path).version == "v2ProPlus"  # the hash table wins, as officially


def test_format_only_v2pro_export_is_read_but_incomplete():
    path = V2PRO.parent / "sovits_v2" / "export" / "format_v2Pro_e1_s1.pth"
    assert read_sovits_file(path).version == "v2Pro"
    with pytest.raises(CheckpointError, match="format_v2Pro_e1_s1.pth.*missing keys"):
        load_sovits(path)


def test_official_size_round_trip(tmp_path):
    """An official-size v2ProPlus exported by us, reloaded strictly: every tensor is the fp16 of the rule."""
    cfg = Config.preset("official-v2proplus")
    model = weight_rule.fill_module(SynthesizerTrn(cfg.spec_channels, cfg.segment_frames,
                                                   n_speakers=cfg.data.n_speakers, **cfg.model_kwargs()))
    path = tmp_path / "plus.pth"
    save_sovits(model, path, cfg, 8, 96)
    assert path.read_bytes()[:2] == b"06"
    loaded = load_sovits(path, inference=False)
    assert loaded.version == "v2ProPlus" and loaded.info == "8epoch_96iteration"
    state = loaded.model.state_dict()
    assert sorted(loaded.missing_keys) == sorted(k for k in model.state_dict() if k.startswith("enc_q."))
    for key, value in model.state_dict().items():
        if not key.startswith("enc_q."):
            assert torch.equal(state[key], value.half().float()), key
