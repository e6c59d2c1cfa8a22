"""dataloader.py's flags: print one training batch's shapes, dtypes and value ranges, and save a grid of
augmented samples."""

import argparse
import math
from pathlib import Path
from typing import Optional, Sequence

from segtf.cli.flags import add_data_root, add_loader_args, check_loader_args, config_part
from segtf.config import LoaderConfig
from segtf.dataset.classes import read_class_table
from segtf.dataset.input_scaling import to_pixels
from segtf.dataset.pipeline import training_batches
from segtf.errors import exit_on_user_error
from segtf.evaluation.pictures import save_grid
from segtf.text import counted

import numpy as np


def show_batch(args: argparse.Namespace) -> None:
    """Print one training batch's shapes, dtypes and value ranges, and save the augmentation grid."""
    dataset, n_samples = training_batches(config_part(LoaderConfig, vars(args)))
    images, masks = next(iter(dataset))
    steps = math.ceil(n_samples / args.batch_size)
    print(f"{counted(n_samples, 'training sample')}, {counted(steps, 'step')} per epoch")
    for name, batch in (("images", images), ("masks", masks)):
        values = batch.numpy().astype(np.float32)
        print(f"{name}: shape {tuple(batch.shape)}, {batch.dtype.name}, min {values.min():g}, max {values.max():g}")
    table = read_class_table(Path(args.data_root))
    names, colors = (list(table.names), table.colors or None) if table else (None, None)
    save_grid(to_pixels(images[:12]), masks[:12].numpy(), Path(args.output), names, colors)
    print(f"saved {args.output}")


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


def main(argv: Optional[Sequence[str]] = None) -> None:
    with exit_on_user_error():
        show_batch(dataloader_args(argv))


if __name__ == "__main__":
    main()
