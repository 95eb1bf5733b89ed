"""Make and measure the shipped small GPT (`gsv_edu/assets/gpt_tiny/`), as its MODEL_CARD.md says.

    .venv/bin/python tools/gpt_tiny_asset.py pairs --prepared DIR --sovits PTH --out DIR2   # + prompt-layout items
    .venv/bin/python tools/gpt_tiny_asset.py export RUN            # RUN's final export -> gpt_tiny.ckpt + metrics.jsonl
    .venv/bin/python tools/gpt_tiny_asset.py evaluate --prepared-all DIR [--gpt CKPT]   # -> evaluation.json

`evaluate` runs the whole text-to-speech pipeline as `python -m gsv_edu.tts` does (shipped small
SoVITS and HuBERT, the library's default sampling, seed 0) on sentences of the three parallel
English voices — sentences the GPT was trained on, and the six held-out ones — with a *training*
recording of the same voice as the reference (voice and token prompt). It measures, with no human
listening:
- the token error rate of the GPT's tokens against the recording's own tokens
  (`gsv_edu.gpt.metrics`; DIR is a folder prepared from the whole sample list with `--sovits`);
- a content score of the audio: in the small HuBERT's features, is the output closer (DTW) to the
  real recording of the sentence asked for than to the recordings of the other sentences of the
  same voice and split (chance 0.5; `gsv_edu.hubert.content_score`)? The same score of SoVITS
  decoding the recording's own tokens is the ceiling a perfect GPT would reach with this SoVITS;
- for a held-out sentence, which training sentence its tokens are nearest to (recitation).

`pairs` writes a copy of a prepared folder with extra items in the layout the GPT sees at
inference (`gsv_edu.tts`, the official `get_tts_wav`): phones of [reference transcript ; sentence]
and tokens [the reference's prompt tokens (its plain 16 kHz audio + 0.6 s of zeros, as
`TTS.prompt_tokens`) ; the sentence's training tokens], for every training sentence of a voice
with that voice's reference (`references`: its `_001` recording). The official s1 data holds single utterances only; the official
GPT learned to continue a prompt from 5000 hours of variety, which a memoriser of 7 minutes does
not have (book chapter 14, section 5). The items use the official file formats, so any s1
trainer reads them. Not part of the package or the tests.
"""
import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gsv_edu import audio, book  # noqa: E402
from gsv_edu.data.layout import INFO_FILE, SEMANTIC_FILE, TEXT_FILE  # noqa: E402
from gsv_edu.gpt.config import GPTConfig  # noqa: E402
from gsv_edu.gpt.dataset import read_name2semantic  # noqa: E402
from gsv_edu.gpt.metrics import token_error_rate  # noqa: E402
from gsv_edu.gpt.t2s_model import Text2SemanticDecoder  # noqa: E402
from gsv_edu.hubert.content_score import dtw_distance  # noqa: E402
from gsv_edu.hubert.features import training_features  # noqa: E402
from gsv_edu.infer import load_encoder, load_model, reference_spectrogram  # noqa: E402
from gsv_edu.text import get_symbols  # noqa: E402
from gsv_edu.text.split import SPLITS, segments  # noqa: E402
from gsv_edu.tts import TTS, TINY_GPT_DIR, TINY_GPT_PATH, load_tts, text_features  # noqa: E402

VOICES = ("en_awb", "en_rms", "en_slt")
TRAIN_IDS = (4, 7, 12, 18, 24, 29)      # training sentences scored
HELDOUT_IDS = (5, 10, 15, 20, 25, 30)   # never seen by the GPT, the SoVITS or the HuBERT
REF_ID = 1  # the reference of each voice (`references`): a training sentence of 3.3-3.8 s (3-10 s needed)


def read_semantic(prepared: Path) -> dict[str, list[int]]:
    """6-name2semantic.tsv (`gsv_edu.gpt.dataset.read_name2semantic`) -> {name without extension: tokens}."""
    return {Path(name).stem: codes for name, codes in read_name2semantic(prepared / SEMANTIC_FILE)}


def references(voice: str) -> list[str]:
    """The reference recording of a voice for the prompt-layout items: `{voice}_001`, a training
    recording of 3.3-4.3 s in every voice of the sample corpus (the README and the tests speak with it)."""
    return [f"{voice}_001"]


