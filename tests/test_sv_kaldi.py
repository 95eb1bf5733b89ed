"""Kaldi fbank (gsv_edu.sv.kaldi) against the official GPT_SoVITS/eres2net/kaldi.py · fbank (tests/fixtures/v2pro)."""
import math
import pathlib

import pytest
import torch

from conftest import assert_fixture_close
from gsv_edu.sv.kaldi import KaldiFbankError, feature_window, frame_signal, kaldi_fbank, mel_banks, mel_scale

V2PRO = pathlib.Path(__file__).parent / "fixtures" / "v2pro"


@pytest.fixture(scope="module")
def fx():
    return torch.load(V2PRO / "kaldi_fbank.pt", map_location="cpu", weights_only=True)


@pytest.mark.parametrize("name", ["one_frame_400", "odd_401", "almost_two_frames_559", "two_frames_560",
                                  "odd_16037", "silence_inside_4801"])
def test_fbank_matches_official(fx, name):
    wave = fx["waves"][name]
    expected = fx["fbank"][name]
    ours = kaldi_fbank(wave[None], num_mel_bins=80, sample_frequency=16000, dither=0)
    assert ours.shape == expected.shape == (1 + (wave.numel() - 400) // 160, 80)
    assert_fixture_close(ours, expected, name)
    # a 1-D waveform is the same as [1, N]
    assert torch.equal(kaldi_fbank(wave), ours)


def test_silent_frames_sit_at_the_log_epsilon_floor(fx):
    feats = kaldi_fbank(fx["waves"]["silence_inside_4801"])
    floor = math.log(torch.finfo(torch.float32).eps)
    # samples 1600..3199 are zero: frames 10..17 (start 160 i, 400 long) lie entirely inside
    silent = [i for i in range(feats.shape[0]) if 1600 <= 160 * i and 160 * i + 400 <= 3200]
    assert silent == list(range(10, 18))
    assert torch.allclose(feats[silent], torch.full_like(feats[silent], floor))
    assert (feats[9] > floor + 1).all()


@pytest.mark.parametrize("name", ["snip_edges_false", "use_energy", "energy_after_window_htk",
                                  "hamming_subtract_mean", "magnitude_linear", "bins23_band_100_7600"])
def test_options_match_official(fx, name):
    case = fx["options"][name]
    kwargs = dict(case["kwargs"])
    ours = kaldi_fbank(fx["waves"]["silence_inside_4801"][None], **kwargs)
    assert ours.shape == case["fbank"].shape
    assert_fixture_close(ours, case["fbank"], name)


def test_mel_banks_and_window_match_official(fx):
    banks = mel_banks(80, 512, 16000.0, 20.0, 0.0)
    assert banks.shape == (80, 257)
    assert torch.equal(banks[:, 256], torch.zeros(80))           # Nyquist bin gets weight 0
    assert_fixture_close(banks[:, :256], fx["mel_banks"])
    assert_fixture_close(feature_window("povey", 400), fx["povey_window"])
    # each triangle peaks at its centre mel and is 0 at the neighbours' centres
    assert float(banks.max()) <= 1.0 and float(banks.min()) == 0.0
    assert mel_scale(700.0) == pytest.approx(1127.0 * math.log(2.0))


def test_mel_banks_cache_is_not_shared_mutably():
    first = mel_banks()
    first.zero_()
    assert float(mel_banks().sum()) > 0


def test_too_short_input_is_a_clear_error(fx):
    # the official code fails with a bare AssertionError; ours names the minimum
    assert set(fx["too_short_official_error"].values()) == {"AssertionError"}
    for n in (1, 200, 399):
        with pytest.raises(KaldiFbankError, match=r"has %d samples.*400 samples \(25 ms at 16000 Hz\)" % n):
            kaldi_fbank(torch.zeros(n))


@pytest.mark.parametrize("bad, match", [
    (torch.zeros(2, 800), "2 channels"),
    (torch.zeros(1, 1, 800), r"\[N\] or \[channels, N\]"),
    (torch.zeros(800, dtype=torch.int16), "floating-point"),
])
def test_bad_input_is_a_clear_error(bad, match):
    with pytest.raises(KaldiFbankError, match=match):
        kaldi_fbank(bad)


def test_channel_picks_a_row_and_bad_options_are_errors():
    wave = torch.linspace(-0.5, 0.5, 1200)
    stereo = torch.stack([torch.zeros(1200), wave])
    assert torch.equal(kaldi_fbank(stereo, channel=1), kaldi_fbank(wave))
    with pytest.raises(KaldiFbankError, match="channel 2"):
        kaldi_fbank(stereo, channel=2)
    with pytest.raises(KaldiFbankError, match="window_type"):
        kaldi_fbank(wave, window_type="kaiser")
    with pytest.raises(KaldiFbankError, match="num_mel_bins"):
        kaldi_fbank(wave, num_mel_bins=3)


def test_frames_and_dither():
    x = torch.arange(1000.0)
    frames = frame_signal(x, 400, 160)
    assert frames.shape == (4, 400) and frames[3, 0] == 480 and frames[3, -1] == 879
    # snip_edges=False mirrors, repeating the edge sample: frame 0 starts at x[119] .. x[0], x[0]
    mirrored = frame_signal(x, 400, 160, snip_edges=False)
    assert mirrored.shape == (6, 400)
    assert mirrored[0, :121].tolist() == list(range(119, -1, -1)) + [0.0]
    wave = torch.sin(torch.arange(4000.0) / 7)
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    a, b = kaldi_fbank(wave, dither=1.0, generator=g1), kaldi_fbank(wave, dither=1.0, generator=g2)
    assert torch.equal(a, b) and not torch.allclose(a, kaldi_fbank(wave))
