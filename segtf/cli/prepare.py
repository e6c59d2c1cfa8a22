"""data_preparation.py's flags, checked, and the mask and class rules they give."""

import argparse
from pathlib import Path
from typing import Optional, Sequence

from segtf.cli.flags import add_bool, add_data_root, positive_int
from segtf.dataset.classes import (
    IGNORED,
    ClassRule,
    default_names,
    read_class_colors,
)
from segtf.dataset.images import MaskRule
from segtf.dataset.preparation import open_dataset, prepare
from segtf.dataset.synthetic import write_synthetic
from segtf.errors import UserError, exit_on_user_error


def data_preparation_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Convert images and masks to PNG, pair and validate them, and write "
        "DATA/csv_file/{train,valid,train_<group>,rejected}.csv and the masks' fingerprint, fingerprint.{csv,json}.",
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
    parser.add_argument(
        "--classes",
        type=positive_int,
        metavar="K",
        help="classes including the background: 1, binary masks (0 and 255); K of 2 or more, label masks whose "
        "values are the class indices 0 to K-1 (with 2, masks are read as binary ones: background and one class) "
        "(default: 1, or the rows of --class_colors)",
    )
    parser.add_argument(
        "--class_colors",
        type=Path,
        metavar="CSV",
        help="colour masks: a CSV of name,red,green,blue a class, the background first (0 to 255); a row named "
        "ignore gives the colour of pixels no loss or metric counts (default: none)",
    )
    parser.add_argument(
        "--ignore_value",
        type=int,
        metavar="V",
        help=f"with --classes: the mask value of pixels no loss or metric counts, e.g. 255; stored as {IGNORED} "
        "(default: none)",
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
    if (args.classes or 1) > IGNORED:
        parser.error(f"--classes must be at most {IGNORED}")
    if args.ignore_value is not None and not (args.classes or args.class_colors):
        parser.error("--ignore_value needs --classes K (or --class_colors)")
    if (args.classes or 0) > 2 and (args.foreground_values or args.mask_threshold is not None):
        parser.error(
            "--foreground_values and --mask_threshold binarise masks: with --classes above 2 the values are the classes"
        )
    return args


def class_rule(args: argparse.Namespace) -> Optional[ClassRule]:
    """The classes asked for, or None for one class (binary masks)."""
    if args.class_colors:
        names, colors, ignore_color = read_class_colors(args.class_colors)
        if args.classes and args.classes != len(names):
            raise UserError(f"--classes {args.classes}, but --class_colors {args.class_colors} lists {len(names)}")
        return ClassRule(names, colors, args.ignore_value, ignore_color)
    if (args.classes or 1) == 1:
        return None
    if args.ignore_value is not None and args.ignore_value < args.classes:
        raise UserError(f"--ignore_value {args.ignore_value} is one of the classes 0 to {args.classes - 1}")
    return ClassRule(default_names(args.classes), ignore_value=args.ignore_value)


def prepare_data(args: argparse.Namespace) -> None:
    """Write the --synthetic data if asked, then pair, convert and split the dataset of --data_root."""
    data_root = Path(args.data_root)
    if args.synthetic:
        write_synthetic(data_root, args.synthetic, args.seed, args.classes or 1)
    pairs, rejected = open_dataset(data_root, args.valid_fraction, args.seed)
    rules = MaskRule(args.mask_threshold, tuple(args.foreground_values or ())), class_rule(args)
    prepare(data_root, pairs, rejected, rules, args.drop_empty, args.workers)


def main(argv: Optional[list[str]] = None) -> None:
    with exit_on_user_error():
        prepare_data(data_preparation_args(argv))


if __name__ == "__main__":
    main()