@torch.no_grad()
def pairs(prepared: Path, sovits: Path, out: Path) -> None:
    """Copy `prepared`'s text and token files to `out` with the prompt-layout items added."""
    model = load_model(sovits)
    gpt_shape = Text2SemanticDecoder(GPTConfig.preset("small"))  # only for TTS's pair checks: never run
    engine = TTS(gpt_shape, model, load_encoder(None, model))
    symbols = get_symbols("v2")
    texts = {Path(line.split("\t")[0]).stem: line for line in
             (prepared / TEXT_FILE).read_text(encoding="utf-8").splitlines() if line.strip()}
    tokens = read_semantic(prepared)
    files = {Path(line.split("\t")[0]).stem: line.split("\t")[0] for line in texts.values()}
    text_lines, token_lines = [], []
    for voice in sorted({n.rsplit("_", 1)[0] for n in tokens}):
        lang = "zh" if voice.startswith("zh") else "en"
        for ref_name in references(voice):
            ref = book.utterance(ref_name)
            ref_text = ref.text if ref.text[-1] in SPLITS else ref.text + ("." if lang == "en" else "。")
            prompt = engine.prompt_tokens(ref.path, ref_name)[0].tolist()  # [T_p]
            ref_ids = engine._text(ref_text, lang, "ref")[0]
            for name in sorted(n for n in tokens if n.startswith(voice + "_") and n != ref_name):
                pieces = segments(book.utterance(name).text, "cut1", lang)
                if len(pieces) != 1:
                    continue
                ids = ref_ids + engine._text(pieces[0], lang, "text")[0]
                pair = f"pair_{ref_name}_{files[name]}"
                text_lines.append(f"{pair}\t{' '.join(symbols[i] for i in ids)}\tNone\t{ref_text} | {pieces[0]}")
                token_lines.append(f"{pair}\t{' '.join(map(str, prompt + tokens[name]))}")
    out.mkdir(parents=True, exist_ok=True)
    (out / TEXT_FILE).write_text((prepared / TEXT_FILE).read_text(encoding="utf-8") + "\n".join(text_lines) + "\n",
                                 encoding="utf-8")
    (out / SEMANTIC_FILE).write_text((prepared / SEMANTIC_FILE).read_text(encoding="utf-8").rstrip("\n") + "\n"
                                     + "\n".join(token_lines) + "\n", encoding="utf-8")
    shutil.copy(prepared / INFO_FILE, out / INFO_FILE)
    print(f"{out}: {len(texts)} utterances + {len(text_lines)} prompt-layout items")


