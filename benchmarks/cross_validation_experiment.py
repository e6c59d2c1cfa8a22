"""Cross-validation of the small-set command on the nails: 5 folds over the training photos, the post-processing
chosen on their out-of-fold predictions, and the ensemble of the folds against each fold on the test photos.

    python benchmarks/cross_validation_experiment.py --nails ../shared/data/nails --work work/cv

Copies the nails into WORK/data and prepares them with the defaults (the hashed split: 39 train, 13 valid, the
valid photos left untouched as the test set), then:
  1. train.py --folds 5 (efficientnetb0 from scratch, batch 8, float32, --steps steps a fold), into WORK/folds;
     run again, it continues (--resume);
  2. predict.py --cv: the cross-validation report, and the post-processing chosen on it;
  3. predict.py on the test photos: each fold's best weights, the ensemble of the 5 without post-processing,
     and with it. Each scored at the photos' own size, from all their pixels (micro IoU) and per image.
"""

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from segtf.evaluation.scoring import bootstrap_interval, ratios  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nails", required=True, type=Path, help="the nails folder (images/, labels/); only read")
    parser.add_argument("--work", required=True, type=Path, help="folder for the data copy, the folds and scores")
    parser.add_argument("--size", type=int, default=256, help="image side in pixels (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=200, help="training steps of each fold (default: %(default)s)")
    parser.add_argument("--folds", type=int, default=5, help="(default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="of every fold's training (default: %(default)s)")
    return parser.parse_args()


def run(command: list[str]) -> str:
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"failed: {' '.join(command)}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def prepare(nails: Path, data: Path) -> None:
    if not (data / "csv_file" / "valid.csv").exists():
        shutil.copytree(nails, data, dirs_exist_ok=True)
        print(run([sys.executable, "data_preparation.py", "--data_root", str(data)]))


def train_folds(data: Path, folds_dir: Path, args: argparse.Namespace) -> float:
    """Minutes of training all folds (this call's)."""
    resume = ["--resume"] if (folds_dir / "fold_0").exists() else []
    start = time.perf_counter()
    run([sys.executable, "train.py", "--data_root", str(data), "--work_dir", str(folds_dir), "--device", "cpu",
         "--backbone", "efficientnetb0", "--image_size", str(args.size), "--batch_size", "8", "--encoder_weights",
         "none", "--mixed_precision", "False", "--epochs", "2", "--steps_per_epoch", str(args.steps // 2),
         "--seed", str(args.seed), "--folds", str(args.folds), *resume])  # fmt: skip
    return (time.perf_counter() - start) / 60


def test_scores(name: str, weights: list[Path], data: Path, out: Path, postprocessing: str) -> dict:
    """predict.py's scores of weights (an ensemble when several) on the test photos."""
    run([sys.executable, "predict.py", "--weights", *map(str, weights), "--data_root", str(data), "--split", "valid",
         "--postprocessing", postprocessing, "--output", str(out)])  # fmt: skip
    table = pd.read_csv(out / "metrics.csv")
    low, high = bootstrap_interval(table.iou)
    micro = ratios(int(table.tp.sum()), int(table.fp.sum()), int(table.fn.sum()))
    return {"models": name, "micro_iou": round(micro["iou"], 4), "micro_f1": round(micro["f1"], 4),
            "mean_iou": round(table.iou.mean(), 4), "mean_iou_95": f"{low:.3f} to {high:.3f}"}  # fmt: skip


def main() -> None:
    args = parse_args()
    data, folds_dir = args.work / "data", args.work / "folds"
    prepare(args.nails, data)
    minutes = train_folds(data, folds_dir, args)
    print(f"{args.folds} folds trained in {minutes:.1f} minutes")
    print(run([sys.executable, "predict.py", "--cv", str(folds_dir), "--output", str(args.work / "cv_report")]))
    rows = []
    for k in range(args.folds):
        weights = sorted((folds_dir / f"fold_{k}" / "tensorflow" / "weights").glob("best-weight_*.h5"))
        rows.append(test_scores(f"fold {k}", weights, data, args.work / "test" / f"fold_{k}", "none"))
    rows.append(test_scores("ensemble", [folds_dir], data, args.work / "test" / "ensemble", "none"))
    rows.append(
        test_scores("ensemble, post-processed", [folds_dir], data, args.work / "test" / "ensemble_post", "auto")
    )
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    singles = table[table.models.str.startswith("fold")]
    print(f"single folds: micro IoU mean {singles.micro_iou.mean():.4f}, min {singles.micro_iou.min():.4f}, "
          f"max {singles.micro_iou.max():.4f}")  # fmt: skip
    print(re.sub(r"\s+", " ", (folds_dir / "postprocessing.json").read_text())[:600])


if __name__ == "__main__":
    main()
