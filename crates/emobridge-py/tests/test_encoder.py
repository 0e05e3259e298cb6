import numpy as np
import pytest

import emobridge
from conftest import MERT_LIKE, read_safetensors


@pytest.fixture(scope="module")
def encoder():
    return emobridge.Encoder(str(MERT_LIKE))


def test_embed_matches_transformers(encoder):
    expected = read_safetensors(MERT_LIKE / "expected.safetensors")
    assert encoder.sample_rate == 24000 and encoder.num_states == 3
    assert encoder.frame_rate_hz == 75.0
    states = encoder.embed(expected["input"], 24000)
    assert states.dtype == np.float32 and states.shape == (3, 74, 32)
    np.testing.assert_allclose(states, expected["hidden_states"], atol=1e-4)


def test_embed_resamples_and_batches(encoder):
    rng = np.random.default_rng(0)
    clips = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (16000, 8000, 16000)]
    one = [encoder.embed(c, 16000) for c in clips]
    assert one[0].shape[0] == 3 and one[0].shape[2] == 32
    batch = encoder.embed_batch(clips, 16000)
    assert [b.shape for b in batch] == [o.shape for o in one]
    for b, o in zip(batch, one):
        np.testing.assert_allclose(b, o, atol=1e-4)


def test_encoder_errors(encoder, tmp_path):
    with pytest.raises(FileNotFoundError):
        emobridge.Encoder(str(tmp_path / "no-model"))
    with pytest.raises(ValueError, match="precision `f8`"):
        emobridge.Encoder(str(MERT_LIKE), precision="f8")
    x = np.zeros(24000, dtype=np.float32)
    x[5] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        encoder.embed(x, 24000)
    with pytest.raises(ValueError, match="shorter than the encoder's receptive field"):
        encoder.embed(np.zeros(10, dtype=np.float32), 24000)
