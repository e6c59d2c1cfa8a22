"""Each decoder against the Unet on thin structures: generated curves 2 or 3 px wide, trained and scored per image.

    python benchmarks/thin_decoders_experiment.py --work work/thin_decoders

Generates plan_experiment.py's thin set at --side px (48 training pairs, 6 validation, 30 test; the same images for
every architecture and seed) and prepares it. For each seed and --arch, trains the small-set command with that arch
(resnet18 from scratch at --side px, whole images, batch 8, float32, --epochs x --steps_per_epoch steps) into
WORK/<arch>_seed<S>, and scores its best weights on the test pairs with predict.py at threshold 0.5, no
post-processing. A run already scored is not run again.

The table: each architecture's micro IoU and mean IoU over the test images (the mean over seeds), and the mean of
its per-image IoU differences from the Unet of the same seed, over images and seeds, with their 95% bootstrap
interval.
"""

import argparse
import functools
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from cross_validation_experiment import run  # also puts the repository on sys.path
from plan_experiment import thin_sample, write_pairs

# isort: split
from segtf.evaluation.scoring import bootstrap_interval, ratios


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", required=True, type=Path, help="folder for the data, the runs and their scores")
    parser.add_argument("--archs", nargs="+", default=["unet", "unetplusplus", "deeplabv3plus"],
                        help="as train.py --arch; the Unet is always run, as the reference (default: %(default)s)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1],
                        help="training seeds, each run for every arch (default: %(default)s)")
    parser.add_argument("--side", type=int, default=128, help="of the generated images, in pixels (default: 128)")
    parser.add_argument("--epochs", type=int, default=2, help="of each run (default: %(default)s)")
    parser.add_argument("--steps_per_epoch", type=int, default=150, help="batches an epoch (default: %(default)s)")
    return parser.parse_args()


def make_data(work: Path, side: int) -> tuple[Path, Path]:
    """The prepared training set and the test folder (images/, masks/), generated once."""
    data, test = work / "data", work / "test"
    if not (data / "csv_file" / "valid.csv").exists():
        sample = functools.partial(thin_sample, side=side)
        write_pairs(data / "train", 48, seed=1, sample=sample)
        write_pairs(data / "valid", 6, seed=2, sample=sample)
        write_pairs(test, 30, seed=3, sample=sample)
        print(run([sys.executable, "data_preparation.py", "--data_root", str(data)]))
    return data, test


def train_and_score(arch: str, seed: int, data: Path, test: Path, args: argparse.Namespace) -> pd.DataFrame:
    """The run's per-image scores on the test pairs."""
    folder = args.work / f"{arch}_seed{seed}"
    scores = folder / "test" / "metrics.csv"
    if not scores.exists():
        run([sys.executable, "train.py", "--data_root", str(data), "--work_dir", str(folder), "--device", "cpu",
             "--arch", arch, "--backbone", "resnet18", "--image_size", str(args.side), "--batch_size", "8",
             "--encoder_weights", "none", "--mixed_precision", "False", "--epochs", str(args.epochs),
             "--steps_per_epoch", str(args.steps_per_epoch), "--seed", str(seed), "--overwrite"])  # fmt: skip
        weights = folder / "tensorflow" / "weights" / "best-weight_resnet18.h5"
        run([sys.executable, "predict.py", "--weights", str(weights),
             "--input", str(test / "images"), "--masks", str(test / "masks"), "--postprocessing", "none",
             "--output", str(folder / "test")])  # fmt: skip
    return pd.read_csv(scores).assign(arch=arch, seed=seed)


def compare(table: pd.DataFrame) -> pd.DataFrame:
    """A row an architecture: its scores, and its per-image difference from the Unet's of the same seed."""
    unet = table[table.arch == "unet"].set_index(["seed", "image"]).iou
    rows = []
    for arch, runs in table.groupby("arch", sort=False):
        micro = np.mean([ratios(r.tp.sum(), r.fp.sum(), r.fn.sum())["iou"] for _, r in runs.groupby("seed")])
        difference = runs.set_index(["seed", "image"]).iou - unet
        low, high = bootstrap_interval(difference.dropna())
        rows.append({"arch": arch, "seeds": runs.seed.nunique(), "micro_iou": round(micro, 4),
                     "mean_iou": round(runs.iou.mean(), 4), "difference": round(difference.mean(), 4),
                     "difference_95": f"{low:+.3f} to {high:+.3f}"})  # fmt: skip
    return pd.DataFrame(rows)


def main() -> None:
    args = parse_args()
    data, test = make_data(args.work, args.side)
    archs = ["unet", *(arch for arch in args.archs if arch != "unet")]
    tables = []
    for seed in args.seeds:
        for arch in archs:
            tables.append(train_and_score(arch, seed, data, test, args))
            print(f"{arch} seed {seed}: scored", flush=True)
    print(compare(pd.concat(tables)).to_string(index=False))


if __name__ == "__main__":
    main()
