"""model.py's flags: build a network as train.py would, and say what it is (parameters, input and output)."""

import argparse
from typing import Optional, Sequence

from segtf.cli.flags import image_size, positive_int
from segtf.config import ModelConfig
from segtf.errors import exit_on_user_error
from segtf.modeling.network import ARCHITECTURES, build_model


def model_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Build a network as train.py builds it (from scratch: no weights are read) and print its "
        "parameter counts, input and output; --summary prints its layers too."
    )
    parser.add_argument(
        "--arch",
        default=ModelConfig.arch,
        choices=list(ARCHITECTURES),
        help="decoder, as train.py --arch (default: %(default)s)",
    )
    parser.add_argument(
        "--backbone", default=ModelConfig.backbone, help="any segmentation_models backbone (default: %(default)s)"
    )
    parser.add_argument(
        "--classes",
        type=positive_int,
        default=ModelConfig.classes,
        metavar="K",
        help="classes including the background: 1, a sigmoid; 2 or more, a softmax (default: %(default)s)",
    )
    parser.add_argument(
        "--image_size",
        type=image_size,
        default=384,
        help="side of the square input in pixels, for the output's shape (default: %(default)s)",
    )
    parser.add_argument("--summary", action="store_true", help="also print Keras' table of the layers")
    return parser.parse_args(argv)


def describe(args: argparse.Namespace) -> None:
    """Print what the network of the flags is."""
    model = build_model(args.backbone, "none", arch=args.arch, classes=args.classes)
    if args.summary:
        model.summary()
    trainable = sum(int(w.shape.num_elements()) for w in model.trainable_weights)
    total = trainable + sum(int(w.shape.num_elements()) for w in model.non_trainable_weights)
    size = args.image_size
    output = model.compute_output_shape((1, size, size, 3))
    print(
        f"{args.arch} on {args.backbone}, {args.classes} class{'es' if args.classes > 1 else ''}: {total:,} parameters "
        f"({trainable:,} trainable); input {size} x {size} x 3, output {' x '.join(map(str, output[1:]))}"
    )


def main(argv: Optional[Sequence[str]] = None) -> None:
    with exit_on_user_error():
        describe(model_args(argv))
