"""Golden fixtures of the GPT stage (s1), made by the official AR classes (group `gpt`).

    /work/venv_official/bin/python tools/make_official_fixtures.py --official /path/to/GPT-SoVITS gpt

Needs, in the Python that runs it: torch, numpy, pyyaml, torchmetrics (the official
t2s_model imports it), pytorch_lightning (for the Lightning checkpoint and the export written
by the official training callback). Runs on the CPU in float32, 2 threads, eval mode unless
said otherwise; about a minute. Writes tests/fixtures/gpt/ (see the README section
"gpt/" in tests/fixtures/README.md for what each file holds).

Weights: the tiny model (2 layers, 64-d) and the official-size model (24 layers, 512-d) are
filled with the rule of tests/fixtures/sovits_v2/weight_rule.py (from the key names), so no
state dict is stored; the Lightning run uses a micro model (2 layers, 32-d) to keep its
checkpoint small.
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import pathlib
import shutil
import sys
import tempfile
import types

import torch

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "fixtures" / "sovits_v2"))
from weight_rule import fill_module  # noqa: E402  (our rule, shared with the s2 fixtures)

TINY_MODEL = {"vocab_size": 1025, "phoneme_vocab_size": 732, "embedding_dim": 64, "hidden_dim": 64, "head": 4,
              "linear_units": 256, "n_layer": 2, "dropout": 0, "EOS": 1024, "random_bert": 0}
MICRO_MODEL = {"vocab_size": 129, "phoneme_vocab_size": 48, "embedding_dim": 32, "hidden_dim": 32, "head": 2,
               "linear_units": 128, "n_layer": 2, "dropout": 0, "EOS": 128, "random_bert": 0}


def _import_official(official: pathlib.Path):
    """Put GPT_SoVITS/ and the checkout root on sys.path; return the modules the fixtures use."""
    for p in (str(official), str(official / "GPT_SoVITS")):
        if p not in sys.path:
            sys.path.insert(0, p)
    # s1_train imports the data module, whose dataset pulls in the whole text front-end (pandas,
    # g2p, ...): the fixtures feed batches themselves, so a stand-in with the one name suffices.
    stub = types.ModuleType("AR.data.data_module")
    stub.Text2SemanticDataModule = object
    sys.modules.setdefault("AR.data.data_module", stub)
    from AR.models import utils as ar_utils
    from AR.models.t2s_model import Text2SemanticDecoder
    import s1_train
    from AR.models.t2s_lightning_module import Text2SemanticLightningModule
    return ar_utils, Text2SemanticDecoder, s1_train, Text2SemanticLightningModule


def _yaml(official: pathlib.Path, name: str) -> dict:
    import yaml
    with open(official / "GPT_SoVITS" / "configs" / name, encoding="utf-8") as f:
        return yaml.safe_load(f)


def _config(official: pathlib.Path, model: dict | None) -> dict:
    cfg = _yaml(official, "s1longer-v2.yaml")
    if model is not None:
        cfg["model"] = dict(model)
    return cfg


def _batch(g: torch.Generator, phones: int, x_lens: list[int], y_lens: list[int], bert: bool) -> dict:
    """A right-padded batch as the official collate makes it (phones pad 0, codes pad 1024, bert pad 0)."""
    B, X, Y = len(x_lens), max(x_lens), max(y_lens)
    x = torch.zeros(B, X, dtype=torch.long)
    y = torch.full((B, Y), 1024, dtype=torch.long)
    b = torch.zeros(B, 1024, X)
    for i, (xl, yl) in enumerate(zip(x_lens, y_lens)):
        x[i, :xl] = torch.randint(1, phones, (xl,), generator=g)
        y[i, :yl] = torch.randint(0, 1024, (yl,), generator=g)
        if bert:
            b[i, :, :xl] = torch.randn(1024, xl, generator=g)
    return {"x": x, "x_lens": torch.tensor(x_lens), "y": y, "y_lens": torch.tensor(y_lens), "bert": b}


def _run_model(model, g: torch.Generator, phones: int, infer_tokens: int, big: bool) -> dict:
    """Every number the tests compare, from one official model with rule weights."""
    out: dict = {}
    with torch.no_grad():
        # teacher forcing: a ragged batch (text lengths differ: the PR #2537 mask matters) and an even one
        ragged = _batch(g, phones, [12, 9, 5], [20, 14, 17], bert=True)
        even = _batch(g, phones, [8, 8], [15, 11], bert=True)
        for name, bt in (("ragged", ragged), ("even", even)):
            args = (bt["x"], bt["x_lens"], bt["y"], bt["y_lens"], bt["bert"])
            loss, acc = model.forward_old(*args)
            xy_pos, mask, targets = model.make_input_data(*args)
            xy_dec, _ = model.h((xy_pos, None), mask=mask)
            x_len = int(bt["x_lens"].max())
            logits = model.ar_predict_layer(xy_dec[:, x_len - 1:])
            out[f"{name}_batch"] = bt
            out[f"{name}_loss"] = loss
            out[f"{name}_acc"] = acc
            out[f"{name}_logits"] = logits if not big else logits[:, :, :64].contiguous()  # [B, T+1, V(≤64)]
            out[f"{name}_targets"] = targets
            if not big:
                out[f"{name}_xy_pos"] = xy_pos
            torch.manual_seed(7)
            dpo_loss, dpo_acc = model.forward(*args)
            out[f"{name}_dpo_loss"], out[f"{name}_dpo_acc"] = dpo_loss, dpo_acc

        # inference inputs: one sentence (phones of prompt text + target text) and a prompt
        T_x, T_p = (24, 40) if big else (16, 30)
        x = torch.randint(1, phones, (1, T_x), generator=g)
        bert = torch.zeros(1, 1024, T_x)
        bert[:, :, : T_x // 2] = torch.randn(1024, T_x // 2, generator=g)  # BERT on the first half only
        prompt = torch.randint(0, 1024, (1, T_p), generator=g)
        out["infer_x"], out["infer_bert"], out["infer_prompt"] = x, bert, prompt

        # prefill (the official KV-cache path's first pass) and full-sequence logits
        xe = model.ar_text_embedding(x) + model.bert_proj(bert.transpose(1, 2))
        xe = model.ar_text_position(xe)
        y_pos = model.ar_audio_position(model.ar_audio_embedding(prompt))
        xy_pos = torch.cat([xe, y_pos], dim=1)  # [1, S, D]
        S = xy_pos.size(1)
        x_pad = torch.nn.functional.pad(torch.zeros(T_x, T_x, dtype=torch.bool), (0, T_p), value=True)
        y_m = torch.nn.functional.pad(torch.triu(torch.ones(T_p, T_p, dtype=torch.bool), diagonal=1), (T_x, 0),
                                      value=False)
        blocked = torch.cat([x_pad, y_m], 0).view(1, 1, S, S).expand(1, model.num_head, S, S)
        dec, k_cache, v_cache = model.t2s_transformer.process_prompt(xy_pos, blocked, None)
        out["prefill_logits"] = model.ar_predict_layer(dec[:, -1])  # [1, V]
        out["prefill_hidden_last"] = dec[:, -1]  # [1, D]

        # 20 cached steps with fixed tokens, against full recomputation through model.h
        steps = torch.randint(0, 1024, (20,), generator=g)
        pos = model.ar_audio_position
        cached, full = [], []
        ys = prompt
        for i in range(20):
            tok = steps[i: i + 1].view(1, 1)
            ys = torch.cat([ys, tok], dim=1)
            emb = model.ar_audio_embedding(tok) * pos.x_scale + pos.alpha * pos.pe[:, T_p + i]
            dec, k_cache, v_cache = model.t2s_transformer.decode_next_token(emb, k_cache, v_cache)
            cached.append(model.ar_predict_layer(dec[:, -1]))
            # full recomputation: the whole sequence under the prefix-LM mask through the nn.Module layers
            y_len = ys.size(1)
            xy = torch.cat([xe, pos(model.ar_audio_embedding(ys))], dim=1)
            m = torch.cat([
                torch.nn.functional.pad(torch.zeros(T_x, T_x, dtype=torch.bool), (0, y_len), value=True),
                torch.nn.functional.pad(torch.triu(torch.ones(y_len, y_len, dtype=torch.bool), 1), (T_x, 0),
                                        value=False)])
            h, _ = model.h((xy, None), mask=m)
            full.append(model.ar_predict_layer(h[:, -1]))
        out["kv_tokens"] = steps
        out["kv_cached_logits"] = torch.cat(cached)  # [20, V]
        out["kv_full_logits"] = torch.cat(full)  # [20, V]
        out["kv_max_abs_diff"] = float((out["kv_cached_logits"] - out["kv_full_logits"]).abs().max())

    # seeded inference (infer_panel is the official public entry point)
    runs = [
        {"seed": 1, "kwargs": {"top_k": 15, "top_p": 1, "temperature": 1.0}, "prompt": True},  # web UI defaults
        {"seed": 2, "kwargs": {"top_k": 5, "top_p": 0.8, "temperature": 0.7, "repetition_penalty": 1.0},
         "prompt": True},
        {"seed": 3, "kwargs": {"top_k": 30, "top_p": 0.95, "temperature": 1.3, "repetition_penalty": 1.6},
         "prompt": True},
        {"seed": 4, "kwargs": {"top_k": 15, "top_p": 1, "temperature": 1.0}, "prompt": False},  # no reference
    ]
    results = []
    with torch.no_grad():
        for run in runs:
            torch.manual_seed(run["seed"])
            y, idx = model.infer_panel(out["infer_x"], torch.tensor([out["infer_x"].size(1)]),
                                       out["infer_prompt"] if run["prompt"] else None, out["infer_bert"],
                                       early_stop_num=infer_tokens, **run["kwargs"])
            results.append({"seed": run["seed"], "kwargs": run["kwargs"], "prompt": run["prompt"],
                            "early_stop_num": infer_tokens, "y": y.clone(), "idx": int(idx)})
    out["infer_runs"] = results
    return out


def _sampler(ar_utils, g: torch.Generator) -> dict:
    """The official sampler on fixed logits: distributions, the in-place penalty, seeded draws."""
    logits = torch.randn(3, 1025, generator=g) * 3.0
    previous = torch.randint(0, 1025, (3, 40), generator=g)
    previous[:, :5] = torch.topk(logits, 5).indices  # make the penalty hit the most likely tokens
    cases = [
        {"temperature": 1.0, "top_k": 15, "top_p": 1, "repetition_penalty": 1.35},
        {"temperature": 0.6, "top_k": 50, "top_p": 0.7, "repetition_penalty": 1.0},
        {"temperature": 1.3, "top_k": 5, "top_p": 0.9, "repetition_penalty": 1.35},
        {"temperature": 1.0, "top_k": 1, "top_p": 1, "repetition_penalty": 1.35},
        {"temperature": 1e-9, "top_k": 2000, "top_p": 0.5, "repetition_penalty": 2.0},
        {"temperature": 1.0, "top_k": 1025, "top_p": None, "repetition_penalty": 1.35},
    ]
    out = {"logits": logits.clone(), "previous": previous, "cases": []}
    for i, case in enumerate(cases):
        work = logits.clone()
        probs = ar_utils.logits_to_probs(work, previous, **case)
        draws = []
        torch.manual_seed(100 + i)
        for _ in range(50):
            tok, _ = ar_utils.sample(logits.clone(), previous, **case)
            draws.append(tok)
        out["cases"].append({"kwargs": case, "probs": probs, "logits_after": work, "draws": torch.cat(draws, 1)})
    torch.manual_seed(11)
    p = torch.softmax(torch.randn(4, 1025, generator=g), -1)
    out["race_probs"] = p
    out["race_tokens"] = torch.cat([ar_utils.multinomial_sample_one_no_sync(p) for _ in range(100)], 1)  # [4, 100]
    lengths = torch.tensor([1, 3, 2, 5])
    out["pad_mask_lengths"] = lengths
    out["make_pad_mask"] = ar_utils.make_pad_mask(lengths)
    out["make_pad_mask_left"] = ar_utils.make_pad_mask_left(lengths)
    out["make_pad_mask_left_7"] = ar_utils.make_pad_mask_left(lengths, 7)
    return out


def _accuracy(g: torch.Generator) -> dict:
    """torchmetrics' top-3 micro accuracy with EOS ignored, as the official model builds it."""
    from torchmetrics.classification import MulticlassAccuracy
    metric = MulticlassAccuracy(1025, top_k=3, average="micro", multidim_average="global", ignore_index=1024)
    logits = torch.randn(2, 1025, 13, generator=g)
    targets = torch.randint(0, 1024, (2, 13), generator=g)
    top = logits.topk(5, dim=1).indices  # plant hits at ranks 1..5
    for t in range(13):
        if t % 3 == 0:
            targets[0, t] = top[0, t % 5, t]
            targets[1, t] = top[1, (t + 2) % 5, t]
    targets[:, -3:] = 1024  # EOS, ignored
    return {"logits": logits, "targets": targets, "acc": metric(logits, targets).item()}


