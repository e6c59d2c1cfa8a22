"""The command-line flags that several scripts share, and the types that check each flag's value: defined once,
with --help text that gives units and choices. Each script's own parser sits in the script."""

import argparse
import dataclasses
import math
from typing import Optional

from segtf.config import LoaderConfig, loader_conflict

# the epilog of the scripts that import TensorFlow (segtf/quiet_start.py)
QUIET_START = "TensorFlow's own start-up logging is kept from the terminal: TF_CPP_MIN_LOG_LEVEL=0 shows it."
# Each optimizer's defaults for --learning_rate and --weight_decay (decoupled: each step shrinks every weight by
# learning_rate x weight_decay). adamw: timm's and MMSegmentation's choice; sgd: nnU-Net's (Nesterov momentum 0.99).
OPTIMIZER_DEFAULTS = {
    "adamw": {"learning_rate": 1e-3, "weight_decay": 0.05},
    "adam": {"learning_rate": 1e-3, "weight_decay": 0.0},
    "radam": {"learning_rate": 1e-3, "weight_decay": 0.0},
    "sgd": {"learning_rate": 1e-2, "weight_decay": 3e-5},
}


def str2bool(value: str) -> bool:
    """Parse a boolean as users write it: true/false, 1/0, yes/no, on/off, any case."""
    answers = {"true": True, "1": True, "yes": True, "y": True, "on": True}
    answers.update({"false": False, "0": False, "no": False, "n": False, "off": False})
    if value.lower() not in answers:
        raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")
    return answers[value.lower()]


def precision_choice(value: str) -> str:
    """--mixed_precision: float16, bfloat16, auto, float32, or a boolean (true: float16, false: float32)."""
    if value.lower() in ("float16", "bfloat16", "float32", "auto"):
        return value.lower()
    try:
        return "float16" if str2bool(value) else "float32"
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected float16, bfloat16, false or auto, got {value!r}") from None


def positive_int(value: str) -> int:
    """A count that must be at least 1: batch size, epochs, workers, devices."""
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {value}")
    return int(value)