def export(run: Path) -> None:
    """RUN's newest export (weights/*.ckpt, official GPT-weights format) -> gpt_tiny.ckpt + metrics.jsonl."""
    exports = sorted((run / "weights").glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not exports:
        raise SystemExit(f"{run}/weights: no export")
    TINY_GPT_DIR.mkdir(parents=True, exist_ok=True)
    shutil.copy(exports[-1], TINY_GPT_PATH)
    shutil.copy(run / "metrics.jsonl", TINY_GPT_DIR / "metrics.jsonl")
    print(exports[-1], "->", TINY_GPT_PATH, TINY_GPT_PATH.stat().st_size, "bytes")


def curves() -> None:
    """metrics.jsonl -> loss_curves.png (the model card's figure)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in open(TINY_GPT_DIR / "metrics.jsonl") if line.strip()]
    rows = [r for r in rows if r.get("total_loss") is not None]
    steps = [r["step"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    axes[0].plot(steps, [r["total_loss"] for r in rows])
    axes[0].set(yscale="log", title="cross-entropy (summed over targets, per batch)", xlabel="step")
    if "top_3_acc" in rows[0]:
        axes[1].plot(steps, [r["top_3_acc"] for r in rows])
        axes[1].set(title="top-3 accuracy (teacher forcing)", xlabel="step", ylim=(0, 1))
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(TINY_GPT_DIR / "loss_curves.png", dpi=72)
    print(TINY_GPT_DIR / "loss_curves.png")


@torch.no_grad()
def evaluate(gpt: Path | None, prepared_all: Path, out_dir: Path, wav_dir: Path) -> None:
    start = time.time()
    wav_dir.mkdir(parents=True, exist_ok=True)
    engine = load_tts(gpt=gpt)
    real_tokens = read_semantic(prepared_all)

    def feats(y32k: np.ndarray) -> np.ndarray:
        return training_features(engine.encoder, np.asarray(y32k, np.float32))[0].T.numpy()  # [T, D]

    def decode_tokens(tokens: list[int], text: str, spec: torch.Tensor) -> np.ndarray:
        """SoVITS alone on given tokens (the ceiling): the piece's phones, the reference's voice, seed 0."""
        ids, _, _ = text_features(text, "en", "v2")
        torch.manual_seed(0)
        return engine.sovits.decode(torch.tensor(tokens).view(1, 1, -1), torch.tensor([ids]), spec,
                                    noise_scale=0.5)[0, 0].numpy()

    rows = {"train": [], "heldout": []}
    for voice in VOICES:
        ref = book.utterance(f"{voice}_{REF_ID:03d}")
        ref_spec = reference_spectrogram(ref.path, engine.config)  # [1, 1025, T_r]: the voice, once per voice
        real_feats = {}
        for split, ids in (("train", TRAIN_IDS), ("heldout", HELDOUT_IDS)):
            for i in ids:
                real_feats[(split, i)] = feats(book.utterance(f"{voice}_{i:03d}").load())
        for split, ids in (("train", TRAIN_IDS), ("heldout", HELDOUT_IDS)):
            for i in ids:
                name = f"{voice}_{i:03d}"
                u = book.utterance(name)
                result = engine.synthesize(ref.path, ref.text, "en", u.text, "en", seed=0)
                tokens = torch.cat(result.tokens).tolist()
                ceiling = decode_tokens(real_tokens[name], u.text, ref_spec)
                row = {"name": name, "tokens": len(tokens), "real_tokens": len(real_tokens[name]),
                       "ter": token_error_rate(tokens, real_tokens[name])}
                for key, wav in (("tts", result.wav[: 1280 * len(tokens)]), ("ceiling", ceiling)):
                    f = feats(wav)
                    d_same = dtw_distance(f, real_feats[(split, i)])
                    d_other = [dtw_distance(f, real_feats[(split, j)]) for j in ids if j != i]
                    row[f"content_{key}"] = float(np.mean([d_same < d for d in d_other]))
                if split == "heldout":  # which training sentence of this voice do its tokens recite?
                    by_ter = {j: token_error_rate(tokens, real_tokens[f"{voice}_{j:03d}"])
                              for j in range(1, 31) if j not in HELDOUT_IDS}
                    nearest = min(by_ter, key=by_ter.get)
                    row["nearest_training_sentence"] = f"{voice}_{nearest:03d}"
                    row["nearest_training_ter"] = by_ter[nearest]
                rows[split].append(row)
                if voice == "en_slt" and i in (TRAIN_IDS[1], HELDOUT_IDS[0]):
                    audio.save_audio(wav_dir / f"{name}_tts.wav", result.wav, result.sampling_rate)
                print(json.dumps(row), flush=True)

    def mean(split, key):
        return float(np.mean([r[key] for r in rows[split]]))

    summary = {split: {"n": len(rows[split]), "ter": mean(split, "ter"), "content_tts": mean(split, "content_tts"),
                       "content_ceiling": mean(split, "content_ceiling"),
                       "exact_tokens": int(sum(r["ter"] == 0 for r in rows[split]))} for split in rows}
    summary["heldout"]["recited_within_10pct_ter"] = int(sum(r["nearest_training_ter"] < 0.1 for r in rows["heldout"]))
    summary["heldout"]["nearest_training_ter"] = mean("heldout", "nearest_training_ter")
    chance = [token_error_rate(real_tokens[f"{v}_{a:03d}"], real_tokens[f"{v}_{b:03d}"])
              for v in VOICES for a in HELDOUT_IDS for b in HELDOUT_IDS if a != b]
    summary["ter_between_different_real_sentences"] = float(np.mean(chance))
    summary["seconds"] = time.time() - start
    print(json.dumps(summary, indent=1))
    (out_dir / "evaluation.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    pa = sub.add_parser("pairs")
    pa.add_argument("--prepared", type=Path, required=True)
    pa.add_argument("--sovits", type=Path, required=True, help="the SoVITS whose codebook the tokens use")
    pa.add_argument("--out", type=Path, required=True)
    sub.add_parser("export").add_argument("run", type=Path)
    sub.add_parser("curves")
    ev = sub.add_parser("evaluate")
    ev.add_argument("--gpt", type=Path, default=None, help="default: the shipped gpt_tiny.ckpt")
    ev.add_argument("--prepared-all", type=Path, required=True,
                    help="the whole data/sample/sample.list prepared with --sovits (the recordings' tokens)")
    ev.add_argument("--out", type=Path, default=TINY_GPT_DIR)
    ev.add_argument("--wavs", type=Path, default=Path("runs/gpt_tiny_eval"))
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.command == "pairs":
        pairs(args.prepared, args.sovits, args.out)
    elif args.command == "export":
        export(args.run)
    elif args.command == "curves":
        curves()
    else:
        evaluate(args.gpt, args.prepared_all, args.out, args.wavs)
