"""Command-line flags for every script, defined once, and small shared helpers."""

import argparse
import contextlib
import io
import math
import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import cv2
import numpy as np

# Each optimizer's defaults for --learning_rate and --weight_decay (decoupled: each step shrinks every weight by
# learning_rate x weight_decay). adamw: timm's and MMSegmentation's choice; sgd: nnU-Net's (Nesterov momentum 0.99).
OPTIMIZER_DEFAULTS = {
    "adamw": {"learning_rate": 1e-3, "weight_decay": 0.05},
    "adam": {"learning_rate": 1e-3, "weight_decay": 0.0},
    "radam": {"learning_rate": 1e-3, "weight_decay": 0.0},
    "sgd": {"learning_rate": 1e-2, "weight_decay": 3e-5},
}
# Fewest steps an epoch by default: a small set still gets enough steps for the default --epochs, and validation,
# checkpoints, the plateau schedule and --patience keep a meaningful unit. nnU-Net uses 250 whatever the data size.
MIN_STEPS_PER_EPOCH = 250
# The folders data_preparation.py writes under DATA, which the scripts that read prepared data look in
PNG_FOLDER = "png"
CSV_FOLDER = "csv_file"


class UserError(Exception):
    """A fault the user can fix (a flag, a file, the machine): library functions raise it, and each
    script's main() prints its message as one line and exits with code 2."""


@contextlib.contextmanager
def exit_on_user_error() -> Iterator[None]:
    """For a script's main(): a UserError raised inside becomes one line on stderr, `error: …`, and
    exit code 2, the code argparse uses for bad input."""
    try:
        yield
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def is_up_to_date(source: Path, target: Path) -> bool:
    """True when target was made from source as it is now: write_image(..., made_from=source) gives
    target the modification time of source, which any later change of source alters."""
    return target.exists() and target.stat().st_mtime_ns == source.stat().st_mtime_ns


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary name beside path, of this process and thread, renamed to path when the block ends
    without error (and deleted when it fails): a kill never leaves half a file under path, and two
    runs never write the same temporary file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # the host too: the workers of a cluster write the same caches on shared storage
    temporary = path.with_name(f".{path.name}.{socket.gethostname()}-{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        yield temporary
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, path)


def write_bytes(path: Path, data: Union[bytes, memoryview], made_from: Optional[Path] = None) -> None:
    """Write whole or not at all (see replacing)."""
    with replacing(path) as temporary:
        temporary.write_bytes(data)
        if made_from is not None:
            os.utime(temporary, ns=(time.time_ns(), made_from.stat().st_mtime_ns))


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode())


def write_image(path: Path, array: np.ndarray, made_from: Optional[Path] = None) -> None:
    """Write in the format of path's suffix, whole or not at all (see write_bytes)."""
    ok, encoded = cv2.imencode(path.suffix, array)
    if not ok:
        raise ValueError(f"cannot be encoded as {path.suffix}")
    write_bytes(path, encoded.tobytes(), made_from)


def write_array(path: Path, array: np.ndarray, made_from: Optional[Path] = None) -> None:
    """Write in NumPy's .npy format, whatever path's suffix, whole or not at all (see write_bytes)."""
    buffer = io.BytesIO()
    np.save(buffer, array)
    write_bytes(path, buffer.getbuffer(), made_from)


def add_data_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data_root",
        required=True,
        metavar="DATA",
        help="dataset folder: DATA/{train,valid}/{images,masks}/[group/]name.ext, "
        "or a flat DATA/images/ with DATA/masks/ (or DATA/labels/)",
    )