def float_below(value: str, upper: float, says: str) -> float:
    """A number from 0 up to, not including, upper (NaN and text fail too); argparse names the flag."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not 0 <= number < upper:
        raise argparse.ArgumentTypeError(f"must be {says}, got {value}")
    return number


def non_negative_float(value: str) -> float:
    """A finite rate that may be 0 but not below: weight decay."""
    return float_below(value, math.inf, "a finite number of at least 0")


def fraction_below_one(value: str) -> float:
    """A share from 0 up to, not including, 1: a moving-average momentum, the overlap of sliding windows."""
    return float_below(value, 1, "at least 0 and below 1")


def share(value: str) -> float:
    """A share from 0 to 1, both included."""
    return float_below(value, math.nextafter(1, 2), "from 0 to 1")


def above_zero(value: str, upper: float, says: str) -> float:
    """A number above 0 and below upper (NaN and text fail too); argparse names the flag."""
    number = float_below(value, upper, says)
    if number == 0:
        raise argparse.ArgumentTypeError(f"must be {says}, got {value}")
    return number


def scale_factor(value: str) -> float:
    """A factor above 0 and below 8 by which images are rescaled."""
    return above_zero(value, 8, "above 0 and below 8")


def image_size(value: str) -> int:
    """An --image_size: a multiple of 32, because the Unet halves it 5 times."""
    if not value.isdigit() or int(value) < 32 or int(value) % 32:
        raise argparse.ArgumentTypeError(f"must be a multiple of 32 (the Unet halves it 5 times), got {value}")
    return int(value)


def device_list(value: str):
    """One --device entry: a GPU index, or 'cpu'."""
    if value.lower() == "cpu":
        return "cpu"
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"expected a GPU index (0, 1, ...) or cpu, got {value!r}")
    return int(value)


def balance_choice(value: str) -> str:
    """--balance: groups, classes or none; true and false (as before classes existed) mean groups and none."""
    if value.lower() in ("groups", "classes", "none"):
        return value.lower()
    try:
        return "groups" if str2bool(value) else "none"
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(f"expected groups, classes or none, got {value}") from error


def add_bool(parser: argparse.ArgumentParser, name: str, default: bool, help: str) -> None:
    """A boolean flag: `--name`, `--name True` and `--name false` all work."""
    parser.add_argument(
        name, type=str2bool, nargs="?", const=True, default=default, metavar="BOOL", help=f"{help} (default: {default})"
    )


def add_data_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data_root",
        required=True,
        metavar="DATA",
        help="dataset folder: DATA/{train,valid}/{images,masks}/[group/]name.ext, "
        "or a flat DATA/images/ with DATA/masks/ (or DATA/labels/)",
    )


def add_tta(parser: argparse.ArgumentParser, when: str) -> None:
    parser.add_argument(
        "--tta",
        default="none",
        choices=["none", "flip"],
        help=f"{when}flip: average the predictions of each image (or window) as it is, flipped left-right and "
        "upside down, three times the work (default: %(default)s)",
    )


def add_loader_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--image_size",
        type=image_size,
        default=LoaderConfig.image_size,
        help="side of the square model input in pixels, a multiple of 32 (default: %(default)s; train.py plans it: "
        "--plan)",
    )
    parser.add_argument(
        "--batch_size",
        type=positive_int,
        default=LoaderConfig.batch_size,
        help="global batch size: the samples of one step over all devices together (default: %(default)s; train.py "
        "plans it: --plan)",
    )
    parser.add_argument(
        "--balance",
        type=balance_choice,
        nargs="?",
        const="groups",
        default=LoaderConfig.balance,
        metavar="groups|classes",
        help="draw training samples from every group (train_<group>.csv) equally often, instead of in proportion to "
        "the groups' sizes; classes (several classes): from all images and from those holding each foreground class "
        "(classes_train_<k>.csv), so that a rare class is seen often (--balance alone: groups; default: none)",
    )
    parser.add_argument(
        "--group_weights",
        type=float,
        nargs="+",
        metavar="W",
        help="with --balance: one weight per group, in the alphabetical order of the group names "
        "(default: equal weights)",
    )
    parser.add_argument(
        "--augment",
        default=LoaderConfig.augment,
        choices=["photo", "any_orientation", "none"],
        help="training augmentation. photo: the original blog's (left-right flips, a tilt of up to 30 degrees, "
        "zoom, noise, blur, colour), for photos with an up; any_orientation: those and upside-down flips, "
        "90-degree turns, elastic or grid distortion and gamma, for microscopy, fundus, satellite or scanned "
        "images; none: only the resize. Masks always move with their images (default: %(default)s)",
    )
    add_bool(
        parser,
        "--resize_first",
        LoaderConfig.resize_first,
        "resize every image and mask once to --image_size, kept in DATA/cache/ as --cache_format says, and "
        "augment at that size: several times faster; false: decode and augment the full-size PNGs every epoch",
    )
    parser.add_argument(
        "--cache_format",
        default=LoaderConfig.cache_format,
        choices=["bmp", "tfrecord"],
        help="how --resize_first keeps the resized samples. bmp: a BMP file for each image and mask in "
        "DATA/cache/<size>px/, about 590 KB a sample at 384 px (4 bytes a pixel), the least work to decode, "
        "shuffled exactly; choose it for a local disk with room to spare. tfrecord: TFRecord shard files in "
        "DATA/cache/<size>px-tfrecord/, the image as JPEG (quality 95) and the mask as PNG (lossless), about "
        "43 KB a sample at 384 px, shuffled over files and a buffer of 2048; choose it for many images, shared "
        "storage or several machines (each worker reads files of its own). Needs --resize_first True "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--patch_size",
        type=image_size,
        metavar="P",
        help="train on random P x P pixel crops (a multiple of 32) of the images rescaled by --scale, instead of "
        "whole images squashed to --image_size, and validate whole images by sliding P x P windows, scored at "
        "their own resolution; for large images and small structures. Crops are read, only their own rows, from "
        "uncompressed copies in DATA/cache/scale<S>/, about 4 bytes a pixel of the rescaled images (default: off; "
        "train.py plans it: --plan)",
    )
    parser.add_argument(
        "--scale",
        type=scale_factor,
        default=LoaderConfig.scale,
        help="with --patch_size: the factor by which images are rescaled before cropping, e.g. 0.5 halves "
        "their sides (default: %(default)s; train.py plans it: --plan)",
    )
    parser.add_argument(
        "--foreground_share",
        type=share,
        default=LoaderConfig.foreground_share,
        metavar="F",
        help="with --patch_size: the share of crops centred on a foreground pixel, the others anywhere "
        "(nnU-Net's 0.33) (default: %(default)s)",
    )
    parser.add_argument(
        "--mixed_precision",
        type=precision_choice,
        default=LoaderConfig.mixed_precision,
        metavar="float16|bfloat16|false|auto",
        help="the type layers compute in, with float32 weights, head, loss and metrics. float16 (or true): "
        "mixed_float16 with loss scaling, for GPUs of compute capability 7.x; bfloat16: mixed_bfloat16, no loss "
        "scaling, for GPUs of 8.0 or more and CPUs with AMX or AVX512-BF16 (not for EfficientNets and MobileNets, "
        "slower in it there); false: float32; auto: the one of those the devices and backbone suit, a resumed run's "
        "own (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        help="seed of the weights' initialisation, the shuffling and each sample's augmentation: the same seed "
        "gives the same run on the CPU (default: drawn at random and recorded in run_config.json)",
    )


def check_loader_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.group_weights and (args.balance == "none" or min(args.group_weights) < 0 or sum(args.group_weights) <= 0):
        parser.error("--group_weights needs --balance, and non-negative weights that are not all 0")
    conflict = loader_conflict(args.cache_format, args.resize_first, args.patch_size)
    if conflict:
        parser.error(conflict)


def optimizer_settings(
    optimizer: str, learning_rate: Optional[float], weight_decay: Optional[float]
) -> tuple[float, float]:
    """(learning rate, weight decay): each as given, or the optimizer's default where None."""
    defaults = OPTIMIZER_DEFAULTS[optimizer]
    return (
        defaults["learning_rate"] if learning_rate is None else learning_rate,
        defaults["weight_decay"] if weight_decay is None else weight_decay,
    )


def defaults_by_optimizer(setting: str) -> str:
    """'0.001 with adamw, ...': the --help text of a setting that OPTIMIZER_DEFAULTS gives."""
    return ", ".join(f"{defaults[setting]:g} with {name}" for name, defaults in OPTIMIZER_DEFAULTS.items())


def config_part(part: type, values: dict):
    """A dataclass of the configuration (segtf/config.py), filled from the flags' values of its fields."""
    return part(**{field.name: values[field.name] for field in dataclasses.fields(part)})
