"""Whole images resized against patches at scale 1 and 0.5, the same steps, several seeds, on the nails.

    python benchmarks/patch_experiment.py --nails ../shared/data/nails --work work/patches

Copies the nails into WORK/data in the 42 train / 10 valid split of the earlier experiments
(docs/experiments.md), prepares them, and trains each variant once per seed from scratch
(efficientnetb0, batch 8, 2 epochs of --steps / 2 steps, the same cosine schedule):

  whole     every image squashed to --size x --size, as before issue 17
  patch1    --size x --size crops of the photos at their own resolution
  patch0.5  --size x --size crops of the photos at half their sides

Each run is then scored by predict.py with its last weights on the 10 validation photos at their
own resolution (whole: resized back up; patches: sliding windows), from all pixels together. The
table gives that IoU, the val IoU of the run's own history and its seconds a training step (the
second epoch, the first one also compiles).
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from segtf.evaluation.scoring import ratios  # noqa: E402

# the 10 validation photos of the seeded random split before commit 83377ff, used by every earlier experiment
VALID = {
    "3493127D-7B19-4E50-94AE-2401BD2A91C8", "4252e46c-e40f-4543-91ab-031917d46c5c",
    "4c4a6402-e402-11e8-97db-0242ac1c0002", "869CDA2E-8251-4880-89D6-9409CBC416F3",
    "ABD5AB5C-E7CA-4420-A983-2161029ECC9E", "cc25f453-04ca-4c24-92bc-f26c5a94e78c",
    "d60f3ecc-db67-11e8-9658-0242ac1c0002", "d639e532-db67-11e8-9658-0242ac1c0002",
    "da236f3a-8c82-4c64-9a7d-9b950fd8b47e", "feb2c029-b89c-4ce5-b208-db2114516a40",
}  # fmt: skip
VARIANTS = {
    "whole": lambda size: ["--image_size", str(size)],
    "patch1": lambda size: ["--patch_size", str(size), "--scale", "1"],
    "patch0.5": lambda size: ["--patch_size", str(size), "--scale", "0.5"],
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nails", required=True, type=Path, help="the nails folder (images/, labels/); only read")
    parser.add_argument("--work", required=True, type=Path, help="folder for the data copy and the runs")
    parser.add_argument("--size", type=int, default=128, help="image and patch side in pixels (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=250, help="training steps of each run (default: %(default)s)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="(default: %(default)s)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    return parser.parse_args()


def split_copy(nails: Path, data: Path) -> None:
    """nails/images and nails/labels copied into data/{train,valid}/{images,masks}/, then prepared."""
    for image in sorted((nails / "images").iterdir()):
        split = "valid" if image.stem in VALID else "train"
        for source, kind in ((image, "images"), (nails / "labels" / image.name, "masks")):
            (data / split / kind).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, data / split / kind / source.name)
    run([sys.executable, "data_preparation.py", "--data_root", str(data)])


def run(command: list[str]) -> str:
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"failed: {' '.join(command)}\n{result.stderr[-3000:]}")
    return result.stdout


def train_and_score(data: Path, work: Path, variant: str, seed: int, args: argparse.Namespace) -> dict:
    flags = ["--device", "cpu", "--backbone", "efficientnetb0", "--batch_size", "8", "--encoder_weights", "none",
             "--mixed_precision", "False", "--epochs", "2", "--steps_per_epoch", str(args.steps // 2),
             "--seed", str(seed), *VARIANTS[variant](args.size)]  # fmt: skip
    start = time.perf_counter()
    out = run([sys.executable, "train.py", "--data_root", str(data), "--work_dir", str(work), "--overwrite", *flags])
    minutes = (time.perf_counter() - start) / 60
    per_epoch = float(re.search(r"([\d.]+) s per epoch of training", out).group(1))
    history = pd.read_csv(work / "tensorflow" / "logs" / "history.csv")
    weights = work / "tensorflow" / "weights" / "last-weight_efficientnetb0.h5"
    run([sys.executable, "predict.py", "--weights", str(weights), "--data_root", str(data), "--split", "valid",
         "--output", str(work / "scores")])  # fmt: skip
    table = pd.read_csv(work / "scores" / "metrics.csv")
    micro = ratios(int(table.tp.sum()), int(table.fp.sum()), int(table.fn.sum()))["iou"]
    return {"variant": variant, "seed": seed, "iou_full_resolution": round(micro, 4),
            "history_val_iou": round(float(history.val_iou.iloc[-1]), 4),
            "s_per_step": round(per_epoch / (args.steps // 2), 3), "minutes": round(minutes, 1)}  # fmt: skip


def main() -> None:
    args = parse_args()
    data = args.work / "data"
    if not (data / "csv_file" / "valid.csv").exists():
        split_copy(args.nails, data)
    rows = []
    for seed in args.seeds:
        for variant in args.variants:
            rows.append(train_and_score(data, args.work / f"{variant}-seed{seed}", variant, seed, args))
            print(json.dumps(rows[-1]), flush=True)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    print(table.groupby("variant")[["iou_full_resolution", "s_per_step"]].agg(["mean", "min", "max"]).to_string())


if __name__ == "__main__":
    main()
