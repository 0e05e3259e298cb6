import numpy as np
import pytest

import emobridge
from conftest import EGEMAPS_CLIPS, tone, write_pcm16

CLIP = EGEMAPS_CLIPS / "speech_arctic_a0007.wav"


def test_egemaps_functionals_of_a_file(layout):
    values, names = emobridge.features(CLIP, as_frame=False)
    assert values.dtype == np.float32 and values.shape == (1, 88)
    assert names == layout["tables"]["eGeMAPSv02/Functionals"]["process_files"]["columns"]
    assert np.isfinite(values).all()


def test_signal_and_file_agree(tmp_path):
    x = tone(1.0, 16000)
    path = write_pcm16(tmp_path / "t.wav", x, 16000)
    from_file, _ = emobridge.features(path, level="lld", as_frame=False)
    # the file is read as SMILExtract reads it: 16-bit PCM / 32767 (in f32 there, f64 here:
    # LPC formants move a little with such last-bit changes)
    pcm = np.round(np.clip(x, -1, 1) * 32767) / 32767
    from_signal, _ = emobridge.features(pcm.astype(np.float32), sr=16000, level="lld",
                                        as_frame=False)
    np.testing.assert_allclose(from_file, from_signal, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("set_, level, columns", [
    ("egemaps", "lld", 25),
    ("compare", "lld", 130),
    ("egemaps", "windows", 50),
    ("compare", "windows", 260),
])
def test_levels_and_shapes(set_, level, columns):
    x = tone(2.0, 16000)
    values, names = emobridge.features(x, sr=16000, set=set_, level=level, as_frame=False)
    assert values.dtype == np.float32 and values.shape[1] == columns == len(names)
    rows = {"lld": (32000 - 960) // 160 + 2, "windows": 4}[level]
    assert values.shape[0] == rows


def test_dataframe_when_pandas_is_present():
    pd = pytest.importorskip("pandas")
    df = emobridge.features(tone(1.0, 16000), sr=16000, level="lld")
    assert isinstance(df, pd.DataFrame) and df.index.name == "frameTime"
    assert df.shape == (96, 25) and (df.dtypes == np.float32).all()
    np.testing.assert_allclose(df.index[:3], [0.0, 0.01, 0.02])
    func = emobridge.features(CLIP)
    assert func.index.name == "file" and func.index[0] == str(CLIP) and func.shape == (1, 88)


def test_nan_signal_is_value_error():
    x = tone(1.0, 16000)
    x[1234] = np.nan
    with pytest.raises(ValueError, match="non-finite sample at index 1234"):
        emobridge.features(x, sr=16000)


def test_rules_are_value_errors(tmp_path):
    x = tone(1.0, 16000)
    values, names = emobridge.features(x, sr=16000, set="compare", as_frame=False)
    assert values.shape == (1, 6373) and values.dtype == np.float32
    assert names[0] == "audspec_lengthL1norm_sma_range" and len(names) == 6373
    with pytest.raises(ValueError, match="set `gemaps`"):
        emobridge.features(x, sr=16000, set="gemaps")
    with pytest.raises(ValueError, match="sr: the sampling rate is required"):
        emobridge.features(x)
    with pytest.raises(ValueError, match="too short to analyse"):
        emobridge.features(x[:100], sr=16000)
    with pytest.raises(FileNotFoundError, match="file not found"):
        emobridge.features(tmp_path / "missing.wav")
