import os
import pathlib
from typing import Any, Optional, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

from . import opensmile as opensmile

__version__: str

PathLike = Union[str, os.PathLike]

class Encoder:
    """A wav2vec2-family / MERT encoder loaded from a checkpoint folder or ``ORG/NAME``."""

    def __init__(self, model: str, precision: str = "f32") -> None: ...
    @property
    def model(self) -> str: ...
    @property
    def sample_rate(self) -> int: ...
    @property
    def num_states(self) -> int: ...
    @property
    def frame_rate_hz(self) -> float: ...
    def embed(self, signal: npt.NDArray[np.float32], sr: int) -> npt.NDArray[np.float32]:
        """Every hidden state of one clip: float32 ``[layers+1, frames, hidden]``."""
    def embed_batch(
        self, signals: Sequence[npt.NDArray[np.float32]], sr: int
    ) -> list[npt.NDArray[np.float32]]:
        """``embed`` of several clips (batched where results stay equal to single clips)."""

def load_audio(
    path: PathLike, sr: Optional[int] = None, mono: bool = True
) -> Tuple[npt.NDArray[np.float32], int]: ...
def write_wav(
    path: PathLike, signal: npt.ArrayLike, sr: int, format: str = "pcm16"
) -> None: ...
def features(
    signal_or_path: Union[PathLike, npt.ArrayLike],
    sr: Optional[int] = None,
    set: str = "egemaps",
    level: str = "functionals",
    *,
    window_s: Optional[float] = None,
    hop_s: Optional[float] = None,
    as_frame: Optional[bool] = None,
) -> Any:
    """``(values float32 [rows, columns], names)``, or a ``pandas.DataFrame`` when pandas is
    installed (or ``as_frame=True``). ``set``: ``"egemaps"`` or ``"compare"``; ``level``:
    ``"functionals"`` (eGeMAPS 88, ComParE 6,373 columns, one row), ``"lld"``,
    ``"lld_deltas"`` (ComParE only: the 65 deltas, two flush rows longer) or ``"windows"``."""
def fad(a: Any, b: Any, inf: bool = False, bootstrap: int = 0, *, seed: int = 0,
        layer: Optional[int] = None) -> Union[float, dict[str, Any]]: ...
def synth(
    out: PathLike, seed: int = 7, quick: bool = True, clips_per_cell: Optional[int] = None
) -> pathlib.Path: ...
def extract(
    manifest: PathLike, model: str, cache: PathLike, tag: Optional[str] = None, **settings: Any
) -> dict[str, Any]: ...
def run_probe(
    manifest: PathLike,
    out: PathLike,
    *,
    features: Optional[str] = None,
    cache: Optional[PathLike] = None,
    model: Optional[str] = None,
    **settings: Any,
) -> Tuple[pathlib.Path, dict[str, Any]]: ...
def run_fad_study(
    manifest: PathLike, cache: PathLike, model: str, out: PathLike, **settings: Any
) -> Tuple[pathlib.Path, dict[str, Any]]: ...
def run_demo(
    out: PathLike = "demo-out", quick: bool = False, seed: int = 7, model: Optional[str] = None
) -> Tuple[pathlib.Path, dict[str, Any]]: ...
