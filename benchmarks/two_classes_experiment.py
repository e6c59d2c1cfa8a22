"""A softmax over 2 classes (background and nail) against the binary sigmoid on the nails, in the same steps.

    python benchmarks/two_classes_experiment.py --nails ../shared/data/nails --work work/two_classes

Copies the nails twice and prepares them with the defaults (binary masks) and with --classes 2 (label masks 0 and 1,
read by the binary rules: the same pixels), which split them alike. Then, for each seed, trains the small-set
command (from scratch, float32) on each copy into WORK/<kind>/seed<N>, and scores its best weights with predict.py on
the valid photos at their own size: the nail's micro IoU. A run already scored is not trained again.
"""

import argparse
import shutil
import statistics
import sys
from pathlib import Path

import pandas as pd
from cross_validation_experiment import run  # also puts the repository on sys.path

# isort: split
from segtf.evaluation.scoring import ratios

KINDS = {"binary": [], "two_classes": ["--classes", "2"]}


def parse_args(doc: str = __doc__) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--nails", required=True, type=Path, help="the nails folder (images/, labels/); only read")
    parser.add_argument("--work", required=True, type=Path, help="folder for the data copies, runs and scores")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="(default: %(default)s)")
    parser.add_argument("--backbone", default="resnet18", help="(default: %(default)s)")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=2, help="(default: %(default)s)")
    parser.add_argument("--steps_per_epoch", type=int, default=150, help="(default: %(default)s)")
    return parser.parse_args()


def prepare(nails: Path, data: Path, flags: list[str]) -> None:
    if not (data / "csv_file" / "valid.csv").exists():
        shutil.copytree(nails, data, dirs_exist_ok=True)
        print(run([sys.executable, "data_preparation.py", "--data_root", str(data), *flags]))


def nail_iou(kind: str, seed: int, data: Path, args: argparse.Namespace, *flags: str) -> float:
    """The best weights' micro IoU of the nail on the valid photos, training the run first if needed (in float32,
    unless flags say otherwise)."""
    folder = args.work / kind / f"seed{seed}"
    scores = folder / "scores" / "metrics.csv"
    if not scores.exists():
        run([sys.executable, "train.py", "--data_root", str(data), "--work_dir", str(folder), "--device", "cpu",
             "--backbone", args.backbone, "--image_size", str(args.size), "--batch_size", "8", "--encoder_weights",
             "none", "--mixed_precision", "False", "--epochs", str(args.epochs), "--steps_per_epoch",
             str(args.steps_per_epoch), "--seed", str(seed), "--overwrite", *flags])  # fmt: skip
        weights = folder / "tensorflow" / "weights" / f"best-weight_{args.backbone}.h5"
        run([sys.executable, "predict.py", "--weights", str(weights), "--data_root", str(data), "--split", "valid",
             "--output", str(folder / "scores")])  # fmt: skip
    table = pd.read_csv(scores)
    if "class" in table:
        table = table[table["class"] == "class_1"]
    return ratios(table.tp.sum(), table.fp.sum(), table.fn.sum())["iou"]


def main() -> None:
    args = parse_args()
    results = {}
    for kind, flags in KINDS.items():
        data = args.work / kind / "data"
        prepare(args.nails, data, flags)
        results[kind] = [nail_iou(kind, seed, data, args) for seed in args.seeds]
        print(f"{kind}: " + ", ".join(f"seed {s} {iou:.4f}" for s, iou in zip(args.seeds, results[kind])), flush=True)
    for kind, ious in results.items():
        spread = f" (min {min(ious):.4f}, max {max(ious):.4f})" if len(ious) > 1 else ""
        print(f"{kind}: nail micro IoU mean {statistics.mean(ious):.4f}{spread}")
    gap = statistics.mean(results["two_classes"]) - statistics.mean(results["binary"])
    print(f"two classes minus binary: {gap:+.4f}")


if __name__ == "__main__":
    main()
