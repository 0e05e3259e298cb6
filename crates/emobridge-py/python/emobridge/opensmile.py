"""A drop-in for the ``opensmile`` Python package's ``Smile`` (PyPI ``opensmile`` 2.6.0).

Switch a notebook by changing one import::

    # import opensmile
    from emobridge import opensmile

    smile = opensmile.Smile(
        feature_set=opensmile.FeatureSet.eGeMAPSv02,
        feature_level=opensmile.FeatureLevel.Functionals,
    )
    df = smile.process_files(["a.wav", "b.wav"])

The DataFrames have the ``opensmile`` package's layout: a MultiIndex ``file``, ``start``,
``end`` (``start``/``end`` as timedeltas; ``process_signal`` has only ``start``, ``end``), the
same column names in the same order, float32 values. Supported: ``eGeMAPSv02`` at
``Functionals`` and ``LowLevelDescriptors``; ``ComParE_2016`` at ``Functionals`` (6,373
columns, ``opensmile``'s default), ``LowLevelDescriptors`` and ``LowLevelDescriptors_Deltas``.
``process_files`` analyses the files in parallel. Known
difference: at ``ComParE_2016`` / ``LowLevelDescriptors_Deltas`` the two rows openSMILE's delta
filter flushes past the last LLD row are included (as in ``opensmile``), and their start times
follow the rule above; on files voiced up to their end (whatever the sample rate) ``opensmile``
stamps the third- and fourth-last rows 10 ms earlier, an artefact of openSMILE's end-of-input
scheduling that depends on the pitch smoother's state at the end (see PARITY.md).
"""

import enum
import os

import numpy as np

from . import _native

__all__ = ["FeatureSet", "FeatureLevel", "Smile"]


class FeatureSet(enum.Enum):
    """Descriptor sets (values as in the ``opensmile`` package)."""

    eGeMAPSv02 = "eGeMAPSv02"
    ComParE_2016 = "ComParE_2016"


class FeatureLevel(enum.Enum):
    """Feature levels (values as in the ``opensmile`` package)."""

    Functionals = "func"
    LowLevelDescriptors = "lld"
    LowLevelDescriptors_Deltas = "lld_de"


_SET = {FeatureSet.eGeMAPSv02: "egemaps", FeatureSet.ComParE_2016: "compare"}
# (native level, names level, analysis frame length of the row times in seconds)
_LEVEL = {
    (FeatureSet.eGeMAPSv02, FeatureLevel.Functionals): ("functionals", "functionals", None),
    (FeatureSet.eGeMAPSv02, FeatureLevel.LowLevelDescriptors): ("lld", "lld", 0.020),
    (FeatureSet.ComParE_2016, FeatureLevel.Functionals): ("functionals", "functionals", None),
    (FeatureSet.ComParE_2016, FeatureLevel.LowLevelDescriptors): ("lld", "lld", 0.060),
    (FeatureSet.ComParE_2016, FeatureLevel.LowLevelDescriptors_Deltas): (
        "lld_deltas", "lld_deltas", 0.060),
}
_HOP_S = 0.010


def _enum(kind, value):
    if isinstance(value, kind):
        return value
    for member in kind:
        if value in (member.name, member.value):
            return member
    raise ValueError(f"{kind.__name__} {value!r}: expected one of "
                     f"{', '.join(m.name for m in kind)}")


def _pandas():
    try:
        import pandas
    except ImportError as e:
        raise ImportError("emobridge.opensmile returns pandas DataFrames: pip install pandas") from e
    return pandas


