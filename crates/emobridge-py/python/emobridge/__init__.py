"""emobridge: emotion in speech and music, side by side, from Python.

The same engine as the ``emobridge`` command (Rust), numpy in and out:

* :func:`load_audio` decodes WAV/FLAC/MP3/OGG/AIFF, down-mixes and resamples;
* :func:`features` computes eGeMAPS v02 / ComParE-2016 descriptors (openSMILE's names);
* :mod:`emobridge.opensmile` is a drop-in for the ``opensmile`` package's ``Smile``;
* :class:`Encoder` runs wav2vec2-family / MERT checkpoints and returns every hidden state;
* :func:`fad` measures the Fréchet audio distance between two embedding sets;
* :func:`synth`, :func:`extract`, :func:`run_probe`, :func:`run_fad_study` and :func:`run_demo`
  run the studies, each returning its run folder and summary.

Long calls release the GIL. Errors are Python exceptions carrying the command line's one-line
message: ``FileNotFoundError`` for missing inputs, ``ValueError`` for inputs or settings that
break a stated rule (corrupt audio, NaN samples, mismatched dimensions, unknown settings),
``RuntimeError`` for anything else.
"""

import json
import os
import pathlib

import numpy as np

from . import _native
from ._native import Encoder

__version__ = _native.__version__

__all__ = [
    "__version__",
    "Encoder",
    "load_audio",
    "write_wav",
    "features",
    "fad",
    "synth",
    "extract",
    "run_probe",
    "run_fad_study",
    "run_demo",
]

_SETS = ("egemaps", "compare")
_LEVELS = ("functionals", "lld", "windows")


def load_audio(path, sr=None, mono=True):
    """Decodes an audio file into float32 samples in [-1, 1].

    Args:
        path: a WAV, FLAC, MP3, OGG/Vorbis or AIFF file.
        sr: resample to this rate in Hz (8000..48000); ``None`` keeps the file's rate.
        mono: average the channels into one (shape ``[samples]``); ``False`` keeps them
            (shape ``[channels, samples]``).

    Returns:
        ``(signal, sample_rate)``: a float32 ``numpy.ndarray`` and an ``int``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is not decodable audio (corrupt, empty, unsupported, NaN samples)
            or ``sr`` is out of range.
    """
    return _native.load_audio(os.fspath(path), sr, bool(mono))


def write_wav(path, signal, sr, format="pcm16"):
    """Writes a float32 signal (``[samples]`` or ``[channels, samples]``) to a WAV file.

    ``format`` is ``"pcm16"`` (scaled by 32767, what openSMILE reads back exactly), ``"pcm24"``
    or ``"float32"``. The file is written atomically.
    """
    signal = np.ascontiguousarray(signal, dtype=np.float32)
    _native.write_wav(os.fspath(path), signal, int(sr), format)


def _pandas():
    try:
        import pandas
    except ImportError:
        return None
    return pandas


def _window(window_s, hop_s):
    default_window, default_hop = _native.default_window()
    return (
        default_window if window_s is None else float(window_s),
        default_hop if hop_s is None else float(hop_s),
    )


def _as_mono_f32(signal, what="signal"):
    x = np.asarray(signal)
    if x.ndim != 1:
        raise ValueError(f"{what}: expected a 1-D mono signal, got shape {x.shape}")
    return np.ascontiguousarray(x, dtype=np.float32)


def features(signal_or_path, sr=None, set="egemaps", level="functionals", *, window_s=None,
             hop_s=None, as_frame=None):
    """eGeMAPS v02 or ComParE-2016 descriptors of one clip, with openSMILE's column names.

    Args:
        signal_or_path: a file path (decoded as SMILExtract reads it: mono, at its own rate,
            16-bit PCM / 32767), or a 1-D float signal with ``sr``.
        sr: sampling rate of a signal (required for arrays, ignored for paths).
        set: ``"egemaps"`` (25 LLDs, 88 functionals) or ``"compare"`` (65 LLDs + 65 deltas,
            6,373 functionals).
        level: ``"functionals"`` (one row), ``"lld"`` (one row every 10 ms),
            ``"lld_deltas"`` (ComParE only: the 65 deltas with openSMILE's two flush rows) or
            ``"windows"`` (mean and std of the LLDs over ``window_s`` windows every ``hop_s``;
            defaults 1 s and 0.5 s).
        as_frame: ``True`` returns a ``pandas.DataFrame``; ``False`` returns
            ``(values, names)``; ``None`` (default) returns a DataFrame when pandas is
            installed.

    Returns:
        ``(values, names)`` with ``values`` float32 ``[rows, len(names)]``, or a DataFrame with
        those columns, indexed by ``frameTime`` (seconds) for ``lld``/``windows`` and by
        ``file`` for functionals.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: corrupt audio, non-finite samples, a clip too short for functionals, an
            unknown set or level, or ComParE functionals.
    """
    if set not in _SETS:
        raise ValueError(f"set `{set}`: expected egemaps or compare")
    if level not in _LEVELS:
        raise ValueError(f"level `{level}`: expected functionals, lld or windows")
    window_s, hop_s = _window(window_s, hop_s)
    if isinstance(signal_or_path, (str, os.PathLike)):
        label = os.fspath(signal_or_path)
        values, names, times, _, _ = _native.describe_file_(label, set, level, window_s, hop_s)
    else:
        if sr is None:
            raise ValueError("sr: the sampling rate is required for a signal")
        label = "signal"
        x = _as_mono_f32(signal_or_path)
        values, names, times, _, _ = _native.describe_signal_(x, int(sr), set, level, window_s,
                                                           hop_s)
    pd = _pandas()
    if as_frame is False or (as_frame is None and pd is None):
        return values, names
    if pd is None:
        raise ImportError("as_frame=True needs pandas")
    if times is None:
        index = pd.Index([label], name="file")
    else:
        index = pd.Index(np.asarray(times, dtype=np.float64), name="frameTime")
    return pd.DataFrame(values, index=index, columns=names)


