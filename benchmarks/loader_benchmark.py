"""Images/s and peak memory of six ways to feed the same samples, measured in one run.

    python benchmarks/loader_benchmark.py --data_root DATA --samples 400

DATA must be prepared (data_preparation.py). Its pairs are listed again under distinct names
(hard links, or copies across file systems) in a temporary folder until there are --samples of
them, and each variant reads those, with the original blog's train transform at --image_size:

  a  a keras.utils.Sequence read in a loop, one thread (the usual Keras recipe)
  b  the original blog's tf.data recipe: decode, shuffle(100000) of decoded images, a numpy_function that
     builds its Compose on every call and does the /255 with TensorFlow inside, prefetch before batch
  c  this repository's loader (dataloader.build_dataset) with its default settings (BMP cache)
  d  c's ceiling: one thread's cost per sample of c's work, times the cores
  e  c with --cache_format tfrecord: TFRecord shards of JPEG images and PNG masks
  f  c with --patch_size --image_size --scale 1: crops of that size, only their rows read, from .npy
     copies of the photos at their own resolution, a third of them centred on foreground (the original blog's
     transform on the crop)

Each variant runs in a subprocess of its own, so that its peak memory (max RSS) is its own. The
rate is that of the last of --epochs epochs, each read the way Keras' fit reads it: the first
epoch pays for start-up (and, for c, e and f, the one-time cache, reported apart). The cache's
bytes a sample are the sizes of all the files in its folder over the number of samples.
"""

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segtf.cli.flags import positive_int  # noqa: E402
from segtf.dataset.layout import PNG_FOLDER, split_csv  # noqa: E402