class Smile:
    """Extracts eGeMAPSv02 / ComParE_2016 descriptors with the ``opensmile`` package's API.

    Args:
        feature_set: :class:`FeatureSet` (or its name).
        feature_level: :class:`FeatureLevel` (or its name or value).
        num_workers: threads for ``process_files`` (``None``: all cores).

    Raises:
        ValueError: a combination ``opensmile`` does not offer (eGeMAPSv02 deltas).
    """

    def __init__(self, feature_set=FeatureSet.ComParE_2016,
                 feature_level=FeatureLevel.Functionals, *, num_workers=None):
        self.feature_set = _enum(FeatureSet, feature_set)
        self.feature_level = _enum(FeatureLevel, feature_level)
        if (self.feature_set, self.feature_level) == (FeatureSet.eGeMAPSv02,
                                                     FeatureLevel.LowLevelDescriptors_Deltas):
            raise ValueError(f"Feature level '{self.feature_level.name}' is not available for "
                             f"feature set '{self.feature_set.name}'.")
        self.num_workers = num_workers
        self._set = _SET[self.feature_set]
        self._level, names_level, self._frame_s = _LEVEL[(self.feature_set, self.feature_level)]
        self._names = list(_native.feature_names(self._set, names_level))
        # every process_* call returns a DataFrame: import pandas here, once, as the
        # ``opensmile`` package does at import, not inside the first call
        _pandas()

    def __repr__(self):
        return (f"Smile(feature_set={self.feature_set}, feature_level={self.feature_level})")

    @property
    def feature_names(self):
        """The column names, in order (as ``opensmile.Smile.feature_names``)."""
        return list(self._names)

    @property
    def num_features(self):
        """Number of columns."""
        return len(self._names)

    @property
    def process_func_applies_sliding_window(self):
        """``False``: like ``opensmile``, processing is over the whole signal."""
        return False

    # -- conversion of one analysed clip into columns and row times -----------------------

    def _columns(self, values, names):
        if list(names) == self._names:
            return values
        # ComParE LLDs come with their deltas (130 columns): keep this level's 65
        position = {n: i for i, n in enumerate(names)}
        return values[:, [position[n] for n in self._names]]

    def _times(self, times, seconds, sampling_rate):
        """Row ``start``/``end`` in seconds as ``opensmile`` reports them: a frame's start and
        start + frame length; no row starts later than the last complete frame on the 10 ms
        grid (openSMILE's flush rows: one at the LLDs, three at the deltas), and the last row
        ends at the signal's end."""
        if times is None:
            return np.array([0.0]), np.array([seconds])
        starts = np.asarray(times, dtype=np.float64).copy()
        ends = starts + self._frame_s
        if len(starts):
            # openSMILE rounds half away from zero (Python's round() would round half to even)
            hop = int(_HOP_S * sampling_rate + 0.5)
            frame = int(self._frame_s * sampling_rate + 0.5)
            n = int(seconds * sampling_rate + 0.5)
            last_complete = max(0, (n - frame) // hop)
            starts = np.minimum(starts, last_complete * hop / sampling_rate)
            ends = starts + self._frame_s
            ends[-1] = seconds
        return starts, ends

    def _frame(self, parts, with_file):
        pd = _pandas()
        files, starts, ends, blocks = [], [], [], []
        for file, values, names, times, seconds, rate in parts:
            s, e = self._times(times, seconds, rate)
            files.extend([file] * len(s))
            starts.append(s)
            ends.append(e)
            blocks.append(self._columns(values, names))
        starts = self._timedeltas(pd, starts)
        ends = self._timedeltas(pd, ends)
        if with_file:
            index = pd.MultiIndex.from_arrays([files, starts, ends],
                                              names=["file", "start", "end"])
        else:
            index = pd.MultiIndex.from_arrays([starts, ends], names=["start", "end"])
        data = (np.concatenate(blocks, axis=0) if blocks
                else np.zeros((0, len(self._names)), dtype=np.float32))
        return pd.DataFrame(data.astype(np.float32, copy=False), index=index,
                            columns=list(self._names))

    @staticmethod
    def _timedeltas(pd, seconds):
        """Seconds as a nanosecond ``TimedeltaIndex`` (opensmile's ``timedelta64[ns]``)."""
        s = np.concatenate(seconds) if seconds else np.zeros(0)
        return pd.TimedeltaIndex(np.round(s * 1e9).astype(np.int64).astype("timedelta64[ns]"))

    @staticmethod
    def _no_segments(**kwargs):
        given = [k for k, v in kwargs.items() if v is not None]
        if given:
            raise ValueError(f"{', '.join(given)}: segments are not supported by "
                             "emobridge.opensmile; cut the signal and use process_signal")

    def _window(self):
        return _native.default_window()

    # -- the opensmile API ----------------------------------------------------------------

    def process_file(self, file, *, start=None, end=None, root=None):
        """Descriptors of one audio file as a DataFrame indexed by ``file``, ``start``,
        ``end``. ``file`` appears in the index as given (joined to ``root`` for reading)."""
        return self.process_files([file], starts=start, ends=end, root=root)

    def process_files(self, files, *, starts=None, ends=None, root=None):
        """Descriptors of several files (analysed in parallel) as one DataFrame, rows in the
        order of ``files``."""
        self._no_segments(starts=starts, ends=ends)
        labels = [os.fspath(f) for f in files]
        paths = [os.path.join(root, f) if root is not None else f for f in labels]
        window_s, hop_s = self._window()
        results = _native.describe_files_(paths, self._set, self._level, window_s, hop_s,
                                          self.num_workers)
        parts = []
        for label, (values, names, times, seconds, rate) in zip(labels, results):
            parts.append((label, values, names, times, seconds, rate))
        return self._frame(parts, with_file=True)

    def process_signal(self, signal, sampling_rate, *, file=None, start=None, end=None):
        """Descriptors of a signal (``[samples]``, or ``[channels, samples]`` of which the
        first channel is used, as ``opensmile`` does by default) as a DataFrame indexed by
        ``start``, ``end`` (and ``file`` when given)."""
        self._no_segments(start=start, end=end)
        x = np.asarray(signal)
        if x.ndim == 2:
            x = x[0]
        if x.ndim != 1:
            raise ValueError(f"signal: expected [samples] or [channels, samples], got shape "
                             f"{np.asarray(signal).shape}")
        x = np.ascontiguousarray(x, dtype=np.float32)
        rate = int(sampling_rate)
        window_s, hop_s = self._window()
        values, names, times, seconds, _ = _native.describe_signal_(x, rate, self._set,
                                                                 self._level, window_s, hop_s)
        part = (file, values, names, times, seconds, rate)
        return self._frame([part], with_file=file is not None)

    def __call__(self, signal, sampling_rate):
        """Descriptors of a signal as a float32 array ``[1, features, frames]`` (the
        ``opensmile`` package's ``Smile.__call__`` layout for one channel)."""
        df = self.process_signal(signal, sampling_rate)
        return df.to_numpy(dtype=np.float32).T[np.newaxis, :, :]