def _init_sums(Decoder, cfg: dict) -> dict:
    """Per-key sums and first values of the official initialisation under torch.manual_seed(0)."""
    torch.manual_seed(0)
    sd = Decoder(cfg).state_dict()
    return {"keys": list(sd), "sums": torch.tensor([float(v.double().sum()) for v in sd.values()], dtype=torch.float64),
            "heads": {k: v.flatten()[:4].clone() for k, v in sd.items()}}


def _lightning(official: pathlib.Path, s1_train, Module, out: pathlib.Path) -> list[pathlib.Path]:
    """Train the micro model for 2 epochs with the official Lightning module and checkpoint callback."""
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    g = torch.Generator().manual_seed(2024)
    batches = [_batch(g, MICRO_MODEL["phoneme_vocab_size"], [6, 4], [9, 7], bert=False) for _ in range(5)]
    for b in batches:  # codes must stay below the micro vocabulary (EOS 128)
        b["y"] = torch.where(b["y"] == 1024, torch.full_like(b["y"], 128), b["y"] % 128)
    batches = [{"phoneme_ids": b["x"], "phoneme_ids_len": b["x_lens"], "semantic_ids": b["y"],
                "semantic_ids_len": b["y_lens"], "bert_feature": b["bert"]} for b in batches]
    written = []
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        os.chdir(tmp)  # relative paths in the config (no temporary names in the fixtures); my_save writes here too
        try:
            cfg = _config(official, MICRO_MODEL)
            cfg["data"]["pad_val"] = 128
            cfg["train"].update(epochs=2, batch_size=2, precision="32", if_save_latest=True,
                                if_save_every_weights=True, if_dpo=False, half_weights_save_dir="GPT_weights_v2",
                                exp_name="micro")
            cfg["pretrained_s1"] = None
            cfg["train_semantic_path"] = "logs/micro/6-name2semantic.tsv"
            cfg["train_phoneme_path"] = "logs/micro/2-name2text.txt"
            cfg["output_dir"] = "logs/micro/logs_s1_v2"
            (tmp / "GPT_weights_v2").mkdir()
            ckpt_dir = tmp / "logs" / "micro" / "logs_s1_v2" / "ckpt"
            ckpt_dir.mkdir(parents=True)
            pl.seed_everything(cfg["train"]["seed"], workers=True)
            callback = s1_train.my_model_ckpt(
                config=cfg, if_save_latest=True, if_save_every_weights=True,
                half_weights_save_dir=cfg["train"]["half_weights_save_dir"], exp_name="micro", save_top_k=-1,
                monitor="top_3_acc", mode="max", save_on_train_epoch_end=True, every_n_epochs=1, dirpath=ckpt_dir)
            module = Module(cfg, pathlib.Path(cfg["output_dir"]))
            fill_module(module.model)
            trainer = pl.Trainer(max_epochs=2, accelerator="cpu", devices=1, precision="32", logger=False,
                                 limit_val_batches=0, num_sanity_val_steps=0, callbacks=[callback],
                                 enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False)
            with contextlib.redirect_stdout(io.StringIO()):
                trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None))
        finally:
            os.chdir(cwd)
        ckpts = sorted(ckpt_dir.glob("*.ckpt"))
        exports = sorted((tmp / "GPT_weights_v2").glob("*.ckpt"))
        target = out / "lightning"
        target.mkdir(parents=True, exist_ok=True)
        for src, name in ((ckpts[-1], "micro_lightning.ckpt"), (exports[-1], "micro-e2.ckpt")):
            shutil.copyfile(src, target / name)
            written.append(target / name)
        final = {k: v.clone() for k, v in module.state_dict().items()}
        torch.save({"state_dict": final, "lightning_name": ckpts[-1].name, "export_name": exports[-1].name,
                    "config": cfg}, target / "micro_expected.pt")
        written.append(target / "micro_expected.pt")
    return written