def data_preparation_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Convert images and masks to PNG, pair and validate them, and write "
        "DATA/csv_file/{train,valid,train_<group>,rejected}.csv.",
    )
    add_data_root(parser)
    parser.add_argument(
        "--valid_fraction",
        type=float,
        default=0.2,
        help="share of pairs put in valid, per group, when the data has no valid/ folder "
        "(0 to 1; default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=42,
        help="random seed of the train/valid split and of --synthetic (default: %(default)s)",
    )
    parser.add_argument(
        "--mask_threshold",
        type=int,
        help="mask values above this one are foreground, in the mask's own units (0 to 65534) "
        "(default: every value but 0 when a mask has at most one; Otsu's threshold in JPEG and WebP masks)",
    )
    parser.add_argument(
        "--foreground_values",
        type=int,
        nargs="+",
        metavar="V",
        help="the values of a label mask that are foreground, e.g. 1 2 (default: none; without it a mask "
        "with several values other than 0 is rejected, naming them)",
    )
    add_bool(parser, "--drop_empty", False, "leave out pairs whose mask has no foreground")
    parser.add_argument(
        "--synthetic",
        type=int,
        default=0,
        metavar="N",
        help="first write N generated hand-like images with nail masks into DATA "
        "(which must be empty or generated before), then prepare them (default: 0, off)",
    )
    parser.add_argument(
        "--workers",
        type=positive_int,
        default=None,
        metavar="N",
        help="processes used for conversion (default: all cores)",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.valid_fraction < 1:
        parser.error("--valid_fraction must be at least 0 and below 1")
    if args.mask_threshold is not None and not 0 <= args.mask_threshold <= 65534:
        parser.error("--mask_threshold must be from 0 to 65534")
    if args.synthetic < 0:
        parser.error("--synthetic must be 0 or more")
    return args


def str2bool(value: str) -> bool:
    """Parse a boolean as users write it: true/false, 1/0, yes/no, on/off, any case."""
    answers = {"true": True, "1": True, "yes": True, "y": True, "on": True}
    answers.update({"false": False, "0": False, "no": False, "n": False, "off": False})
    if value.lower() not in answers:
        raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")
    return answers[value.lower()]


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


def scale_factor(value: str) -> float:
    """A factor above 0 and below 8 by which images are rescaled."""
    number = float_below(value, 8, "above 0 and below 8")
    if number == 0:
        raise argparse.ArgumentTypeError(f"must be above 0 and below 8, got {value}")
    return number


def image_size(value: str) -> int:
    """An --image_size: a multiple of 32, because the Unet halves it 5 times."""
    if not value.isdigit() or int(value) < 32 or int(value) % 32:
        raise argparse.ArgumentTypeError(f"must be a multiple of 32 (the Unet halves it 5 times), got {value}")
    return int(value)


def add_bool(parser: argparse.ArgumentParser, name: str, default: bool, help: str) -> None:
    """A boolean flag: `--name`, `--name True` and `--name false` all work."""
    parser.add_argument(
        name, type=str2bool, nargs="?", const=True, default=default, metavar="BOOL", help=f"{help} (default: {default})"
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
        default=384,
        help="side of the square model input in pixels, a multiple of 32 (default: %(default)s)",
    )
    parser.add_argument(
        "--batch_size",
        type=positive_int,
        default=32,
        help="global batch size: the samples of one step over all devices together (default: %(default)s)",
    )
    add_bool(
        parser,
        "--balance",
        False,
        "draw training samples from every group (train_<group>.csv) equally often, instead of in proportion "
        "to the groups' sizes",
    )
    parser.add_argument(
        "--group_weights",
        type=float,
        nargs="+",
        metavar="W",
        help="with --balance: one weight per group, in the alphabetical order of the group names "
        "(default: equal weights)",
    )
    add_bool(
        parser,
        "--resize_first",
        True,
        "resize every image and mask once to --image_size, kept in DATA/cache/ as --cache_format says, and "
        "augment at that size: several times faster; false: decode and augment the full-size PNGs every epoch",
    )
    parser.add_argument(
        "--cache_format",
        default="bmp",
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
        "uncompressed copies in DATA/cache/scale<S>/, about 4 bytes a pixel of the rescaled images (default: off)",
    )
    parser.add_argument(
        "--scale",
        type=scale_factor,
        default=1.0,
        help="with --patch_size: the factor by which images are rescaled before cropping, e.g. 0.5 halves "
        "their sides (default: %(default)s)",
    )
    parser.add_argument(
        "--foreground_share",
        type=share,
        default=0.33,
        metavar="F",
        help="with --patch_size: the share of crops centred on a foreground pixel, the others anywhere "
        "(nnU-Net's 0.33) (default: %(default)s)",
    )
    add_bool(parser, "--mixed_precision", True, "compute in float16 with float32 weights (mixed_float16)")
    parser.add_argument(
        "--seed",
        type=int,
        help="seed of the weights' initialisation, the shuffling and each sample's augmentation: the same seed "
        "gives the same run on the CPU (default: drawn at random and recorded in run_config.json)",
    )


def check_loader_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.group_weights and (not args.balance or min(args.group_weights) < 0 or sum(args.group_weights) <= 0):
        parser.error("--group_weights needs --balance, and non-negative weights that are not all 0")
    if args.cache_format == "tfrecord" and not args.resize_first:
        parser.error("--cache_format tfrecord keeps the samples at --image_size: it needs --resize_first True")
    if args.patch_size and (args.cache_format != "bmp" or not args.resize_first):
        parser.error(
            "--patch_size crops uncompressed copies at --scale: it needs --cache_format bmp --resize_first True"
        )


def dataloader_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Print one training batch's shapes, dtypes and value ranges, and save a grid of "
        "augmented samples with their masks drawn over them."
    )
    add_data_root(parser)
    add_loader_args(parser)
    parser.add_argument(
        "--output",
        default="imgs/augmentations.png",
        help="where to save the grid of augmented samples (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    check_loader_args(parser, args)
    return args


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


def device_list(value: str):
    """One --device entry: a GPU index, or 'cpu'."""
    if value.lower() == "cpu":
        return "cpu"
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"expected a GPU index (0, 1, ...) or cpu, got {value!r}")
    return int(value)


