import numpy as np
import pytest

import emobridge
from conftest import tone, write_pcm16


def test_version():
    assert isinstance(emobridge.__version__, str) and emobridge.__version__.count(".") == 2


def test_load_audio_mono_and_channels(tmp_path):
    x = tone(0.5, 16000)
    stereo = np.stack([x, -x / 2])
    path = write_pcm16(tmp_path / "s.wav", stereo, 16000)
    mono, sr = emobridge.load_audio(path)
    assert sr == 16000 and mono.dtype == np.float32 and mono.shape == (8000,)
    np.testing.assert_allclose(mono, (x - x / 2) / 2, atol=2 / 32768)
    both, _ = emobridge.load_audio(str(path), mono=False)
    assert both.shape == (2, 8000) and both.dtype == np.float32
    np.testing.assert_allclose(both[0], x, atol=1 / 32768)


def test_load_audio_resamples(tmp_path):
    path = write_pcm16(tmp_path / "a.wav", tone(1.0, 16000), 16000)
    y, sr = emobridge.load_audio(path, sr=8000)
    assert sr == 8000 and abs(len(y) - 8000) <= 1


def test_write_wav_round_trip(tmp_path):
    x = tone(0.25, 22050)
    emobridge.write_wav(tmp_path / "w.wav", x, 22050, format="float32")
    y, sr = emobridge.load_audio(tmp_path / "w.wav")
    assert sr == 22050
    np.testing.assert_array_equal(x, y)
    with pytest.raises(ValueError, match="format `mp3`"):
        emobridge.write_wav(tmp_path / "w.wav", x, 22050, format="mp3")


def test_missing_file_is_file_not_found(tmp_path):
    missing = tmp_path / "nope.wav"
    with pytest.raises(FileNotFoundError, match="nope.wav: file not found"):
        emobridge.load_audio(missing)


def test_corrupt_audio_is_value_error(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(64)))
    with pytest.raises(ValueError, match="bad.wav"):
        emobridge.load_audio(bad)
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(ValueError, match="junk.mp3"):
        emobridge.load_audio(junk)


def test_directory_is_refused(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory"):
        emobridge.load_audio(tmp_path)


def test_bad_target_rate(tmp_path):
    path = write_pcm16(tmp_path / "a.wav", tone(0.2, 16000), 16000)
    with pytest.raises(ValueError, match="target rate 3 Hz"):
        emobridge.load_audio(path, sr=3)
