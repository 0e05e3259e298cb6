"""Shared fixtures: paths of committed clips and models, WAV writing with the stdlib, and one
synthetic corpus per session."""

import json
import pathlib
import struct
import wave

import numpy as np
import pytest

import emobridge

CRATE = pathlib.Path(__file__).resolve().parent.parent
REPO = CRATE.parent.parent
EGEMAPS_CLIPS = REPO / "crates" / "emobridge-acoustic" / "tests" / "fixtures" / "egemaps"
MERT_LIKE = REPO / "crates" / "emobridge-ssl" / "tests" / "fixtures" / "mert_like_24k"
LAYOUT = CRATE / "tests" / "fixtures" / "opensmile_layout.json"


def write_pcm16(path, signal, sr):
    """A mono or [channels, samples] float signal as 16-bit PCM WAV (stdlib `wave`)."""
    x = np.atleast_2d(np.asarray(signal, dtype=np.float64))
    pcm = np.round(np.clip(x, -1, 1) * 32767).astype("<i2").T.copy()
    with wave.open(str(path), "wb") as w:
        w.setnchannels(x.shape[0])
        w.setsampwidth(2)
        w.setframerate(sr)
        w.writeframes(pcm.tobytes())
    return path


def tone(seconds, sr, f0=220.0, seed=0):
    """A voiced-like test signal: a harmonic tone with vibrato plus a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f = f0 * (1 + 0.03 * np.sin(2 * np.pi * 4 * t))
    phase = 2 * np.pi * np.cumsum(f) / sr
    x = sum(0.3 / k * np.sin(k * phase) for k in range(1, 6))
    x = x * (0.6 + 0.4 * np.sin(2 * np.pi * 1.5 * t) ** 2)
    return (x + 0.01 * rng.standard_normal(len(t))).astype(np.float32)


def read_safetensors(path):
    """The F32 tensors of a safetensors file (header JSON + little-endian data)."""
    raw = pathlib.Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] != "F32":
            continue
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype="<f4").reshape(info["shape"])
    return out


@pytest.fixture(scope="session")
def layout():
    return json.loads(LAYOUT.read_text())


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """The quick synthetic corpus: its manifest path."""
    out = tmp_path_factory.mktemp("corpus")
    return emobridge.synth(out, seed=7, quick=True)


@pytest.fixture(scope="session")
def cache(corpus, tmp_path_factory):
    """Embeddings of the corpus by the tiny MERT-like encoder: (cache root, tag)."""
    root = tmp_path_factory.mktemp("cache")
    report = emobridge.extract(corpus, str(MERT_LIKE), root, tag="mert_like")
    assert report["failures"] == 0 and report["extracted"] == report["in_shard"] > 0
    return root, "mert_like"
