"""Training images/s fed by the real loader and by the same batches already in memory.

    python benchmarks/train_benchmark.py --data_root DATA

For one model and batch shape, in float32, float16 and bfloat16, with and without jit_compile
(XLA), `fit` runs --steps steps twice over: fed by dataloader.build_dataset, then by batches
taken from it beforehand and held in memory. Their ratio is the input stall: 1.0 means the loader
keeps up, 2.0 means the model waits half the time for data. Each figure is the second of two
epochs of --steps steps, the first one tracing and compiling. The speed-up is a precision's images/s from memory
over float32's with the same XLA setting. DATA must be prepared.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segtf.cli.flags import image_size, positive_int, str2bool  # noqa: E402
from segtf.dataset import pipeline as dataloader  # noqa: E402
from segtf.dataset.input_scaling import batch_dtype  # noqa: E402
from segtf.modeling.network import create_model  # noqa: E402
from segtf.modeling.precision import PRECISIONS  # noqa: E402
from segtf.training.callbacks import epoch_timer  # noqa: E402

import tensorflow as tf  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_root", required=True, metavar="DATA", help="a prepared dataset")
    parser.add_argument("--backbone", default="efficientnetb4", help="(default: %(default)s)")
    parser.add_argument(
        "--image_size", type=image_size, default=384, help="pixels, a multiple of 32 (default: %(default)s)"
    )
    parser.add_argument("--batch_size", type=positive_int, default=8, help="(default: %(default)s)")
    parser.add_argument("--steps", type=positive_int, default=10, help="steps timed per case (default: %(default)s)")
    parser.add_argument(
        "--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS), help="(default: %(default)s)"
    )
    parser.add_argument(
        "--jit_compile", nargs="+", type=str2bool, default=[False, True], help="XLA off, on or both (default: both)"
    )
    return parser.parse_args()


def images_per_second(model: tf.keras.Model, batches: tf.data.Dataset, steps: int, batch_size: int) -> float:
    seconds = []
    model.fit(batches, epochs=2, steps_per_epoch=steps, callbacks=[epoch_timer(seconds)], verbose=0)
    return steps * batch_size / seconds[-1]


def measure(args: argparse.Namespace, precision: str, jit_compile: bool) -> tuple[float, float]:
    """(images/s fed by the loader, images/s fed from memory) for one precision and XLA setting."""
    csv_paths = dataloader.train_csvs(Path(args.data_root), balance=False)
    dtype = batch_dtype(precision)
    loader, _ = dataloader.build_dataset(csv_paths, args.image_size, args.batch_size, training=True, dtype=dtype)
    in_memory = tf.data.Dataset.from_tensor_slices(tuple(tf.stack(t) for t in zip(*loader.take(args.steps))))
    in_memory = in_memory.repeat().prefetch(tf.data.AUTOTUNE)
    model = create_model(args.backbone, "none", jit_compile=jit_compile, precision=precision)
    return (
        images_per_second(model, loader, args.steps, args.batch_size),
        images_per_second(model, in_memory, args.steps, args.batch_size),
    )


def main() -> None:
    args = parse_args()
    devices = ", ".join(d.name for d in tf.config.list_logical_devices() if d.device_type in ("GPU", "CPU"))
    print(f"{args.backbone}, {args.image_size}px, batch {args.batch_size}, {args.steps} timed steps, on {devices}")
    print(f"{'precision':<10}{'jit':<6}{'loader img/s':>14}{'memory img/s':>14}{'stall':>8}{'speed-up':>10}")
    for jit_compile in args.jit_compile:
        float32_rate = None
        for precision in args.precisions:
            try:
                from_loader, from_memory = measure(args, precision, jit_compile)
            except Exception as error:  # XLA does not compile every model on every device: say so, go on
                reason = " ".join(str(error).split())[:90]
                print(f"{precision:<10}{str(jit_compile):<6}  failed: {type(error).__name__}: {reason}")
                continue
            float32_rate = from_memory if precision == "float32" else float32_rate
            speed_up = f"{from_memory / float32_rate:>10.2f}" if float32_rate else ""
            print(
                f"{precision:<10}{str(jit_compile):<6}{from_loader:>14.1f}{from_memory:>14.1f}"
                f"{from_memory / from_loader:>8.2f}{speed_up}",
                flush=True,
            )


if __name__ == "__main__":
    main()
