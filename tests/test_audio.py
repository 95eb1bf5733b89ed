import numpy as np
import pytest
import soundfile as sf
import torch

from gsv_edu import audio
from conftest import assert_fixture_close, load_fixture


@pytest.fixture(scope="module")
def mel_fixture():
    return load_fixture("mel_processing.pt")


def test_spectrogram_equals_official(mel_fixture):
    spec = audio.spectrogram(mel_fixture["wav"], 2048, 640, 2048)
    assert spec.shape == (2, 1025, 50)  # floor(32100 / 640)
    assert_fixture_close(spec, mel_fixture["spec"])


def test_mel_equals_official(mel_fixture):
    mel = audio.mel_spectrogram(mel_fixture["wav"], 2048, 128, 32000, 640, 2048, 0.0, None)
    assert_fixture_close(mel, mel_fixture["mel"])
    assert_fixture_close(audio.spec_to_mel(mel_fixture["spec"], 2048, 128, 32000, 0.0, None),
                         mel_fixture["mel_from_spec"])
    assert_fixture_close(audio.mel_basis(32000, 2048, 128, 0.0, None), mel_fixture["mel_basis"])


def test_spectrogram_frame_count_and_1d_input():
    y = torch.randn(640 * 7 + 100) * 0.1
    assert audio.spectrogram(y).shape == (1, 1025, 7)


def test_spectrogram_warns_outside_range():
    with pytest.warns(UserWarning, match="outside"):
        audio.spectrogram(torch.full((1, 3200), 1.5))


def test_loudness_normalize_is_the_official_mix():
    y = np.array([0.1, -0.4, 0.2], dtype=np.float32)
    expected = 0.95 * 0.5 * y / 0.4 + 0.5 * y
    np.testing.assert_allclose(audio.loudness_normalize(y), expected, rtol=1e-6)
    with pytest.raises(audio.AudioError):
        audio.loudness_normalize(np.zeros(4, np.float32))


@pytest.mark.parametrize("gain", [32768.0, 1145.14])
def test_loudness_mix_with_gain_is_bit_exact(gain):
    """The official name2go computes y/peak·(0.95·0.5·gain) + (0.5·gain)·y in float32 (gain 32768 for
    the int16 wav, 1145.14 for HuBERT); another order of the same operations differs by one rounding."""
    y = (np.random.default_rng(0).standard_normal(200_000) * 0.2).astype(np.float32)
    peak = np.abs(y).max()
    official = (y / peak * (0.95 * 0.5 * gain)) + ((1 - 0.5) * gain) * y  # float32, as upstream
    np.testing.assert_array_equal(audio.loudness_normalize(y, gain=gain), official)
    other_order = (0.95 * 0.5 * y / peak + 0.5 * y) * np.float32(gain)  # what gsv_edu computed before
    assert (other_order != official).any()  # the order matters


def test_load_audio_resamples_and_downmixes(tmp_path):
    t = np.arange(48000) / 48000
    stereo = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 440 * t)], 1)
    p = tmp_path / "tone.flac"
    sf.write(p, stereo, 48000)
    y = audio.load_audio(p, 32000)
    assert y.dtype == np.float32 and y.shape == (32000,)
    assert abs(np.abs(y[1000:-1000]).max() - 0.4) < 0.01  # mean of the two channels
    y16 = audio.load_audio(p, 16000)
    assert y16.shape == (16000,)


@pytest.mark.parametrize("kind", ["missing", "garbage", "empty", "silent"])
def test_load_audio_errors_name_the_file(tmp_path, kind):
    p = tmp_path / f"{kind}.wav"
    if kind == "garbage":
        p.write_bytes(b"this is not audio at all" * 10)
    elif kind == "empty":
        sf.write(p, np.zeros(0, np.float32), 32000)
    elif kind == "silent":
        sf.write(p, np.zeros(3200, np.float32), 32000)
    with pytest.raises(audio.AudioError, match=str(p).replace("\\", "\\\\")):
        audio.load_audio(p)


def test_save_audio_round_trip(tmp_path):
    y = (0.5 * np.sin(np.linspace(0, 100, 3200))).astype(np.float32)
    audio.save_audio(tmp_path / "x.wav", torch.from_numpy(y)[None])
    back = audio.load_audio(tmp_path / "x.wav")
    np.testing.assert_allclose(back, y, atol=1 / 32768 + 1e-6)


@pytest.mark.parametrize("orig_sr, target_sr", [(32000, 16000), (48000, 32000), (22050, 32000)])
def test_resample_is_bit_identical_to_librosa_soxr_hq(orig_sr, target_sr):
    import librosa

    y = (np.random.default_rng(0).standard_normal(orig_sr // 3) * 0.3).astype(np.float32)
    ours = audio.resample(y, orig_sr, target_sr)
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, librosa.resample(y, orig_sr=orig_sr, target_sr=target_sr))
