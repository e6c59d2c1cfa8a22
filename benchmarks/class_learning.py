"""Does train.py learn several classes, and does the INT8 export keep what it learned? Over seeds, on generated data.

    python benchmarks/class_learning.py --work work/class_learning [--seeds 1 2 3]

Generates a 3-class set (data_preparation.py --synthetic 48 --classes 3), trains resnet18 from scratch at 96 px for
12 epochs of 25 steps on the CPU for each seed, exports it as INT8 TFLite (calibrated on 50 training images) and
prints a row a seed: the best epoch's mean foreground val IoU, each class's, and the INT8 model's agreement with the
Keras model (the mean over foreground classes of the IoU of their labels). The suite's tests check the behaviour of
several classes on shorter runs; this script holds the figure they no longer assert (at least 0.8, and 0.95 for INT8).
"""

import argparse
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", required=True, type=Path, help="folder for the data and the runs (made if missing)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="(default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=12, help="(default: %(default)s)")
    parser.add_argument("--steps_per_epoch", type=int, default=25, help="(default: %(default)s)")
    return parser.parse_args()


def script(*args: str) -> str:
    """A script of the repository run to its end; its output, or SystemExit with its last lines."""
    done = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{' '.join(args[:1])} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout


def seed_row(data: Path, work: Path, seed: int, args: argparse.Namespace) -> dict:
    """Train, export and score one seed; a run already trained is not trained again."""
    run = work / f"seed{seed}"
    history = run / "tensorflow" / "logs" / "history.csv"
    start = time.perf_counter()
    if not history.exists():
        script("train.py", "--data_root", str(data), "--work_dir", str(run), "--device", "cpu", "--backbone",
               "resnet18", "--image_size", "96", "--batch_size", "8", "--encoder_weights", "none", "--mixed_precision",
               "false", "--epochs", str(args.epochs), "--steps_per_epoch", str(args.steps_per_epoch), "--seed",
               str(seed), "--overwrite")  # fmt: skip
    weights = run / "tensorflow" / "weights" / "best-weight_resnet18.h5"
    exported = script("predict.py", "--weights", str(weights), "--data_root", str(data), "--export", "tflite_int8",
                      "--calibration_images", "50", "--output", str(run / "export"))  # fmt: skip
    agreement = re.search(r"INT8 masks against the Keras model's on \d+ valid images: IoU ([0-9.]+)", exported)
    agreement = float(agreement[1])
    table = pd.read_csv(history)
    best = table.loc[table.val_iou.idxmax()]
    classes = {c.removeprefix("val_iou_"): best[c] for c in table.columns if c.startswith("val_iou_")}
    return {"seed": seed, "val_iou": best.val_iou, **classes, "int8_agreement": agreement,
            "minutes": (time.perf_counter() - start) / 60}  # fmt: skip


def main() -> None:
    args = parse_args()
    data = args.work / "data"
    if not (data / "csv_file" / "valid.csv").exists():
        script("data_preparation.py", "--data_root", str(data), "--synthetic", "48", "--classes", "3")
    rows = [seed_row(data, args.work, seed, args) for seed in args.seeds]
    table = pd.DataFrame(rows)
    print("| " + " | ".join(table.columns) + " |\n|" + " --- |" * len(table.columns))
    for row in rows:
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()) + " |")
    for column in ("val_iou", "int8_agreement"):
        values = table[column].tolist()
        spread = f", min {min(values):.3f}, max {max(values):.3f}" if len(values) > 1 else ""
        print(f"{column}: mean {statistics.mean(values):.3f}{spread} over {len(values)} seeds")


if __name__ == "__main__":
    main()
