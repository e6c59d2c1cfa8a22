"""A training run's configuration: frozen dataclasses that the flags fill once (cli/) and that are passed down as
arguments; settings resolved later (the precision, a drawn seed) make a new configuration, never a changed one.

run_config.json's "args" is the configuration flattened, as the flags name the settings; it is read back, checked
against the fields' types, by read_run_config, for --resume, predict.py, the cross-validation report and the exports.
A setting missing from an older run's file takes its default, as that run did."""

import collections.abc
import dataclasses
import json
import typing
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Union

from segtf.errors import UserError
from segtf.files import write_text

PRECISION_OF_BOOL = {True: "float16", False: "float32"}  # runs before --mixed_precision took names recorded a bool
BEFORE_PLANS = {"plan": "none", "plan_reasons": []}  # a run that records no plan had none (JSON has lists)


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
    mixed_precision: str = "auto"  # float32, float16, bfloat16, or auto until resolved
    seed: Optional[int] = None  # None until drawn


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The network, its classes and its loss."""

    arch: str = "unet"
    backbone: str = "efficientnetb4"
    encoder_weights: str = "imagenet"  # imagenet, none or a .h5 file
    classes: int = 1  # including the background
    class_names: Optional[Sequence[str]] = None  # the data's, None for one class
    class_colors: Optional[Sequence[Sequence[int]]] = None  # the RGB of each class, when given by colour
    ignore_color: Optional[Sequence[int]] = None  # with class_colors: the RGB of pixels to ignore, if any
    init_weights: Optional[str] = None
    bn_momentum: float = 0.9
    loss: str = "dice_focal"
    tversky_alpha: float = 0.3
    tversky_beta: float = 0.7
    jit_compile: bool = False


@dataclasses.dataclass(frozen=True)
class OptimizationConfig:
    """The optimizer, its schedule and the length of the run."""

    epochs: int = 100
    steps_per_epoch: Optional[int] = None  # None: a pass over the training set, but at least a floor
    optimizer: str = "adamw"
    learning_rate: float = 0.001
    weight_decay: float = 0.05
    lr_schedule: str = "cosine"
    ema: float = 0.0  # decay of the weights' moving average, 0: none
    monitor: str = "val_iou"
    patience: Optional[int] = None  # epochs without progress before stopping, None: never
    time_budget: Optional[float] = None  # minutes of wall-clock time that epochs and steps are fitted to


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Where the run writes, on which devices, what it logs, and which folds it trains."""

    work_dir: str = "work"
    device: Optional[Sequence[Union[int, str]]] = None  # GPU numbers or ["cpu"]; None: every GPU
    cpu_devices: int = 1
    cluster: str = "tf_config"
    log: str = "none"
    wandb_project: str = "segmentation"
    tta: str = "none"
    resume: bool = False
    overwrite: bool = False
    folds: Optional[int] = None
    fold: Union[int, str] = "all"
    plan: str = "auto"  # auto: settings not given are planned from the data (training/plan.py); none: the defaults
    plan_reasons: Sequence[str] = ()  # the plan's choices, one line each


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    loader: LoaderConfig
    model: ModelConfig
    optimization: OptimizationConfig
    run: RunConfig

    @classmethod
    def part_types(cls) -> dict[str, type]:
        """Each part's name and dataclass, in their order."""
        return typing.get_type_hints(cls)

    def flat(self) -> dict:
        """The settings by their flags' names: run_config.json's "args"."""
        parts = [getattr(self, name) for name in self.part_types()]
        return {f.name: getattr(part, f.name) for part in parts for f in dataclasses.fields(part)}

    @classmethod
    def from_flat(cls, values: Mapping[str, Any], source: str) -> "TrainConfig":
        """The configuration of flat settings (flat()), each checked against its field's type; UserError naming
        source and the setting at fault. Settings missing take their defaults."""
        parts, known, values = {}, set(), {**BEFORE_PLANS, **values}
        for name, part in cls.part_types().items():
            hints = typing.get_type_hints(part)
            known |= set(hints)
            parts[name] = part(**{k: check_value(values[k], hints[k], k, source) for k in hints if k in values})
        unknown = sorted(set(values) - known)
        if unknown:
            raise UserError(f"{source}: unknown setting {', '.join(unknown)}")
        return cls(**parts)


def matches(value: Any, hint: Any) -> bool:
    """Whether a value read from JSON is of the type hint (int is a float; bool is not a number)."""
    origin, arguments = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return True
    if origin is Union:
        return any(matches(value, a) for a in arguments)
    if hint is type(None):
        return value is None
    if origin in (list, tuple, collections.abc.Sequence):
        return isinstance(value, (list, tuple)) and all(matches(v, arguments[0]) for v in value)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def check_value(value: Any, hint: Any, name: str, source: str) -> Any:
    """value, when it is of the type hint of the setting name; UserError otherwise."""
    if name == "mixed_precision" and isinstance(value, bool):
        return PRECISION_OF_BOOL[value]
    if not matches(value, hint):
        raise UserError(f"{source}: {name} is {json.dumps(value)}, which is not {type_name(hint)}")
    return value


def type_name(hint: Any) -> str:
    """A type hint in words: 'an integer or null'."""
    words = {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null"}
    if typing.get_origin(hint) is Union:
        return " or ".join(type_name(a) for a in typing.get_args(hint))
    if typing.get_args(hint):
        return f"a list of {type_name(typing.get_args(hint)[0]).split(' ', 1)[-1]}s"
    return words.get(hint, str(hint))


@dataclasses.dataclass(frozen=True)
class SavedRun:
    """What run_config.json holds of a run: its configuration, and how many steps its epochs have."""

    config: TrainConfig
    steps_per_epoch: int


def read_run_config(path: Path) -> SavedRun:
    """The run whose run_config.json is path; UserError naming the file when it cannot be read or a setting is
    unknown or of the wrong type."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: not a run_config.json that train.py wrote ({error})") from error
    if not isinstance(record, dict) or not isinstance(record.get("args"), dict):
        raise UserError(f'{path}: not a run_config.json that train.py wrote (no "args")')
    steps = record.get("steps_per_epoch")
    if not matches(steps, int) or steps < 1:
        raise UserError(f"{path}: steps_per_epoch is {json.dumps(steps)}, which is not an integer above 0")
    return SavedRun(TrainConfig.from_flat(record["args"], str(path)), steps)


def write_run_config(path: Path, config: TrainConfig, record: dict) -> None:
    """run_config.json: the configuration's flat settings as "args", then the other records of the run (replicas,
    samples, steps_per_epoch, versions, start)."""
    write_text(path, json.dumps({"args": config.flat(), **record}, indent=2) + "\n")


def loader_conflict(cache_format: str, resize_first: bool, patch_size: Optional[int]) -> Optional[str]:
    """Why these loader settings cannot go together, or None: the one check of the parser and of build_dataset."""
    if cache_format == "tfrecord" and not resize_first:
        return "--cache_format tfrecord keeps the samples at --image_size: it needs --resize_first True"
    if patch_size and (cache_format != "bmp" or not resize_first):
        return "--patch_size crops uncompressed copies at --scale: it needs --cache_format bmp --resize_first True"
    return None
