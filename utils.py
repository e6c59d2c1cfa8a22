"""Command-line flags for every script, defined once, and small shared helpers."""

import argparse
import sys
from typing import NoReturn, Optional, Sequence


def fail(message: str) -> NoReturn:
    """Stop with one line on stderr and exit code 2, the code argparse uses for bad input."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


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
        default=127,
        help="mask pixels above this gray level (0 to 254) are foreground; "
        "masks holding only 0 and 1 are scaled instead (default: %(default)s)",
    )
    parser.add_argument(
        "--synthetic",
        type=int,
        default=0,
        metavar="N",
        help="first write N generated hand-like images with nail masks into DATA "
        "(which must be empty or generated before), then prepare them (default: 0, off)",
    )
    parser.add_argument(
        "--workers", type=int, default=None, metavar="N", help="processes used for conversion (default: all cores)"
    )
    args = parser.parse_args(argv)
    if not 0 <= args.valid_fraction < 1:
        parser.error("--valid_fraction must be at least 0 and below 1")
    if not 0 <= args.mask_threshold <= 254:
        parser.error("--mask_threshold must be from 0 to 254")
    if args.synthetic < 0:
        parser.error("--synthetic must be 0 or more")
    return args
