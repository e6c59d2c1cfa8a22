"""The loader's settings as one frozen dataclass: what the loader flags give (cli/flags.py takes its defaults from
here), what run_config.json records of them, and what an export's check reads back from it."""

import dataclasses
from typing import Any, Mapping, Optional, Sequence

from segtf.dataset.patches import Patches


@dataclasses.dataclass(frozen=True)
class LoaderConfig:
    """How training samples are read, cached, augmented and batched."""

    data_root: str
    image_size: int = 384  # side of the square model input, pixels
    batch_size: int = 32  # the global batch, over all devices
    balance: str = "none"  # none, groups or classes
    group_weights: Optional[Sequence[float]] = None
    augment: str = "photo"  # augmentation.AUGMENTATIONS
    resize_first: bool = True
    cache_format: str = "bmp"  # bmp or tfrecord
    patch_size: Optional[int] = None  # None: whole images
    scale: float = 1.0  # with patch_size: the images' rescaling before cropping
    foreground_share: float = 0.33  # with patch_size: the share of crops centred on foreground
    mixed_precision: str = "auto"  # the compute type, which the batches are given
    seed: Optional[int] = None  # None: drawn

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> "LoaderConfig":
        """The settings among values (flags, or run_config.json's "args"), the defaults for those missing."""
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{name: value for name, value in values.items() if name in names})

    @property
    def patches(self) -> Optional[Patches]:
        """The patch training asked for, or None for whole images."""
        return Patches(self.patch_size, self.scale, self.foreground_share) if self.patch_size else None


def loader_conflict(cache_format: str, resize_first: bool, patch_size: Optional[int]) -> Optional[str]:
    """Why these loader settings cannot go together, or None: the one check of the parser and of build_dataset."""
    if cache_format == "tfrecord" and not resize_first:
        return "--cache_format tfrecord keeps the samples at --image_size: it needs --resize_first True"
    if patch_size and (cache_format != "bmp" or not resize_first):
        return "--patch_size crops uncompressed copies at --scale: it needs --cache_format bmp --resize_first True"
    return None
