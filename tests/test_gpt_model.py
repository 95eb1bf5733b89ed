"""The GPT stage (s1): config, Text2SemanticDecoder and its KV-cache decoder against the official fixtures.

Fixtures (tests/fixtures/gpt/, made by tools/official_fixtures/gpt.py from the official AR
classes; README section "gpt/"):
- tiny_io.pt: a 2-layer 64-d model with rule weights (weight_rule.py): teacher-forcing loss,
  accuracy, logits and inputs on a ragged and an even batch, the DPO loss, the prefill logits,
  20 cached decoding steps and their full recomputation, four seeded `infer_panel` runs, and the
  official initialisation under seed 0;
- official_v2_io.pt: the same at the official size (24 layers, 512-d);
- official_configs.json: the official s1 YAML files as yaml.safe_load reads them.
Tolerance: integers equal; floats rtol 1e-4, atol 1e-5 (`assert_fixture_close`).
"""
from __future__ import annotations

import json
import sys

import pytest
import torch

from conftest import FIXTURES, assert_fixture_close
from gsv_edu.gpt import kv_cache
from gsv_edu.gpt.config import GPTConfig, GPTConfigError, PRESETS
from gsv_edu.gpt.embedding import SinePositionalEmbedding, sine_table
from gsv_edu.gpt.t2s_model import (Text2SemanticDecoder, make_pad_mask, make_pad_mask_left, prefix_lm_mask,
                                   top_k_accuracy)

sys.path.insert(0, str(FIXTURES))
import weight_rule  # noqa: E402  (the fixtures' own helper, imported from the fixtures folder)

GPT_FIXTURES = FIXTURES.parent / "gpt"


def _load(name: str):
    return torch.load(GPT_FIXTURES / name, map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def tiny_io():
    return _load("tiny_io.pt")


@pytest.fixture(scope="module")
def official_io():
    return _load("official_v2_io.pt")


def _rule_model(config: dict, **kwargs) -> Text2SemanticDecoder:
    return weight_rule.fill_module(Text2SemanticDecoder(config, **kwargs)).eval()


@pytest.fixture(scope="module")
def tiny_models(tiny_io):
    """(upstream-mask model, default model) with the same rule weights."""
    quirk = _rule_model(tiny_io["config"], pr2537_text_mask=True)
    right = Text2SemanticDecoder(tiny_io["config"]).eval()
    right.load_state_dict(quirk.state_dict())
    return quirk, right


@pytest.fixture(scope="module")
def official_model(official_io):
    return _rule_model(official_io["config"], pr2537_text_mask=True)


def _args(batch: dict):
    return batch["x"], batch["x_lens"], batch["y"], batch["y_lens"], batch["bert"]


# ------------------------------------------------------------------------------------------ config

def test_presets_are_the_official_yaml_files():
    official = json.loads((GPT_FIXTURES / "official_configs.json").read_text())
    assert GPTConfig.preset("official-v2").to_dict() == official["s1longer-v2.yaml"]
    assert GPTConfig.preset("official-v1").to_dict() == official["s1longer.yaml"]
    tiny = GPTConfig.preset("tiny").model
    assert (tiny.n_layer, tiny.hidden_dim, tiny.head, tiny.ffn_dim) == (2, 64, 4, 256)


@pytest.mark.parametrize("name", ["s1longer-v2.yaml", "s1longer.yaml", "s1.yaml"])
def test_config_round_trips_every_official_yaml(name, tmp_path):
    import yaml

    official = json.loads((GPT_FIXTURES / "official_configs.json").read_text())[name]
    path = tmp_path / name
    path.write_text(yaml.safe_dump(official), encoding="utf-8")
    cfg = GPTConfig.from_yaml(path)
    assert cfg.to_dict() == official
    assert cfg.model.n_layer == official["model"]["n_layer"]
    assert yaml.safe_load(cfg.to_yaml()) == official
    if name == "s1.yaml":  # an old key the typed train section knows, and precision written as an int
        assert cfg.train.gradient_accumulation == 4 and cfg.train.precision == 16


def test_config_keeps_web_ui_keys_and_nulls():
    d = json.loads((GPT_FIXTURES / "official_configs.json").read_text())["s1longer-v2.yaml"]
    d["train"].update(if_dpo=True, exp_name="voice", half_weights_save_dir="GPT_weights_v2", if_save_latest=None)
    d.update(pretrained_s1=None, output_dir="logs/voice/logs_s1_v2", something_new=[1, 2])
    cfg = GPTConfig.from_dict(d)
    assert cfg.train.if_dpo is True and cfg.output_dir == "logs/voice/logs_s1_v2"
    assert cfg.to_dict() == d


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("model"), "no 'model' section"),
    (lambda d: d["model"].pop("head"), "missing key(s) ['head']"),
    (lambda d: d["model"].update(n_layer="24"), "key 'n_layer' must be int"),
    (lambda d: d["model"].update(EOS=1023), "EOS must be the last audio token"),
    (lambda d: d["model"].update(head=7), "not divisible by head"),
    (lambda d: d["model"].update(embedding_dim=256), "must equal hidden_dim"),
    (lambda d: d["train"].update(if_dpo="yes"), "key 'if_dpo' must be bool"),
])
def test_config_errors_name_the_key(change, message):
    d = GPTConfig.preset("official-v2").to_dict()
    change(d)
    with pytest.raises(GPTConfigError) as e:
        GPTConfig.from_dict(d, source="my.yaml")
    assert message in str(e.value) and "my.yaml" in str(e.value)


