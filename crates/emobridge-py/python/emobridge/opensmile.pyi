import enum
import os
from typing import Optional, Sequence, Union

import numpy as np
import numpy.typing as npt
import pandas as pd

class FeatureSet(enum.Enum):
    eGeMAPSv02 = "eGeMAPSv02"
    ComParE_2016 = "ComParE_2016"

class FeatureLevel(enum.Enum):
    Functionals = "func"
    LowLevelDescriptors = "lld"
    LowLevelDescriptors_Deltas = "lld_de"

class Smile:
    feature_set: FeatureSet
    feature_level: FeatureLevel
    num_workers: Optional[int]
    def __init__(
        self,
        feature_set: Union[FeatureSet, str] = ...,
        feature_level: Union[FeatureLevel, str] = ...,
        *,
        num_workers: Optional[int] = None,
    ) -> None: ...
    @property
    def feature_names(self) -> list[str]: ...
    @property
    def num_features(self) -> int: ...
    @property
    def process_func_applies_sliding_window(self) -> bool: ...
    def process_file(
        self, file: Union[str, os.PathLike], *, start: None = None, end: None = None,
        root: Optional[str] = None,
    ) -> pd.DataFrame: ...
    def process_files(
        self, files: Sequence[Union[str, os.PathLike]], *, starts: None = None,
        ends: None = None, root: Optional[str] = None,
    ) -> pd.DataFrame: ...
    def process_signal(
        self, signal: npt.ArrayLike, sampling_rate: int, *, file: Optional[str] = None,
        start: None = None, end: None = None,
    ) -> pd.DataFrame: ...
    def __call__(self, signal: npt.ArrayLike, sampling_rate: int) -> npt.NDArray[np.float32]: ...