def make(official: pathlib.Path, out: pathlib.Path) -> list[pathlib.Path]:
    torch.set_num_threads(2)
    out = out / "gpt"
    out.mkdir(parents=True, exist_ok=True)
    ar_utils, Decoder, s1_train, Module = _import_official(official)
    written = []

    configs = {name: _yaml(official, name) for name in ("s1longer-v2.yaml", "s1longer.yaml", "s1.yaml")}
    (out / "official_configs.json").write_text(json.dumps(configs, indent=1) + "\n", encoding="utf-8")
    written.append(out / "official_configs.json")

    g = torch.Generator().manual_seed(1234)
    tiny_cfg = _config(official, TINY_MODEL)
    tiny = fill_module(Decoder(tiny_cfg)).eval()
    data = {"config": tiny_cfg, "init": _init_sums(Decoder, tiny_cfg)}
    data.update(_run_model(tiny, g, 732, infer_tokens=120, big=False))
    torch.save(data, out / "tiny_io.pt")
    written.append(out / "tiny_io.pt")

    g = torch.Generator().manual_seed(4321)
    full_cfg = _config(official, None)
    full = fill_module(Decoder(full_cfg)).eval()
    data = {"config": full_cfg}
    data.update(_run_model(full, g, 732, infer_tokens=40, big=True))
    torch.save(data, out / "official_v2_io.pt")
    written.append(out / "official_v2_io.pt")
    del full

    torch.save({"sampler": _sampler(ar_utils, torch.Generator().manual_seed(99)),
                "accuracy": _accuracy(torch.Generator().manual_seed(98))}, out / "sampling.pt")
    written.append(out / "sampling.pt")

    written += _lightning(official, s1_train, Module, out)
    return written
