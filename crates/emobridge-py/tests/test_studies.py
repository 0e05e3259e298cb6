import json

import numpy as np
import pytest

import emobridge
from conftest import MERT_LIKE


def test_synth_writes_a_manifest(corpus):
    lines = corpus.read_text().splitlines()
    assert lines[0].startswith("id,path,domain,corpus,speaker,emotion")
    assert len(lines) > 40


def test_probe_on_descriptors(corpus, tmp_path):
    folder, run = emobridge.run_probe(corpus, tmp_path / "probe", features="egemaps",
                                      seeds=1, folds=2)
    assert folder == tmp_path / "probe" and (folder / "run.json").is_file()
    assert run["config"]["probe"]["seeds"] == 1 and run["config"]["probe"]["folds"] == 2
    scores = json.loads(json.dumps(run))
    assert scores["study"] == "probe"


def test_probe_and_fad_study_on_cached_embeddings(corpus, cache, tmp_path):
    root, tag = cache
    folder, run = emobridge.run_probe(corpus, tmp_path / "probe", cache=root, model=tag,
                                      seeds=1, folds=2)
    assert (folder / "run.json").is_file() and run["study"] == "probe"
    folder, run = emobridge.run_fad_study(corpus, root, tag, tmp_path / "fad", plots=False)
    assert (folder / "run.json").is_file() and run["study"] == "fad"
    assert run["config"]["plots"] is False


def test_study_errors(corpus, tmp_path):
    with pytest.raises(ValueError, match="unknown setting `sedes`"):
        emobridge.run_probe(corpus, tmp_path / "p", features="egemaps", sedes=1)
    with pytest.raises(ValueError, match="features `mfcc`"):
        emobridge.run_probe(corpus, tmp_path / "p", features="mfcc")
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        emobridge.run_probe(tmp_path / "nope.csv", tmp_path / "p", features="egemaps")
    with pytest.raises(FileNotFoundError):
        emobridge.run_fad_study(corpus, tmp_path / "no-cache", "x", tmp_path / "f")


def test_demo_quick(tmp_path):
    folder, summary = emobridge.run_demo(tmp_path / "demo", quick=True)
    assert folder == tmp_path / "demo" and (folder / "report.html").is_file()
    assert isinstance(summary, dict) and summary