def test_config_yaml_errors_say_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  n_layer: 2\n   head: [\n", encoding="utf-8")
    with pytest.raises(GPTConfigError, match=r"bad.yaml: line \d+ not valid YAML"):
        GPTConfig.from_yaml(bad)
    with pytest.raises(GPTConfigError, match="cannot read"):
        GPTConfig.from_yaml(tmp_path / "missing.yaml")
    with pytest.raises(GPTConfigError, match="unknown GPT preset"):
        GPTConfig.preset("huge")


# ------------------------------------------------------------------------------------------ structure

def test_official_size_keys_and_parameter_counts():
    v2 = Text2SemanticDecoder(PRESETS["official-v2"])
    v1 = Text2SemanticDecoder(PRESETS["official-v1"])
    assert len(v2.state_dict()) == 295
    assert sum(p.numel() for p in v2.parameters()) == 77_606_402
    assert sum(p.numel() for p in v1.parameters()) == 77_493_762
    assert v2.state_dict()["h.layers.23.self_attn.in_proj_weight"].shape == (1536, 512)
    assert v2.state_dict()["h.layers.0.linear1.weight"].shape == (2048, 512)
    assert "ar_predict_layer.bias" not in v2.state_dict()
    assert not any(k.endswith(".pe") for k in v2.state_dict())  # the sine table is not saved


def test_initialisation_is_the_official_one_for_the_same_seed(tiny_io):
    """Same construction order: torch.manual_seed(0) gives the official initial weights, bit for bit."""
    init = tiny_io["init"]
    torch.manual_seed(0)
    sd = Text2SemanticDecoder(tiny_io["config"]).state_dict()
    assert list(sd) == init["keys"]
    sums = torch.tensor([float(v.double().sum()) for v in sd.values()], dtype=torch.float64)
    assert torch.equal(sums, init["sums"])
    for key, head in init["heads"].items():
        assert torch.equal(sd[key].flatten()[:4], head), key


# ------------------------------------------------------------------------------------------ training

@pytest.mark.parametrize("name", ["ragged", "even"])
def test_forward_old_matches_official_with_the_pr2537_mask(tiny_models, tiny_io, name):
    quirk, _ = tiny_models
    batch = tiny_io[f"{name}_batch"]
    with torch.no_grad():
        xy_pos, mask, targets = quirk.make_input_data(*_args(batch))
        logits = quirk._predict(quirk.h(xy_pos, mask), batch["x_lens"])
        loss, acc = quirk.forward_old(*_args(batch))
    assert_fixture_close(xy_pos, tiny_io[f"{name}_xy_pos"])
    assert torch.equal(targets, tiny_io[f"{name}_targets"])
    assert_fixture_close(logits, tiny_io[f"{name}_logits"])
    assert_fixture_close(loss, tiny_io[f"{name}_loss"])
    assert acc == pytest.approx(tiny_io[f"{name}_acc"], abs=1e-7)


@pytest.mark.parametrize("name", ["ragged", "even"])
def test_dpo_forward_matches_official(tiny_models, tiny_io, name):
    quirk, _ = tiny_models
    torch.manual_seed(7)  # the rejected sequences are drawn from the global generator
    with torch.no_grad():
        loss, acc = quirk(*_args(tiny_io[f"{name}_batch"]))
    assert_fixture_close(loss, tiny_io[f"{name}_dpo_loss"])
    assert acc == pytest.approx(tiny_io[f"{name}_dpo_acc"], abs=1e-7)


def test_default_mask_equals_official_when_texts_have_equal_length(tiny_models, tiny_io):
    _, right = tiny_models
    with torch.no_grad():
        loss, _ = right.forward_old(*_args(tiny_io["even_batch"]))
    assert_fixture_close(loss, tiny_io["even_loss"])


def _solo_losses(model, batch):
    out = []
    for b in range(len(batch["x_lens"])):
        xl, yl = int(batch["x_lens"][b]), int(batch["y_lens"][b])
        with torch.no_grad():
            loss, _ = model.forward_old(batch["x"][b:b + 1, :xl], batch["x_lens"][b:b + 1], batch["y"][b:b + 1, :yl],
                                        batch["y_lens"][b:b + 1], batch["bert"][b:b + 1, :, :xl])
        out.append(loss)
    return torch.stack(out)


def test_default_mask_makes_the_loss_independent_of_batching(tiny_models, tiny_io):
    """What is right: with the padding masked where the collate puts it (right), each item's loss is
    its loss alone, plus EOS targets at its padded places. With the PR #2537 mask it is not."""
    quirk, right = tiny_models
    batch = tiny_io["ragged_batch"]
    y_pad = int(batch["y_lens"].max()) - batch["y_lens"]  # padded code places, whose targets are EOS
    with torch.no_grad():
        xy_pos, mask, targets = right.make_input_data(*_args(batch))
        logits = right._predict(right.h(xy_pos, mask), batch["x_lens"])  # [B, T+1, V]
        per_item = torch.nn.functional.cross_entropy(logits.permute(0, 2, 1), targets, reduction="none")  # [B, T+1]
    solo = _solo_losses(right, batch)
    for b in range(len(solo)):
        yl = int(batch["y_lens"][b])
        torch.testing.assert_close(per_item[b, : yl + 1].sum(), solo[b], rtol=1e-5, atol=1e-4)
        assert int(y_pad[b]) == 0 or bool((targets[b, yl + 1:] == right.EOS).all())
    # batch-size-1 runs: both masks agree, and the upstream mask breaks invariance in the batch
    torch.testing.assert_close(_solo_losses(quirk, batch), solo)
    with torch.no_grad():
        q_logits = quirk._predict(quirk.h(*quirk.make_input_data(*_args(batch))[:2]), batch["x_lens"])
        q_item = torch.nn.functional.cross_entropy(q_logits.permute(0, 2, 1), targets, reduction="none")
    shorter = [b for b in range(len(solo)) if batch["x_lens"][b] < batch["x_lens"].max()]
    assert shorter
    for b in shorter:
        yl = int(batch["y_lens"][b])
        assert (q_item[b, : yl + 1].sum() - solo[b]).abs() > 1e-2


def test_pad_masks():
    lengths = torch.tensor([1, 3, 2])
    assert make_pad_mask(lengths).tolist() == [[False, True, True], [False, False, False], [False, False, True]]
    assert make_pad_mask_left(lengths).tolist() == [[True, True, False], [False, False, False], [True, False, False]]
    m = prefix_lm_mask(2, 3)
    assert m.int().tolist() == [[0, 0, 1, 1, 1], [0, 0, 1, 1, 1], [0, 0, 0, 1, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]]


def test_top_k_accuracy_counts_hits_among_non_eos_targets():
    logits = torch.tensor([[[0.0, 5.0], [1.0, 4.0], [2.0, 3.0], [3.0, 2.0]]])  # [B=1, V=4, T=2]
    # column 0: ranking 3,2,1,0; column 1: ranking 0,1,2,3
    assert top_k_accuracy(logits, torch.tensor([[1, 3]]), k=3, ignore_index=3).item() == 1.0  # 1 hit, 3 ignored
    assert top_k_accuracy(logits, torch.tensor([[0, 2]]), k=3, ignore_index=9).item() == 0.5
    assert top_k_accuracy(logits, torch.tensor([[9, 9]]), k=3, ignore_index=9).item() == 0.0


def test_training_mode_uses_dropout_and_backpropagates(tiny_io):
    model = _rule_model(tiny_io["config"]).train()
    batch = tiny_io["ragged_batch"]
    torch.manual_seed(0)
    a, _ = model.forward_old(*_args(batch))
    torch.manual_seed(1)
    b, _ = model.forward_old(*_args(batch))
    assert (a - b).abs() > 1e-3  # dropout 0.1 in the layers and positions
    a.backward()
    assert model.h.layers[0].self_attn.in_proj_weight.grad.abs().sum() > 0
    assert model.ar_text_position.alpha.grad is not None and model.bert_proj.weight.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------ inference

def _prefill(model, io):
    x, bert, prompt = io["infer_x"], io["infer_bert"], io["infer_prompt"]
    xe = model.embed_text(x, bert)
    xy_pos = torch.cat([xe, model.ar_audio_position(model.ar_audio_embedding(prompt))], dim=1)
    dec = kv_cache.KVCacheDecoder(model)
    hidden = dec.prefill(xy_pos, prefix_lm_mask(x.size(1), prompt.size(1)), max_new=20)
    return dec, xe, hidden


def _check_kv_steps(model, io):
    dec, xe, hidden = _prefill(model, io)
    assert_fixture_close(dec.predict(hidden), io["prefill_logits"])
    assert_fixture_close(hidden[:, -1], io["prefill_hidden_last"])
    pos = model.ar_audio_position
    T_p = io["infer_prompt"].size(1)
    ys = io["infer_prompt"]
    cached, full = [], []
    with torch.no_grad():
        for i, tok in enumerate(io["kv_tokens"].tolist()):
            tok = torch.tensor([[tok]])
            ys = torch.cat([ys, tok], dim=1)
            emb = model.ar_audio_embedding(tok) * pos.x_scale + pos.alpha * pos.position(T_p + i)
            cached.append(dec.predict(dec.step(emb)))
            xy = torch.cat([xe, pos(model.ar_audio_embedding(ys))], dim=1)
            h = model.h(xy, prefix_lm_mask(xe.size(1), ys.size(1)))
            full.append(model.ar_predict_layer(h[:, -1]))
    cached, full = torch.cat(cached), torch.cat(full)
    assert_fixture_close(cached, io["kv_cached_logits"])
    assert_fixture_close(full, io["kv_full_logits"])
    assert (cached - full).abs().max() < 1e-4  # the cache is the recomputation, to float32 rounding


def _check_infer(model, io):
    for run in io["infer_runs"]:
        torch.manual_seed(run["seed"])
        y, idx = model.infer_panel(io["infer_x"], torch.tensor([io["infer_x"].size(1)]),
                                   io["infer_prompt"] if run["prompt"] else None, io["infer_bert"],
                                   early_stop_num=run["early_stop_num"], **run["kwargs"])
        assert idx == run["idx"], run["kwargs"]
        assert torch.equal(y, run["y"]), run["kwargs"]


def test_tiny_prefill_and_cached_steps_match_official(tiny_models, tiny_io):
    with torch.no_grad():
        _check_kv_steps(tiny_models[0], tiny_io)


def test_tiny_infer_panel_gives_the_official_tokens(tiny_models, tiny_io):
    assert [r["idx"] for r in tiny_io["infer_runs"]] == [120, 120, 120, 0]  # three capped runs, one without prompt
    _check_infer(tiny_models[0], tiny_io)
    _check_infer(tiny_models[1], tiny_io)  # the text mask is a training matter: same tokens


def test_official_size_forward_old(official_model, official_io):
    batch = official_io["ragged_batch"]
    with torch.no_grad():
        loss, acc = official_model.forward_old(*_args(batch))
        logits = official_model._predict(official_model.h(*official_model.make_input_data(*_args(batch))[:2]),
                                         batch["x_lens"])
    assert_fixture_close(loss, official_io["ragged_loss"])
    assert acc == official_io["ragged_acc"]
    assert_fixture_close(logits[:, :, :64], official_io["ragged_logits"])


def test_official_size_cached_steps_and_tokens(official_model, official_io):
    with torch.no_grad():
        _check_kv_steps(official_model, official_io)
    _check_infer(official_model, official_io)


def test_decoder_follows_weight_changes(tiny_io):
    """The transposed weight copies are rebuilt when the parameters change (e.g. a training step)."""
    model = _rule_model(tiny_io["config"])
    run = tiny_io["infer_runs"][0]
    args = (tiny_io["infer_x"], torch.tensor([tiny_io["infer_x"].size(1)]), tiny_io["infer_prompt"],
            tiny_io["infer_bert"])
    torch.manual_seed(run["seed"])
    before, _ = model.infer_panel(*args, early_stop_num=30, **run["kwargs"])
    first = model.fast_decoder()
    with torch.no_grad():
        model.h.layers[1].linear2.weight.mul_(-3.0)
    assert not first.matches(model)
    fresh = Text2SemanticDecoder(tiny_io["config"]).eval()
    fresh.load_state_dict(model.state_dict())
    torch.manual_seed(run["seed"])
    after, _ = model.infer_panel(*args, early_stop_num=30, **run["kwargs"])
    torch.manual_seed(run["seed"])
    expected, _ = fresh.infer_panel(*args, early_stop_num=30, **run["kwargs"])
    assert torch.equal(after, expected) and not torch.equal(after, before)


def test_cache_growth_keeps_the_tokens(tiny_models, tiny_io, monkeypatch):
    monkeypatch.setattr(kv_cache.KVCacheDecoder, "INITIAL_ROOM", 3)  # forces several doublings
    model = Text2SemanticDecoder(tiny_io["config"], pr2537_text_mask=True).eval()
    model.load_state_dict(tiny_models[0].state_dict())
    _check_infer(model, tiny_io)


def test_sine_table_formula_and_growth():
    table = sine_table(6000, 8)[0].double()
    t = torch.arange(6000, dtype=torch.float64).unsqueeze(1)
    inv = 10000.0 ** (-torch.arange(0, 8, 2, dtype=torch.float64) / 8)
    torch.testing.assert_close(table[:, 0::2], torch.sin(t * inv), atol=2e-3, rtol=0)  # float32 phase at t ~ 6000
    torch.testing.assert_close(table[:, 1::2], torch.cos(t * inv), atol=2e-3, rtol=0)
    emb = SinePositionalEmbedding(8, alpha=True).eval()
    assert emb.pe.shape == (1, 4000, 8)
    with torch.no_grad():
        emb.alpha.fill_(2.0)
        out = emb(torch.zeros(1, 4500, 8))
    assert emb.pe.shape == (1, 4500, 8)
    assert torch.equal(out[0], 2.0 * sine_table(4500, 8)[0])
    assert torch.equal(emb.position(4499), sine_table(4500, 8)[:, 4499])


def test_torch_blas_steps_give_the_same_numbers(tiny_models, tiny_io, official_model, official_io, monkeypatch):
    """Without threadpoolctl the steps use torch's BLAS instead of numpy's: same logits and tokens."""
    monkeypatch.setattr(kv_cache, "ThreadpoolController", None)
    monkeypatch.setattr(kv_cache, "_BLAS", [])
    model = Text2SemanticDecoder(tiny_io["config"], pr2537_text_mask=True).eval()
    model.load_state_dict(tiny_models[0].state_dict())
    assert not model.fast_decoder().use_numpy
    with torch.no_grad():
        _check_kv_steps(model, tiny_io)
    _check_infer(model, tiny_io)
    official_model._fast = None  # rebuilt without numpy
    try:
        assert not official_model.fast_decoder().use_numpy
        with torch.no_grad():
            _check_kv_steps(official_model, official_io)
    finally:
        official_model._fast = None


def test_decoding_holds_one_thread_and_restores(tiny_models):
    decoder = tiny_models[0].fast_decoder()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with decoder.decoding():
            assert torch.get_num_threads() == 1
            if decoder.use_numpy:
                blas = kv_cache._blas_controller().select(user_api="blas")
                assert all(lib.num_threads == 1 for lib in blas.lib_controllers)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("change, message", [
    (dict(top_k=-100), "top_k must be a whole number >= 1"),
    (dict(top_k=2.5), "top_k must be a whole number >= 1"),
    (dict(bert=torch.zeros(1, 1024, 3)), r"bert_feature must be \[batch, 1024, phones\] = \[1, 1024, 16\]"),
    (dict(x=torch.full((1, 16), 732)), "x holds ids from 732 to 732, outside 0..731"),
    (dict(prompt=torch.full((1, 5), 1025)), "prompts holds ids from 1025 to 1025, outside 0..1024"),
    (dict(prompt=torch.zeros(2, 5, dtype=torch.long)), r"prompts must be codes \[batch=1, tokens\]"),
])
def test_inference_input_errors(tiny_models, tiny_io, change, message):
    x = change.get("x", tiny_io["infer_x"])
    bert = change.get("bert", tiny_io["infer_bert"])
    prompt = change.get("prompt", tiny_io["infer_prompt"])
    with pytest.raises(ValueError, match=message):
        tiny_models[1].infer_panel(x, torch.tensor([x.size(1)]), prompt, bert, top_k=change.get("top_k", 15))


def test_replace_model_copies_and_validates():
    tiny = GPTConfig.preset("tiny")
    wide = tiny.replace_model(hidden_dim=128, embedding_dim=128, head=8)
    assert (wide.model.hidden_dim, wide.model.ffn_dim, tiny.model.hidden_dim) == (128, 512, 64)
    assert wide.to_dict()["train"] == tiny.to_dict()["train"]
    with pytest.raises(GPTConfigError, match="must equal hidden_dim"):
        tiny.replace_model(hidden_dim=128)


def test_small_preset_is_the_shipped_gpts_size():
    small = Text2SemanticDecoder(PRESETS["small"])
    assert small.state_dict()["h.layers.3.linear1.weight"].shape == (1024, 256)  # FFN 4 · 256
    assert "h.layers.4.linear1.weight" not in small.state_dict()
    assert small.state_dict()["h.layers.0.self_attn.in_proj_weight"].shape == (768, 256)
    assert small.bert_proj.weight.shape == (256, 1024) and small.ar_text_embedding.word_embeddings.weight.shape[0] == 732
