"""Each training option against the defaults of the small-set command, by 5-fold cross-validation on the nails.

    python benchmarks/training_options_experiment.py --nails ../shared/data/nails --work work/options

Copies and prepares the nails as cross_validation_experiment.py does (39 training photos in the folds; the 13 valid
photos are not used here), then for each option trains the 5 folds of the small-set command with that one flag
changed (--backbone, efficientnetb0 unless given, from scratch at 128 px, batch 8, float32, --epochs x
--steps_per_epoch steps a fold, one seed) into WORK/<option>/folds and writes its cross-validation report
(predict.py --cv) to WORK/<option>/report. An option already reported is not trained again; one killed while
training continues (--resume).

The table compares each option's out-of-fold predictions (threshold 0.5, no post-processing) with the defaults' on
the same 39 photos: micro IoU, mean IoU over images, and the mean of the per-image IoU differences with its 95%
paired bootstrap interval. An option wins only where that interval lies above 0.
"""

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
from cross_validation_experiment import prepare, run  # also puts the repository on sys.path

# isort: split
from segtf.evaluation.scoring import bootstrap_interval, ratios

OPTIONS = {
    "defaults": [],
    "resnet18": ["--backbone", "resnet18"],
    "dice_bce": ["--loss", "dice_bce"],
    "lovasz": ["--loss", "lovasz"],
    "any_orientation": ["--augment", "any_orientation"],
    "ema": ["--ema", "0.98"],  # averages about the last 50 of 300 steps; the start weighs 0.98^300 = 0.2%
    "unetplusplus": ["--arch", "unetplusplus"],
    "deeplabv3plus": ["--arch", "deeplabv3plus"],
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nails", required=True, type=Path, help="the nails folder (images/, labels/); only read")
    parser.add_argument("--work", required=True, type=Path, help="folder for the data copy, the folds and reports")
    parser.add_argument("--options", nargs="+", default=list(OPTIONS), choices=list(OPTIONS),
                        help="options to run, in order (default: all)")  # fmt: skip
    parser.add_argument("--backbone", default="efficientnetb0", help="of every option (default: %(default)s)")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=2, help="of each fold (default: %(default)s)")
    parser.add_argument("--steps_per_epoch", type=int, default=150, help="(default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="of every fold's training (default: %(default)s)")
    return parser.parse_args()


def train_option(name: str, data: Path, args: argparse.Namespace) -> None:
    """Trains the 5 folds of one option and writes their report, unless already reported."""
    folder = args.work / name
    if (folder / "report" / "metrics.csv").exists():
        return
    resume = ["--resume"] if (folder / "folds").exists() else []
    start = time.perf_counter()
    run([sys.executable, "train.py", "--data_root", str(data), "--work_dir", str(folder / "folds"), "--device", "cpu",
         "--backbone", args.backbone, "--image_size", str(args.size), "--batch_size", "8", "--encoder_weights",
         "none", "--mixed_precision", "False", "--epochs", str(args.epochs), "--steps_per_epoch",
         str(args.steps_per_epoch), "--seed", str(args.seed), "--folds", "5", *OPTIONS[name], *resume])  # fmt: skip
    (folder / "minutes.txt").write_text(f"{(time.perf_counter() - start) / 60:.1f}\n")
    run([sys.executable, "predict.py", "--cv", str(folder / "folds"), "--output", str(folder / "report")])


def compare(names: list[str], work: Path) -> pd.DataFrame:
    """A row an option: its out-of-fold scores and the paired difference of per-image IoU from the defaults'."""
    reports = {name: pd.read_csv(work / name / "report" / "metrics.csv").set_index("image") for name in names}
    baseline = reports["defaults"]
    rows = []
    for name, table in reports.items():
        difference = table.iou - baseline.iou.reindex(table.index)
        low, high = bootstrap_interval(difference)
        minutes = work / name / "minutes.txt"
        rows.append({"option": " ".join(OPTIONS[name]) or "defaults",
                     "micro_iou": round(ratios(table.tp.sum(), table.fp.sum(), table.fn.sum())["iou"], 4),
                     "mean_iou": round(table.iou.mean(), 4), "difference": round(difference.mean(), 4),
                     "difference_95": f"{low:+.3f} to {high:+.3f}", "wins": low > 0,
                     "minutes": minutes.read_text().strip() if minutes.exists() else ""})  # fmt: skip
    return pd.DataFrame(rows)


def main() -> None:
    args = parse_args()
    data = args.work / "data"
    prepare(args.nails, data)
    names = ["defaults", *(name for name in args.options if name != "defaults")]
    for name in names:
        train_option(name, data, args)
        print(f"{name}: reported", flush=True)
    print(compare(names, args.work).to_string(index=False))


if __name__ == "__main__":
    main()