def train_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train a Unet on data prepared by data_preparation.py; weights, history and logs go to "
        "WORK/tensorflow/."
    )
    add_data_root(parser)
    parser.add_argument("--work_dir", default="work", metavar="WORK", help="output folder (default: %(default)s)")
    parser.add_argument(
        "--device",
        type=device_list,
        nargs="+",
        help="GPU indices to train on, as nvidia-smi numbers them (several: MirroredStrategy over them), "
        "or cpu (default: every visible GPU, or the CPU where there is none)",
    )
    parser.add_argument(
        "--cpu_devices",
        type=positive_int,
        default=1,
        metavar="N",
        help="with --device cpu: split the CPU into N logical devices and train on them with MirroredStrategy, "
        "to check multi-device training without GPUs (default: %(default)s)",
    )
    parser.add_argument(
        "--cluster",
        default="tf_config",
        choices=["tf_config", "slurm"],
        help="how the machines of a multi-machine run find each other: tf_config reads the TF_CONFIG environment "
        "variable (one machine when it is not set), slurm the variables srun sets; each machine then trains on "
        "its --device with MultiWorkerMirroredStrategy (default: %(default)s)",
    )
    add_loader_args(parser)
    parser.add_argument(
        "--epochs", type=positive_int, default=100, help="total epochs of the run (default: %(default)s)"
    )
    parser.add_argument(
        "--steps_per_epoch",
        type=positive_int,
        metavar="N",
        help=f"training steps between two validations (default: one pass over the training set, "
        f"but at least {MIN_STEPS_PER_EPOCH})",
    )
    parser.add_argument(
        "--optimizer",
        default="adamw",
        choices=list(OPTIMIZER_DEFAULTS),
        help="adamw and adam (Keras), radam (tensorflow_addons' RectifiedAdam, the seed's), or sgd with Nesterov "
        "momentum 0.99 (default: %(default)s)",
    )
    parser.add_argument(
        "--learning_rate",
        type=non_negative_float,
        help=f"peak learning rate (default: {defaults_by_optimizer('learning_rate')})",
    )
    parser.add_argument(
        "--weight_decay",
        type=non_negative_float,
        help="decoupled weight decay: each step shrinks every weight by learning_rate x this; 0 turns it off "
        f"(default: {defaults_by_optimizer('weight_decay')})",
    )
    parser.add_argument(
        "--lr_schedule",
        default="cosine",
        choices=["constant", "cosine", "plateau"],
        help="cosine: a linear warm-up over the first 5%% of the steps, then a cosine decay to 0 at the last; "
        "plateau: halve the learning rate when --monitor has not improved for 5 epochs (default: %(default)s)",
    )
    parser.add_argument(
        "--monitor",
        default="val_iou",
        choices=["val_iou", "val_loss"],
        help="what chooses the best weights, the plateau schedule and --patience: the validation set's IoU "
        "(from its pixels, highest) or the validation loss (lowest) (default: %(default)s)",
    )
    parser.add_argument(
        "--patience",
        type=positive_int,
        metavar="N",
        help="stop when --monitor has not improved for N epochs (default: off)",
    )
    parser.add_argument(
        "--backbone",
        default="efficientnetb4",
        help="encoder: any segmentation_models backbone, e.g. efficientnetb0-b7, resnet18-152, mobilenetv2 "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--encoder_weights",
        default="imagenet",
        metavar="imagenet|none|PATH",
        help="encoder start: imagenet (downloaded, needs internet), none (from scratch), or a local .h5 file of "
        "the encoder's weights (default: %(default)s)",
    )
    parser.add_argument(
        "--bn_momentum",
        type=fraction_below_one,
        default=0.9,
        help="momentum of every BatchNormalization layer's moving statistics; Keras' 0.99 lags far behind the "
        "weights on small datasets, 0.9 (PyTorch's default) serves small and large ones (default: %(default)s)",
    )
    add_bool(
        parser,
        "--jit_compile",
        False,
        "compile the training step with XLA (meant for GPUs; on the CPU it failed to compile an efficientnetb0 Unet)",
    )
    parser.add_argument(
        "--log",
        default="none",
        choices=["none", "tensorboard", "wandb"],
        help="where to log metrics: tensorboard writes WORK/tensorflow/logs/tensorboard/<time>/ with "
        "validation pictures, wandb honours WANDB_MODE=offline (default: %(default)s)",
    )
    parser.add_argument(
        "--wandb_project", default="segmentation", help="Weights & Biases project (default: %(default)s)"
    )
    add_tta(parser, "with --patch_size, in validation: ")
    add_bool(parser, "--resume", False, "continue the interrupted run in WORK at the epoch where it stopped")
    add_bool(parser, "--overwrite", False, "replace an earlier run in WORK instead of stopping")
    args = parser.parse_args(argv)
    check_loader_args(parser, args)
    if args.device and "cpu" in args.device and len(args.device) > 1:
        parser.error("--device takes GPU indices or cpu, not both")
    if args.device and len(set(args.device)) < len(args.device):
        parser.error("--device lists a GPU twice")
    if args.cpu_devices > 1 and args.device != ["cpu"]:
        parser.error("--cpu_devices above 1 needs --device cpu")
    if args.resume and args.overwrite:
        parser.error("--resume and --overwrite exclude each other")
    if args.learning_rate == 0:
        parser.error("--learning_rate must be above 0")
    if args.tta != "none" and not args.patch_size:
        parser.error("--tta flip applies to the sliding-window validation of --patch_size")
    if args.patch_size and args.monitor == "val_loss":
        parser.error("--patch_size validates whole images by sliding windows, which give no loss: --monitor val_iou")
    args.learning_rate, args.weight_decay = optimizer_settings(args.optimizer, args.learning_rate, args.weight_decay)
    return args


