"""GPT (s1) decoding speed: the official `Text2SemanticDecoder.infer_panel` against ours, side by side.

    python bench/gpt_decode.py --official /path/to/GPT-SoVITS [--threads 2] [--rounds 3] [--tokens 300]

Both models have the official size (s1longer-v2: 24 layers, 512-d, 77.6 M parameters) and the
same weights (the fixtures' rule weights, tests/fixtures/sovits_v2/weight_rule.py, or with
`--weights init` the official initialisation under seed 0, which ours reproduces). Each round
runs both on the same input with the same seed, in alternating order (so a load change on a
shared machine hits both), and checks that the tokens are identical. Reported: new tokens per
second (prefill included, as a caller sees it), the ratio ours / official of the medians, and
the fraction of the machine's matmul throughput (a 2048² fp32 matmul, measured in the same run)
that the model's FLOPs represent: decoding one token is a chain of matrix-*vector* products
whose speed is bounded by reading the weights from memory, so this fraction is small by nature.

The official code runs as it is at the pinned commit; two things around it are changed: its
tqdm progress bar is replaced by a plain iterator and its prints are silenced (both only
remove overhead from the official's time). If torchmetrics (which the official module imports
for its training accuracy) is missing, a stand-in with no state is registered under its name.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pathlib
import statistics
import sys
import types

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "fixtures" / "sovits_v2"))
from common import matmul_gflops, timed  # noqa: E402  (bench/common.py: the shared timer and matmul reference)
from gsv_edu.gpt.config import GPTConfig  # noqa: E402
from gsv_edu.gpt.t2s_model import Text2SemanticDecoder  # noqa: E402
from weight_rule import fill_module  # noqa: E402  (the fixtures' rule weights)


def load_official_decoder(path: str):
    """The official Text2SemanticDecoder class from a checkout (the folder holding GPT_SoVITS/)."""
    code = pathlib.Path(path).expanduser().resolve() / "GPT_SoVITS"
    if not (code / "AR" / "models" / "t2s_model.py").is_file():
        raise SystemExit(f"--official {path}: no GPT_SoVITS/AR/models/t2s_model.py there")
    try:
        import torchmetrics.classification  # noqa: F401
    except ImportError:  # the accuracy metric is built in __init__ but never used by inference
        metric = types.ModuleType("torchmetrics.classification")
        metric.MulticlassAccuracy = lambda *a, **k: torch.nn.Identity()
        sys.modules["torchmetrics"] = types.ModuleType("torchmetrics")
        sys.modules["torchmetrics.classification"] = metric
    sys.path.insert(0, str(code))
    from AR.models import t2s_model  # noqa: E402  (the official module, from the checkout)
    t2s_model.tqdm = lambda iterable, *a, **k: iterable
    return t2s_model.Text2SemanticDecoder


def decode_flops(cfg: GPTConfig, text: int, prompt: int, new: int) -> float:
    """Multiply-adds × 2 of infer_panel: text embedding, prefill of text+prompt, `new` cached steps."""
    m = cfg.model
    D, L, V = m.hidden_dim, m.n_layer, m.vocab_size
    per_position = 2 * L * (4 * D * D + 2 * D * m.ffn_dim)  # qkv, out, two FFN matrices
    S = text + prompt
    flops = 2 * text * 1024 * D  # bert_proj
    flops += S * per_position + L * 4 * S * S * D  # prefill: projections + scores and values
    for t in range(new):  # step t attends to S + t + 1 positions
        flops += per_position + L * 4 * (S + t + 1) * D
    return flops + (new + 1) * 2 * D * V  # ar_predict_layer


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--official", required=True, help="a checkout of RVC-Boss/GPT-SoVITS at 48b1a01")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=300, help="new tokens per run (early_stop_num)")
    ap.add_argument("--text", type=int, default=60, help="phones (prompt text + target text)")
    ap.add_argument("--prompt", type=int, default=150, help="reference tokens (150 = 6 s at 25 Hz)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--weights", choices=["rule", "init"], default="rule")
    ap.add_argument("--json", type=pathlib.Path, help="also write the results here")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    Official = load_official_decoder(args.official)
    cfg = GPTConfig.preset("official-v2")
    torch.manual_seed(0)
    official = Official(cfg.to_dict()).eval()
    if args.weights == "rule":
        fill_module(official)
    ours = Text2SemanticDecoder(cfg).eval()
    ours.load_state_dict(official.state_dict(), strict=True)

    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, cfg.model.phoneme_vocab_size, (1, args.text), generator=g)
    bert = torch.zeros(1, 1024, args.text)
    prompt = torch.randint(0, 1024, (1, args.prompt), generator=g)
    kwargs = dict(top_k=15, top_p=1, temperature=1.0, repetition_penalty=1.35, early_stop_num=args.tokens)

    def run(model, tokens=None):
        torch.manual_seed(args.seed)
        kw = dict(kwargs, early_stop_num=tokens or args.tokens)
        with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
            return model.infer_panel(x, torch.tensor([args.text]), prompt, bert, **kw)

    load_before = os.getloadavg()
    for model in (official, ours):  # warm-up (allocations, our transposed weights)
        run(model, tokens=5)
    gflops = matmul_gflops()[0]
    results = {"official": [], "ours": []}
    outputs = {"official": [], "ours": []}
    for r in range(args.rounds):
        order = (("official", official), ("ours", ours)) if r % 2 == 0 else (("ours", ours), ("official", official))
        for name, model in order:
            out = {}
            wall, cpu = timed(lambda: out.update(result=run(model)))
            y, _ = out["result"]
            new = y.size(1) - args.prompt
            results[name].append({"wall_s": wall, "cpu_s": cpu, "new_tokens": new, "tokens_per_s": new / wall})
            outputs[name].append(y)
    load_after = os.getloadavg()

    identical = all(torch.equal(a, b) for a, b in zip(outputs["official"], outputs["ours"]))
    same_each_round = all(torch.equal(outputs["ours"][0], y) for y in outputs["ours"])
    new = results["ours"][0]["new_tokens"]
    flops = decode_flops(cfg, args.text, args.prompt, new)
    summary = {"threads": args.threads, "rounds": args.rounds, "text": args.text, "prompt": args.prompt,
               "new_tokens": new, "weights": args.weights, "matmul_gflops": gflops,
               "loadavg_before": load_before, "loadavg_after": load_after,
               "tokens_identical": identical, "ours_same_every_round": same_each_round, "runs": results}
    print(f"GPT decoding, official size, {args.threads} threads, text {args.text} phones + prompt {args.prompt} "
          f"tokens -> {new} new tokens, {args.rounds} alternating rounds, {args.weights} weights")
    print(f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} (1 min); "
          f"matmul reference {gflops:.1f} GFLOP/s")
    print(f"{'':10s} {'tokens/s (median)':>18s} {'runs':>28s} {'CPU/wall':>9s} {'% of matmul':>12s}")
    for name in ("official", "ours"):
        runs = results[name]
        med = statistics.median(r["tokens_per_s"] for r in runs)
        wall = statistics.median(r["wall_s"] for r in runs)
        util = statistics.median(r["cpu_s"] / r["wall_s"] for r in runs)
        frac = flops / wall / 1e9 / gflops
        summary[name] = {"tokens_per_s": med, "wall_s": wall, "cpu_over_wall": util, "matmul_fraction": frac}
        each = " ".join(f"{r['tokens_per_s']:.1f}" for r in runs)
        print(f"{name:10s} {med:18.1f} {each:>28s} {util:9.2f} {100 * frac:11.1f}%")
    ratio = summary["ours"]["tokens_per_s"] / summary["official"]["tokens_per_s"]
    per_round = [o["wall_s"] / u["wall_s"] for o, u in zip(results["official"], results["ours"])]
    summary["ratio"], summary["ratio_per_round"] = ratio, per_round
    print(f"ratio ours/official {ratio:.2f}x (per round {', '.join(f'{p:.2f}' for p in per_round)}); "
          f"tokens identical: {identical}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