VARIANTS = {
    "a": "keras.utils.Sequence loop",
    "b": "blog tf.data recipe",
    "c": "this loader",
    "d": "ceiling: 1 thread x cores",
    "e": "this loader, TFRecord cache",
    "f": "this loader, patches at scale 1",
}
CACHE_FORMATS = {"c": "bmp", "e": "tfrecord", "f": "bmp"}
SCALES = {"f": 1.0}  # the variants that train on patches of the photos rescaled by this, not on whole images


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data_root", required=True, metavar="DATA", help="a prepared dataset")
    parser.add_argument("--samples", type=positive_int, default=400, help="samples listed (default: %(default)s)")
    parser.add_argument("--image_size", type=int, default=384, help="pixels (default: %(default)s)")
    parser.add_argument("--batch_size", type=positive_int, default=32, help="(default: %(default)s)")
    parser.add_argument(
        "--epochs", type=positive_int, default=2, help="epochs read; the last is timed (default: %(default)s)"
    )
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), help="(default: all)")
    parser.add_argument("--run_variant", choices=list(VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--bench_root", help=argparse.SUPPRESS)
    return parser.parse_args()


def link_or_copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:
        target.write_bytes(source.read_bytes())


def list_samples(data_root: Path, bench_root: Path, count: int) -> None:
    """Write bench_root/csv_file/train.csv listing `count` distinct files, cycling over DATA's pairs."""
    real = pd.concat([pd.read_csv(split_csv(data_root, split)) for split in ("train", "valid")], ignore_index=True)
    rows = []
    for i in range(count):
        row = real.iloc[i % len(real)].copy()
        for column in ("image", "mask"):
            relative = f"{PNG_FOLDER}/{column}s/{i:06d}.png"
            link_or_copy(data_root / row[column], bench_root / relative)
            row[column] = relative
        rows.append(row)
    csv_path = split_csv(bench_root, "train")
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(csv_path, index=False)


def seed_recipe(table: pd.DataFrame, size: int, batch_size: int):
    """The original blog's pipeline, faults included; kept here only as the baseline."""
    from segtf.dataset.augmentation import train_transform

    import tensorflow as tf

    def decode(image_path, mask_path):
        image = tf.io.decode_png(tf.io.read_file(image_path), channels=3)
        return image, tf.io.decode_png(tf.io.read_file(mask_path), channels=1)

    def augment(image, mask):
        augmented = train_transform(size)(image=image, mask=mask)
        return tf.cast(augmented["image"], tf.float32) / 255, tf.cast(augmented["mask"], tf.float32) / 255

    def tf_augment(image, mask):
        image, mask = tf.numpy_function(augment, [image, mask], [tf.float32, tf.float32])
        image.set_shape((size, size, 3))
        mask.set_shape((size, size, 1))
        return image, mask

    calls = os.cpu_count() // 1  # cpu_count // number_of_gpus, one device here
    return (
        tf.data.Dataset.from_tensor_slices((table.image.to_numpy(str), table["mask"].to_numpy(str)))
        .map(decode, num_parallel_calls=calls)
        .shuffle(100000)
        .map(tf_augment, num_parallel_calls=calls)
        .prefetch(tf.data.AUTOTUNE)
        .batch(batch_size)
    )


def sequence_batches(table: pd.DataFrame, size: int, batch_size: int):
    """A keras.utils.Sequence as such loaders are usually written: OpenCV reads, transform, stack."""
    from segtf.dataset.augmentation import train_transform

    import tensorflow as tf

    transform = train_transform(size)

    class PairSequence(tf.keras.utils.Sequence):
        def __len__(self):
            return math.ceil(len(table) / batch_size)

        def __getitem__(self, index):
            images, masks = [], []
            for row in table.iloc[index * batch_size : (index + 1) * batch_size].itertuples():
                image = cv2.cvtColor(cv2.imread(row.image), cv2.COLOR_BGR2RGB)
                augmented = transform(image=image, mask=cv2.imread(row.mask, cv2.IMREAD_GRAYSCALE))
                images.append(augmented["image"])
                masks.append(augmented["mask"])
            return np.stack(images).astype(np.float32) / 255, (np.stack(masks)[..., None] > 0).astype(np.float32)

    return PairSequence()


def time_epochs(read_epoch, epochs: int) -> tuple[float, int]:
    """Seconds and samples of the last epoch."""
    for _ in range(epochs):
        start = time.perf_counter()
        samples = read_epoch()
        seconds = time.perf_counter() - start
    return seconds, samples


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def run_variant(variant: str, bench_root: Path, args: argparse.Namespace) -> dict:
    """Measure one variant in this process; returns images/s, peak MiB and any extra figures."""
    from segtf.dataset import pipeline as dataloader
    from segtf.dataset.augmentation import augment_function, train_transform
    from segtf.dataset.disk_cache import bmp_folder
    from segtf.dataset.input_scaling import to_model_input
    from segtf.dataset.patches import Patches, patch_folder
    from segtf.dataset.tfrecord_cache import tfrecord_folder

    import tensorflow as tf

    csv_path = split_csv(bench_root, "train")
    table = dataloader.read_samples(csv_path)
    extra = {}
    if variant == "a":
        sequence = sequence_batches(table, args.image_size, args.batch_size)
        seconds, samples = time_epochs(lambda: sum(len(sequence[i][0]) for i in range(len(sequence))), args.epochs)
    elif variant == "b":
        dataset = seed_recipe(table, args.image_size, args.batch_size)
        seconds, samples = time_epochs(lambda: sum(len(images) for images, _ in dataset), args.epochs)
    elif variant in CACHE_FORMATS:
        cache_format, scale = CACHE_FORMATS[variant], SCALES.get(variant)
        start = time.perf_counter()
        patches = Patches(args.image_size, scale) if scale else None
        if cache_format == "bmp":
            dataloader.load_samples([csv_path], dataloader.copy_maker(args.image_size, True, patches))
        else:
            dataloader.record_files([csv_path], args.image_size)
        extra["cache_once_s"] = round(time.perf_counter() - start, 1)
        if scale:
            cache = patch_folder(bench_root, scale)
        else:
            cache = (bmp_folder if cache_format == "bmp" else tfrecord_folder)(bench_root, args.image_size)
        extra["cache_bytes_per_sample"] = folder_bytes(cache) / len(table)
        dataset, n = dataloader.build_dataset(
            [csv_path], args.image_size, args.batch_size, training=True, cache_format=cache_format, patches=patches
        )
        steps = math.ceil(n / args.batch_size)
        batches = iter(dataset)
        seconds, samples = time_epochs(lambda: sum(len(next(batches)[0]) for _ in range(steps)), args.epochs)
    else:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
        cv2.setNumThreads(1)
        resized = dataloader.load_samples([csv_path], dataloader.copy_maker(args.image_size, True, None))[0][0]
        load = augment_function(train_transform(args.image_size), args.image_size, seed=0)
        rows = list(resized.itertuples())[: min(len(resized), 200)]

        def read_epoch():
            for index, row in enumerate(rows):
                encoded = dataloader.read_pair(tf.constant(row.image), tf.constant(row.mask))
                image, mask = load(tf.constant(index, tf.int64), encoded)
                to_model_input(image[None]), tf.cast(mask[None] > 0, tf.float32)
            return len(rows)

        seconds, samples = time_epochs(read_epoch, args.epochs)
        seconds /= len(os.sched_getaffinity(0))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"images_per_s": samples / seconds, "peak_mib": peak_mib, **extra}


def measure_in_subprocess(variant: str, bench_root: Path, argv: list[str]) -> dict:
    command = [sys.executable, __file__, *argv, "--run_variant", variant, "--bench_root", str(bench_root)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(f"variant {variant} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    args = parse_args()
    if args.run_variant:
        print(json.dumps(run_variant(args.run_variant, Path(args.bench_root), args)))
        return
    data_root = Path(args.data_root)
    train_csv = split_csv(data_root, "train")
    if not train_csv.exists():
        sys.exit(f"error: {train_csv} not found: run data_preparation.py --data_root {data_root}")
    cores = len(os.sched_getaffinity(0))
    print(f"{args.samples} samples, {args.image_size}px, batch {args.batch_size}, train transform, {cores} cores")
    with tempfile.TemporaryDirectory(prefix="loader_benchmark_") as folder:
        list_samples(data_root, Path(folder), args.samples)
        try:
            results = {v: measure_in_subprocess(v, Path(folder), sys.argv[1:]) for v in args.variants}
        except RuntimeError as error:
            sys.exit(f"error: {error}")
    print_table(results)


def print_table(results: dict) -> None:
    print(f"{'variant':<32}{'images/s':>10}{'peak MiB':>10}{'cache bytes/sample':>20}")
    for variant, result in results.items():
        peak = f"{result['peak_mib']:.0f}" if variant != "d" else "-"
        cache = f"{result['cache_bytes_per_sample']:.0f}" if variant in CACHE_FORMATS else "-"
        print(f"{variant} {VARIANTS[variant]:<30}{result['images_per_s']:>10.1f}{peak:>10}{cache:>20}")
    for variant, what in (("c", "resized copies"), ("e", "TFRecord shards"), ("f", "copies at scale 1")):
        if variant in results:
            print(f"{variant}'s one-time {what}: {results[variant]['cache_once_s']} s (not in its rate)")
    if "c" in results:
        c = results["c"]["images_per_s"]
        ratios = [f"c/{v}={c / results[v]['images_per_s']:.2f}" for v in ("a", "b", "d") if v in results]
        print("ratios " + " ".join(ratios) + f" peak_mib={results['c']['peak_mib']:.0f}")
    for name in ("e", "f"):
        if name in results:
            result = results[name]
            ratios = [
                f"{name}/{v}={result['images_per_s'] / results[v]['images_per_s']:.2f}"
                for v in ("b", "c")
                if v in results
            ]
            if "c" in results:
                bytes_ratio = result["cache_bytes_per_sample"] / results["c"]["cache_bytes_per_sample"]
                ratios.append(f"{name}_bytes/c_bytes={bytes_ratio:.3f}")
            print("ratios " + " ".join(ratios) + f" peak_mib={result['peak_mib']:.0f}")


if __name__ == "__main__":
    main()