def predict_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Masks for new images, scores against true masks, model export, and training curves. "
        "Writes into OUT without deleting anything there."
    )
    parser.add_argument("--weights", metavar="W", help="an .h5 file written by train.py")
    parser.add_argument("--input", metavar="PATH", help="an image, or a folder searched recursively")
    parser.add_argument("--output", required=True, metavar="OUT", help="folder for everything this writes")
    parser.add_argument(
        "--threshold", type=float, default=0.5, help="probability above which a pixel is mask (default: %(default)s)"
    )
    parser.add_argument(
        "--image_size", type=image_size, help="model input side in pixels (default: from run_config.json beside W)"
    )
    parser.add_argument("--backbone", help="the model's backbone (default: from run_config.json beside W)")
    parser.add_argument(
        "--batch_size", type=positive_int, default=8, help="images, or windows, per batch (default: %(default)s)"
    )
    parser.add_argument(
        "--patch_size",
        type=image_size,
        metavar="P",
        help="predict each image at its own resolution by P x P pixel windows (a multiple of 32) blended with "
        "Gaussian weights (default: the patch_size in run_config.json beside W; without one, off: each image is "
        "resized to image_size)",
    )
    parser.add_argument(
        "--scale",
        type=scale_factor,
        help="with a patch size: rescale each image by this factor before the windows, and the prediction back "
        "(default: the scale in run_config.json beside W, else 1)",
    )
    parser.add_argument(
        "--overlap",
        type=fraction_below_one,
        default=0.5,
        metavar="F",
        help="with a patch size: the share of a window's side that the next window overlaps, at least 0 and "
        "below 1 (default: %(default)s)",
    )
    add_tta(parser, "")
    parser.add_argument(
        "--masks", metavar="DIR", help="true masks for --input, paired by relative path and name stem: score them"
    )
    parser.add_argument("--data_root", metavar="DATA", help="score a prepared split of DATA instead of --input")
    parser.add_argument(
        "--split", default="valid", choices=["train", "valid"], help="with --data_root (default: %(default)s)"
    )
    parser.add_argument(
        "--comparison",
        metavar="PNG",
        help="when scoring: picture of photos with true and predicted masks (default: OUT/comparison.png)",
    )
    parser.add_argument(
        "--export",
        nargs="+",
        default=[],
        choices=["savedmodel", "tflite"],
        help="write OUT/savedmodel (uint8 images of any size in, probabilities at that size out) and/or "
        "OUT/model_float16.tflite (float [0, 1] images of image_size in)",
    )
    parser.add_argument(
        "--history", metavar="CSV", help="plot a run's history.csv (loss, IoU, F1) into OUT/training_curves.png"
    )
    args = parser.parse_args(argv)
    if not (args.input or args.data_root or args.export or args.history):
        parser.error("nothing to do: give --input, --data_root, --export or --history")
    if (args.input or args.data_root or args.export) and not args.weights:
        parser.error("--input, --data_root and --export need --weights")
    if args.input and args.data_root:
        parser.error("give --input (with --masks to score) or --data_root, not both")
    if not 0 < args.threshold < 1:
        parser.error("--threshold must be between 0 and 1")
    if args.masks and not args.input:
        parser.error("--masks scores the images of --input: give both")
    return args
