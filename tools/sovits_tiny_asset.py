"""Make and measure the shipped tiny SoVITS (`gsv_edu/assets/sovits_tiny/`), as its MODEL_CARD.md says.

    .venv/bin/python tools/sovits_tiny_asset.py export RUN      # last G checkpoint of RUN -> sovits_tiny.pth + metrics.jsonl
    .venv/bin/python tools/sovits_tiny_asset.py curves          # metrics.jsonl -> loss_curves.png
    .venv/bin/python tools/sovits_tiny_asset.py evaluate [--wavs DIR]   # -> evaluation.json, spectrograms.png
    .venv/bin/python tools/sovits_tiny_asset.py ablate RUN [RUN ...]    # held-out resynthesis scores of each run

`evaluate` measures, with no human listening: resynthesis through the posterior (enc_q -> dec) and
synthesis from tokens (`decode`: prior -> flow^-1 -> dec) of held-out and training utterances
against the real recordings (log-mel L1, mel-cepstral distance, energy-envelope correlation,
pYIN pitch agreement), and voice conversion between the sample voices (long-term-spectrum
similarity; speaker-embedding similarity if the optional `resemblyzer` package is importable —
it is not a dependency of gsv_edu). Not part of the package or the tests.
"""
import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import librosa
import numpy as np
import scipy.fft
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gsv_edu import audio, book, load_sovits  # noqa: E402
from gsv_edu.config import Config  # noqa: E402
from gsv_edu.infer import load_encoder, synthesize  # noqa: E402
from gsv_edu.sovits.models import SynthesizerTrn  # noqa: E402
from gsv_edu.pretrained import TINY_SOVITS_DIR, TINY_SOVITS_PATH  # noqa: E402

HELDOUT = [f"{s}_{i:03d}" for s in ("en_awb", "en_rms", "en_slt") for i in (5, 10, 15, 20, 25, 30)]
TRAIN = [f"{s}_{i:03d}" for s in ("en_awb", "en_rms", "en_slt", "en_asterisk", "zh_espeak") for i in (1, 2, 3)]


def mel(y):
    return audio.mel_spectrogram(torch.as_tensor(y, dtype=torch.float32)[None])[0].numpy()  # [128, T]


def cepstra(y, n=24):
    return (scipy.fft.dct(mel(y), type=2, axis=0) / (2 * 128))[1:n + 1].T  # [T, n]


def mcd(a, b, align=False):
    ca, cb = cepstra(a), cepstra(b)
    if align:
        _, path = librosa.sequence.dtw(ca.T, cb.T, metric="euclidean")
        ca, cb = ca[path[::-1, 0]], cb[path[::-1, 1]]
    else:
        n = min(len(ca), len(cb))
        ca, cb = ca[:n], cb[:n]
    return float(np.mean(10 / np.log(10) * np.sqrt(2 * ((ca - cb) ** 2).sum(1))))


def f0(y):
    y16 = audio.resample(np.asarray(y, np.float32), 32000, 16000)
    f, voiced, _ = librosa.pyin(y16, fmin=60, fmax=400, sr=16000, frame_length=1024, hop_length=320)
    return f, voiced


def pitch_scores(real, fake):
    fr, vr = f0(real)
    ff, vf = f0(fake)
    n = min(len(fr), len(ff))
    fr, vr, ff, vf = fr[:n], vr[:n], ff[:n], vf[:n]
    both = vr & vf
    cents = 1200 * np.abs(np.log2(ff[both] / fr[both])) if both.any() else np.array([np.nan])
    return {"vuv_agreement": float((vr == vf).mean()), "voiced_real": float(vr.mean()), "voiced_fake": float(vf.mean()),
            "f0_median_abs_cents": float(np.median(cents)), "f0_within_50_cents": float((cents < 50).mean()),
            "logf0_corr": float(np.corrcoef(np.log(fr[both]), np.log(ff[both]))[0, 1]) if both.sum() > 2 else float("nan")}


def energy_corr(a, b):
    ea, eb = np.log(np.exp(mel(a)).sum(0)), np.log(np.exp(mel(b)).sum(0))
    n = min(len(ea), len(eb))
    return float(np.corrcoef(ea[:n], eb[:n])[0, 1])


def mel_l1(a, b):
    ma, mb = mel(a), mel(b)
    n = min(ma.shape[1], mb.shape[1])
    return float(np.abs(ma[:, :n] - mb[:, :n]).mean())


def ltas(y):
    m = mel(y)
    loud = m.max(0)
    v = m[:, loud > loud.max() - np.log(100)].mean(1)
    return v - v.mean()