def fad(a, b, inf=False, bootstrap=0, *, seed=0, layer=None):
    """Fréchet audio distance between embedding set ``a`` (baseline) and ``b`` (evaluation).

    Args:
        a, b: numpy arrays ``[N, D]`` (rows are frames or clips), or paths as
            ``emobridge fad A B`` takes them (``.npy``, ``.safetensors``, folders of them,
            statistics ``mu.npy``/``cov.npy`` or ``.npz``). Give both as arrays or both as paths.
        inf: also FAD-∞ of ``b`` against ``a`` (fadtk's estimator, seeded by ``seed``).
        bootstrap: replicates of a bootstrap confidence interval (0 = none).
        layer: hidden-state index for ``[layers+1, frames, D]`` safetensors inputs.

    Returns:
        The distance as a ``float`` when neither ``inf`` nor ``bootstrap`` is asked for, else a
        dict with ``fad``, ``details`` and ``fad_inf`` / ``bootstrap``.

    Raises:
        ValueError: mismatched dimensions, fewer than 2 rows, NaN or infinite values.
        FileNotFoundError: a path does not exist.
    """
    paths = [isinstance(x, (str, os.PathLike)) for x in (a, b)]
    if all(paths):
        text = _native.fad_paths(os.fspath(a), os.fspath(b), bool(inf), int(bootstrap),
                                 int(seed), layer)
    elif not any(paths):
        arrays = []
        for name, x in (("a", a), ("b", b)):
            x = np.asarray(x)
            if x.ndim != 2:
                raise ValueError(f"{name}: expected a 2-D array [N, D], got shape {x.shape}")
            arrays.append(np.ascontiguousarray(x, dtype=np.float64))
        text = _native.fad_arrays(arrays[0], arrays[1], bool(inf), int(bootstrap), int(seed))
    else:
        raise ValueError("a, b: give both as numpy arrays or both as paths")
    report = json.loads(text)
    if not inf and not bootstrap:
        return float(report["fad"])
    return report


def synth(out, seed=7, quick=True, clips_per_cell=None):
    """Writes the synthetic shared-code corpus (speech and music clips, a manifest) into
    ``out`` and returns the manifest's path. ``quick`` is the small demo corpus."""
    return pathlib.Path(_native.synth(os.fspath(out), int(seed), bool(quick), clips_per_cell))


def extract(manifest, model, cache, tag=None, **settings):
    """Runs every clip of ``manifest`` through the encoder ``model`` (a checkpoint folder or
    ``ORG/NAME``) into the embedding cache ``cache/<tag>/`` (tag: the model folder's name by
    default), as ``emobridge extract`` does. ``settings`` are ``ExtractConfig`` fields
    (``precision``, ``window_s``, ``layers``, ``dtype``, ...). Returns counts as a dict."""
    if tag is None:
        tag = pathlib.Path(os.fspath(model)).name
    return json.loads(_native.extract(os.fspath(manifest), os.fspath(model), os.fspath(cache),
                                      tag, json.dumps(settings)))


def _run_summary(folder):
    folder = pathlib.Path(folder)
    with open(folder / "run.json", encoding="utf-8") as f:
        return folder, json.load(f)


def run_probe(manifest, out, *, features=None, cache=None, model=None, **settings):
    """The layer-wise emotion probe (``emobridge probe``): on a descriptor set
    (``features="egemaps"|"compare"``) or on every hidden state cached for ``model`` in
    ``cache``. ``settings`` are the probe's config fields (``normalize``, ``head``, ``target``,
    ``folds``, ``seeds``, ``seed``, ...). Returns ``(run_folder, run_json_dict)``."""
    folder = _native.run_probe(os.fspath(manifest), os.fspath(out), features,
                               None if cache is None else os.fspath(cache), model,
                               json.dumps(settings))
    return _run_summary(folder)


def run_fad_study(manifest, cache, model, out, **settings):
    """The per-emotion speech-vs-music FAD study (``emobridge fad --manifest``) on the
    embeddings cached for ``model`` in ``cache``. ``settings`` are the study's config fields
    (``level``, ``layers``, ``bootstrap``, ``seed``, ``plots``, ...). Returns
    ``(run_folder, run_json_dict)``."""
    folder = _native.run_fad_study(os.fspath(manifest), os.fspath(cache), model,
                                   os.fspath(out), json.dumps(settings))
    return _run_summary(folder)


def run_demo(out="demo-out", quick=False, seed=7, model=None):
    """Every study on a freshly synthesised corpus, ending with ``report.html``
    (``emobridge demo``). Returns ``(run_folder, summary_dict)``, the summary being the
    report's ``summary.json`` (the headline numbers)."""
    folder, report = _native.run_demo(os.fspath(out), bool(quick), int(seed), model)
    summary_path = pathlib.Path(report).with_name("summary.json")
    with open(summary_path, encoding="utf-8") as f:
        return pathlib.Path(folder), json.load(f)
