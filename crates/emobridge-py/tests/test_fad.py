import numpy as np
import pytest

import emobridge


def reference_fad(a, b):
    """Fréchet distance with numpy only: |μa−μb|² + tr Σa + tr Σb − 2 tr (Σa^½ Σb Σa^½)^½."""
    ma, mb = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    w, v = np.linalg.eigh(ca)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root @ cb @ root)
    return float(((ma - mb) ** 2).sum() + np.trace(ca) + np.trace(cb)
                 - 2 * np.sqrt(np.clip(inner, 0, None)).sum())


@pytest.fixture
def sets():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((600, 8))
    b = rng.standard_normal((700, 8)) * 1.3 + 0.5
    return a, b


def test_fad_of_arrays_matches_numpy(sets):
    a, b = sets
    d = emobridge.fad(a, b)
    assert isinstance(d, float)
    assert d == pytest.approx(reference_fad(a, b), rel=1e-9)
    assert emobridge.fad(a, a) == pytest.approx(0.0, abs=1e-9)
    # float32 input is converted
    assert emobridge.fad(a.astype(np.float32), b.astype(np.float32)) == pytest.approx(d, rel=1e-5)


def test_fad_inf_and_bootstrap(sets):
    a, b = sets
    r = emobridge.fad(a, b, inf=True, bootstrap=50)
    assert r["fad"] == pytest.approx(emobridge.fad(a, b))
    assert np.isfinite(r["fad_inf"]["value"])
    lo, hi = r["bootstrap"]["lower"], r["bootstrap"]["upper"]
    assert lo <= r["fad"] <= hi and r["bootstrap"]["replicates"] == 50
    assert emobridge.fad(a, b, bootstrap=50) == emobridge.fad(a, b, bootstrap=50)


def test_fad_of_npy_paths(sets, tmp_path):
    a, b = sets
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    assert emobridge.fad(tmp_path / "a.npy", str(tmp_path / "b.npy")) == pytest.approx(
        emobridge.fad(a, b), rel=1e-12)


def test_fad_errors(sets, tmp_path):
    a, b = sets
    with pytest.raises(ValueError, match="8-dimensional embeddings against 5-dimensional"):
        emobridge.fad(a, b[:, :5])
    bad = a.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        emobridge.fad(bad, b)
    with pytest.raises(ValueError, match="at least 2 samples"):
        emobridge.fad(a[:1], b)
    with pytest.raises(ValueError, match="expected a 2-D array"):
        emobridge.fad(a[0], b)
    with pytest.raises(ValueError, match="both as numpy arrays or both as paths"):
        emobridge.fad(a, tmp_path / "b.npy")
    with pytest.raises(FileNotFoundError, match="missing.npy"):
        emobridge.fad(tmp_path / "missing.npy", tmp_path / "missing.npy")