def cosine(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


@torch.no_grad()
def resynthesise(model, y, seed=0):
    spec = audio.spectrogram(torch.from_numpy(y)[None])
    ge = model.reference_style(spec, torch.ones(1, 1, spec.size(2)))
    torch.manual_seed(seed)
    z, _, _, _ = model.enc_q(spec, torch.tensor([spec.size(2)]), g=ge)
    return model.dec(z, g=ge)[0, 0].numpy()


def mean_dict(ds):
    keys = ds[0].keys()
    return {k: float(np.nanmean([d[k] for d in ds])) for k in keys}


def scores(real, fake, pitch: bool = True) -> dict:
    """One output against its real recording: log-mel L1, MCD, energy-envelope correlation (+ pYIN pitch)."""
    row = {"mel_l1": mel_l1(real, fake), "mcd_db": mcd(real, fake), "energy_corr": energy_corr(real, fake)}
    if pitch:
        row.update(pitch_scores(real, fake))
    return row


def heldout_resynthesis(model) -> dict:
    """Mean scores of resynthesis (posterior -> dec) over the 18 held-out utterances: the voicing target's numbers."""
    rows = []
    for name in HELDOUT:
        y = book.utterance(name).load()
        y = y[: len(y) // 640 * 640]
        fake = resynthesise(model, y)
        rows.append(scores(y, fake))
    return mean_dict(rows)


@torch.no_grad()
def codes_used(model, prepared: Path) -> int:
    """Distinct codes the model's quantizer gives the content features of a prepared folder."""
    codes = set()
    for path in sorted((prepared / "4-cnhubert").glob("*.pt")):
        ssl = torch.load(path, map_location="cpu", weights_only=True).float()  # [1, D, T]
        codes.update(model.extract_latent(ssl).flatten().tolist())
    return len(codes)


def ablate(runs: list[Path], prepared: Path) -> None:
    """One line of the model card's ablation table per run: its newest G checkpoint, held-out resynthesis."""
    from gsv_edu.weights import checkpoint_dir, latest_checkpoint, load_pair

    for run in runs:
        start = time.time()
        ck = checkpoint_dir(run, "v2")
        step = latest_checkpoint(ck)
        model = load_sovits(load_pair(ck, step).g_path, inference=False).model.eval()
        scores = heldout_resynthesis(model)
        scores["codes_used"] = codes_used(model, prepared)
        scores["step"] = step
        print(json.dumps({"run": str(run), **{k: round(v, 4) if isinstance(v, float) else v for k, v in scores.items()},
                          "seconds": round(time.time() - start, 1)}), flush=True)


def export(run: Path) -> None:
    """RUN's newest G checkpoint -> sovits_tiny.pth (pretrained-s2G format, enc_q kept) + its metrics.jsonl."""
    import gsv_edu
    from gsv_edu.weights import checkpoint_dir, latest_checkpoint, load_pair

    ck = checkpoint_dir(run, "v2")
    pair = load_pair(ck, latest_checkpoint(ck))  # safe unpickling, every key
    step, epoch = int(pair.g.get("step", pair.step)), int(pair.g.get("iteration", 0))  # official: iteration = epoch
    loaded = gsv_edu.load_sovits(pair.g_path, inference=False)
    print(pair.g_path, "step", step, "epoch", epoch)
    TINY_SOVITS_DIR.mkdir(parents=True, exist_ok=True)
    gsv_edu.save_sovits(loaded.model, TINY_SOVITS_PATH, loaded.hps, epoch, step, enc_q=True)
    shutil.copy(run / "metrics.jsonl", TINY_SOVITS_DIR / "metrics.jsonl")
    # the trainer's own export of the same step must hold the same tensors (fp16), minus enc_q
    exports = sorted((run / "weights").glob(f"*_s{step}.pth"))
    if exports:
        e, f = gsv_edu.read_sovits_file(exports[-1]), gsv_edu.read_sovits_file(TINY_SOVITS_PATH)
        same = all(torch.equal(e.weight[k], f.weight[k]) for k in e.weight)
        print("trainer export", exports[-1].name, "identical tensors:", same, "; info", f.info)
        assert same
    print(TINY_SOVITS_PATH, TINY_SOVITS_PATH.stat().st_size, "bytes")


def curves() -> None:
    """metrics.jsonl -> loss_curves.png (the model card's figure)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in open(TINY_SOVITS_DIR / "metrics.jsonl") if line.strip()]
    steps = [r["step"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for tag, label in [("loss/g/mel", "mel (45 x L1)"), ("loss/g/kl", "KL")]:
        axes[0].plot(steps, [r[tag] for r in rows], label=label)
    axes[0].set(yscale="log", title="reconstruction and KL", xlabel="step")
    for tag, label in [("loss/d/total", "D total (6 discriminators)"), ("loss/g/gen", "G adversarial"),
                       ("loss/g/fm", "feature matching")]:
        axes[1].plot(steps, [r[tag] for r in rows], label=label)
    axes[1].set(title="the GAN game", xlabel="step")
    for tag in ("grad_norm_g", "grad_norm_d"):
        axes[2].plot(steps, [r[tag] for r in rows], label=tag)
    axes[2].set(yscale="log", title="gradient norms (not clipped)", xlabel="step")
    for ax in axes:
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.suptitle("tiny SoVITS on the sample corpus (means over 10 steps, from metrics.jsonl)", fontsize=10)
    fig.tight_layout()
    fig.savefig(TINY_SOVITS_DIR / "loss_curves.png", dpi=72)
    print(TINY_SOVITS_DIR / "loss_curves.png")


def evaluate(model_path: Path, out_dir: Path, wav_dir: Path) -> None:
    """The model card's measurements -> out_dir/evaluation.json, out_dir/spectrograms.png, wav_dir/*.wav."""
    wav_dir.mkdir(parents=True, exist_ok=True)
    start = time.time()
    loaded = load_sovits(model_path, inference=False)
    trained = loaded.model.eval()
    infer_model = load_sovits(model_path).model
    cfg = Config.from_hparams(loaded.hps)  # the same architecture, random weights
    torch.manual_seed(0)
    untrained = SynthesizerTrn(cfg.spec_channels, cfg.segment_frames, **cfg.model_kwargs()).eval()
    encoder = load_encoder(None, infer_model)

    results = {}
    for split, names in (("heldout", HELDOUT), ("train", TRAIN)):
        rows = {"resynth_trained": [], "resynth_untrained": [], "decode_same_speaker": []}
        for name in names:
            u = book.utterance(name)
            y = u.load()
            y = y[: len(y) // 640 * 640]
            for key, model in (("resynth_trained", trained), ("resynth_untrained", untrained)):
                fake = resynthesise(model, y)
                rows[key].append(scores(y, fake, pitch=key == "resynth_trained" or split == "heldout"))
            # synthesis from tokens: the source's own tokens and phones, reference = another recording of the speaker
            ref = book.utterance(f"{u.speaker}_{(2 if name.endswith('001') else 1):03d}").path
            fake = synthesize(infer_model, ref=ref, source=u.path, text=u.text, lang=u.language, encoder=encoder, seed=0)
            rows["decode_same_speaker"].append(scores(y, fake))
        results[split] = {k: mean_dict(v) for k, v in rows.items() if v}
        print(split, json.dumps(results[split], indent=1), flush=True)

    # references: real vs real
    real_pairs = []
    for i in (5, 10, 15, 20, 25, 30):
        ys = {s: book.utterance(f"{s}_{i:03d}").load() for s in ("en_awb", "en_rms", "en_slt")}
        real_pairs.append(mcd(ys["en_awb"], ys["en_rms"], align=True))
        real_pairs.append(mcd(ys["en_awb"], ys["en_slt"], align=True))
        real_pairs.append(mcd(ys["en_rms"], ys["en_slt"], align=True))
    results["real_vs_real_other_voice_same_prompt_mcd_db_dtw"] = float(np.mean(real_pairs))

    # voice conversion: source en_X held-out prompt, reference en_Y_001
    speakers = ["en_awb", "en_rms", "en_slt", "en_asterisk", "zh_espeak"]
    centroids = {s: np.mean([ltas(book.utterance(f"{s}_{i:03d}").load()) for i in (2, 3, 4, 6, 7)], 0) for s in speakers}
    try:
        from resemblyzer import VoiceEncoder, preprocess_wav
        venc = VoiceEncoder("cpu", verbose=False)

        def spk_embed(y):
            return venc.embed_utterance(preprocess_wav(audio.resample(np.asarray(y, np.float32), 32000, 16000), source_sr=16000))
        rz_centroids = {s: np.mean([spk_embed(book.utterance(f"{s}_{i:03d}").load()) for i in (2, 3, 4, 6, 7)], 0) for s in speakers}
    except ImportError:
        venc = None
    vc = {"ltas_to_target": [], "ltas_to_source": [], "rz_to_target": [], "rz_to_source": [], "target_is_nearest_ltas": [],
          "target_is_nearest_rz": [], "mcd_to_source": []}
    for src_spk in ("en_awb", "en_rms", "en_slt"):
        for tgt_spk in ("en_awb", "en_rms", "en_slt", "en_asterisk"):
            if tgt_spk == src_spk:
                continue
            for i in (10, 20):
                u = book.utterance(f"{src_spk}_{i:03d}")
                out = synthesize(infer_model, ref=book.utterance(f"{tgt_spk}_001").path, source=u.path, text=u.text,
                                 lang="en", encoder=encoder, seed=0)
                sims = {s: cosine(ltas(out), c) for s, c in centroids.items()}
                vc["ltas_to_target"].append(sims[tgt_spk])
                vc["ltas_to_source"].append(sims[src_spk])
                vc["target_is_nearest_ltas"].append(float(max(sims, key=sims.get) == tgt_spk))
                vc["mcd_to_source"].append(mcd(u.load(), out))
                if venc is not None:
                    e = spk_embed(out)
                    rs = {s: cosine(e, c) for s, c in rz_centroids.items()}
                    vc["rz_to_target"].append(rs[tgt_spk])
                    vc["rz_to_source"].append(rs[src_spk])
                    vc["target_is_nearest_rz"].append(float(max(rs, key=rs.get) == tgt_spk))
    results["voice_conversion"] = {k: float(np.mean(v)) for k, v in vc.items() if v}
    results["voice_conversion"]["n"] = len(vc["ltas_to_target"])
    # real recordings as a reference for the speaker scores
    real_same, real_other = [], []
    for s in ("en_awb", "en_rms", "en_slt"):
        y = book.utterance(f"{s}_010").load()
        if venc is not None:
            e = spk_embed(y)
            real_same.append(cosine(e, rz_centroids[s]))
            real_other.append(np.mean([cosine(e, rz_centroids[o]) for o in ("en_awb", "en_rms", "en_slt") if o != s]))
    if real_same:
        results["resemblyzer_real_heldout_to_own_speaker"] = float(np.mean(real_same))
        results["resemblyzer_real_heldout_to_other_en_speakers"] = float(np.mean(real_other))
    print(json.dumps({k: v for k, v in results.items() if k not in ("heldout", "train")}, indent=1))
    results["seconds"] = time.time() - start
    (out_dir / "evaluation.json").write_text(json.dumps(results, indent=1) + "\n")

    # a picture: real vs resynthesis vs decode, one held-out utterance
    import matplotlib  # noqa: E402
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: E402

    u = book.utterance("en_slt_005")
    y = u.load()
    y = y[: len(y) // 640 * 640]
    outs = {"real en_slt_005 (held out)": y, "resynthesis (posterior → dec)": resynthesise(trained, y),
            "decode (tokens + phones + ref en_slt_001)": synthesize(infer_model, ref=book.utterance("en_slt_001").path,
                                                                     source=u.path, text=u.text, lang="en", encoder=encoder, seed=0),
            "untrained model (posterior → dec)": resynthesise(untrained, y)}
    fig, axes = plt.subplots(2, 2, figsize=(11, 5), sharey=True)
    for ax, (title, w) in zip(axes.flat, outs.items()):
        s = np.abs(librosa.stft(w, n_fft=1024, hop_length=256))
        ax.imshow(20 * np.log10(np.maximum(s[:257], 1e-5)), origin="lower", aspect="auto", vmin=-100, vmax=20, cmap="magma",
                  extent=(0, len(w) / 32000, 0, 8000))
        ax.set(title=title, xlabel="time (s)", ylabel="Hz (0-8 kHz)")
    fig.tight_layout()
    fig.savefig(out_dir / "spectrograms.png", dpi=72)
    for title, w in outs.items():
        audio.save_audio(wav_dir / (title.split(" ")[0] + ".wav"), w, 32000)
    print("done in", time.time() - start)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("export").add_argument("run", type=Path)
    sub.add_parser("curves")
    ev = sub.add_parser("evaluate")
    ev.add_argument("--model", type=Path, default=TINY_SOVITS_PATH)
    ev.add_argument("--out", type=Path, default=TINY_SOVITS_DIR)
    ev.add_argument("--wavs", type=Path, default=Path("runs/sovits_tiny_eval"), help="where the example outputs go")
    ab = sub.add_parser("ablate")
    ab.add_argument("runs", type=Path, nargs="+")
    ab.add_argument("--prepared", type=Path, default=Path("runs/tiny_prepared"), help="for counting the codes used")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.command == "export":
        export(args.run)
    elif args.command == "ablate":
        ablate(args.runs, args.prepared)
    elif args.command == "curves":
        curves()
    else:
        evaluate(args.model, args.out, args.wavs)
