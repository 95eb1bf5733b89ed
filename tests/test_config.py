import json
import subprocess
import sys

import pytest

from gsv_edu.config import Config, ConfigError, OFFICIAL_S2_JSON, parse_value
from conftest import FIXTURES


def test_official_s2_json_round_trips_unchanged(tmp_path):
    raw = json.loads(OFFICIAL_S2_JSON.read_text())
    cfg = Config.load(OFFICIAL_S2_JSON)
    out = tmp_path / "s2.json"
    cfg.save(out)
    back = json.loads(out.read_text())
    assert back == raw
    assert list(back) == list(raw) and all(list(back[s]) == list(raw[s]) for s in ("train", "data", "model"))
    # values typed as the official ones
    assert cfg.train.betas == [0.8, 0.99] and cfg.data.mel_fmax is None and cfg.model.resblock == "1"
    assert cfg.spec_channels == 1025 and cfg.segment_frames == 32


def test_fixture_tiny_config_loads_with_its_sizes():
    cfg = Config.load(FIXTURES / "tiny_config.json")
    assert (cfg.model.hidden_channels, cfg.model.gin_channels, cfg.model.inter_channels) == (32, 64, 16)
    assert cfg.segment_frames == 8 and cfg.version == "v2"


def test_presets_and_model_kwargs():
    v2, v1, tiny = (Config.preset(n) for n in ("official-v2", "official-v1", "tiny"))
    assert v2.version == "v2" and v1.version == "v1"
    assert v2.model_kwargs()["hidden_channels"] == 192 and v2.model_kwargs()["ssl_dim"] == 768
    assert tiny.model.hidden_channels == 32 and tiny.model.ssl_dim == 256 and not tiny.train.fp16_run
    for c in (v2, v1, tiny):
        c.validate()
    with pytest.raises(ConfigError, match="unknown preset 'huge'"):
        Config.preset("huge")


def test_gsv_edu_only_keys_are_written_only_when_set(tmp_path):
    cfg = Config.load(OFFICIAL_S2_JSON)
    assert "max_steps" not in cfg.to_dict()["train"]
    cfg.apply_overrides(["train.max_steps=50"])
    assert cfg.to_dict()["train"]["max_steps"] == 50
    cfg.save(tmp_path / "c.json")
    assert Config.load(tmp_path / "c.json").train.max_steps == 50


@pytest.mark.parametrize("item, value", [
    ("train.batch_size=4", 4), ("train.learning_rate=2e-4", 2e-4), ("train.fp16_run=false", False),
    ("model.upsample_rates=[10,8,2,2,2]", [10, 8, 2, 2, 2]), ("data.mel_fmax=null", None),
    ("data.mel_fmax=8000", 8000), ("model.version=v1", "v1"), ("train.learning_rate=1", 1),
])
def test_overrides_are_parsed_and_typed(item, value):
    cfg = Config.preset("official-v2").apply_overrides([item])
    key = item.split("=")[0]
    section, name = key.split(".")
    assert getattr(getattr(cfg, section), name) == value


@pytest.mark.parametrize("item, message", [
    ("train.batch_sise=4", r"train.batch_sise: unknown key"),
    ("train.batch_size=four", r"train.batch_size: expected int, got 'four'"),
    ("train.batch_size=true", r"train.batch_size: expected int"),
    ("train.fp16_run=1", r"train.fp16_run: expected bool"),
    ("model.upsample_rates=[10,8,2.5]", r"model.upsample_rates\[2\]: expected int"),
    ("trian.batch_size=4", r"unknown section 'trian'"),
    ("train.batch_size", r"expected key=value"),
])
def test_bad_overrides_name_the_key(item, message):
    with pytest.raises(ConfigError, match=message):
        Config.preset("tiny").apply_overrides([item])


def test_bad_files_name_the_file_and_key(tmp_path):
    bad = json.loads(OFFICIAL_S2_JSON.read_text())
    bad["model"]["hiden_channels"] = 3
    p = tmp_path / "bad.json"
    p.write_text(json.dumps(bad))
    with pytest.raises(ConfigError, match=r"bad.json: model.hiden_channels: unknown key"):
        Config.load(p)
    bad["model"].pop("hiden_channels")
    bad["train"]["segment_size"] = "20480"
    p.write_text(json.dumps(bad))
    with pytest.raises(ConfigError, match=r"train.segment_size: expected int, got '20480'"):
        Config.load(p)
    p.write_text("{ not json")
    with pytest.raises(ConfigError, match=r"bad.json: not valid JSON \(line 1"):
        Config.load(p)


def test_cross_key_validation():
    with pytest.raises(ConfigError, match="upsample_rates"):
        Config.preset("tiny").apply_overrides(["model.upsample_rates=[10,8,2,2]"]).validate()
    with pytest.raises(ConfigError, match="halved 5 times .* to 0 channels"):
        Config.preset("tiny").apply_overrides(["model.upsample_initial_channel=16"]).validate()
    with pytest.raises(ConfigError, match="not supported yet"):
        Config.preset("tiny").apply_overrides(["model.version=v3"]).validate()


def test_exported_hparams_config_reads():
    """The `config` of an official export is an HParams tree with web-UI additions."""
    class HParams:
        def __init__(self, **kw):
            self.__dict__.update(kw)
    raw = json.loads(OFFICIAL_S2_JSON.read_text())
    hp = HParams(train=HParams(**raw["train"], pretrained_s2G="GPT_SoVITS/pretrained_models/s2G.pth",
                               if_save_latest=True, gpu_numbers="0-1"),
                 data=HParams(**raw["data"], exp_dir="logs/x"), model=HParams(**raw["model"], version="v2"),
                 s2_ckpt_dir="logs/x", content_module="cnhubert", name="x", version="v2", save_weight_dir="w")
    cfg = Config.from_hparams(hp)
    assert cfg.train.gpu_numbers == "0-1" and cfg.data.exp_dir == "logs/x" and cfg.version == "v2"


def test_parse_value():
    assert parse_value("1e-4") == 1e-4 and parse_value("abc") == "abc" and parse_value("[1]") == [1]
