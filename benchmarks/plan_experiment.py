"""The plan against hand-chosen settings at equal time: each arm trains with the same --time_budget, over seeds.

    NAILS_DIR=../shared/data/nails python benchmarks/plan_experiment.py --work /tmp/planexp [--minutes 5]

Three sets, each stressing a rule of the plan (docs/plan.md):

  thin   generated: thin dark curves (2-3 px) on 512 px noisy textured photos with dark blots that are not
         mask; 48 training and 6 validation pairs, scored on 16 more. The plan takes 256 px patches at full
         resolution; by hand, whole images squashed to 384 (the plain size) or whole at 512 (their own size)
  blobs  generated: the demo's nail-like ellipses on 96-160 px photos (data_preparation.py --synthetic 150),
         scored on 60 more. The plan takes whole images at their own size; by hand, the plain 384
  nails  the real nails (NAILS_DIR) in data_preparation.py's seeded split, scored on its validation photos. The
         plan takes the whole photos squashed to 256 px, and resnet18; by hand, whole photos at 384 px (the plain
         size), efficientnetb0, or 256 px patches at half scale or at the scale that brings the photos to 384

Every run is the acceptance's command, train.py --data_root --work_dir --device cpu --encoder_weights none
--augment any_orientation --time_budget MINUTES --seed S, plus the arm's flags. Its last weights (the cosine's end,
not the best by the validation it is scored on) are scored by predict.py at the images' own resolution, all pixels
together (micro IoU). Runs go --parallel at a time, each pinned to a core of its own (taskset), so that a run's
minutes are one core's: a ranking at equal time, not the speed of a machine. Results are appended to
WORK/results.jsonl as they come (a rerun skips the runs there) and summed up per set and arm: the mean and range
over seeds, and the difference from the plan seed by seed with a 95 % t-interval.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from scipy import stats

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from segtf.dataset.synthetic import synthetic_sample  # noqa: E402
from segtf.evaluation.scoring import ratios  # noqa: E402

ARMS = {
    "thin": {"plan": [], "whole384": ["--image_size", "384"], "whole512": ["--image_size", "512"]},
    "blobs": {"plan": [], "whole384": ["--image_size", "384"]},
    "nails": {"plan": [], "whole384": ["--image_size", "384"], "efficientnetb0": ["--backbone", "efficientnetb0"],
              "patch256x0.5": ["--patch_size", "256", "--scale", "0.5"],
              "patch256x0.64": ["--patch_size", "256", "--scale", "0.636"]},
}  # fmt: skip


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", required=True, type=Path, help="folder for the sets, the runs and results.jsonl")
    parser.add_argument("--minutes", type=float, default=5.0, help="each run's --time_budget (default: %(default)s)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="(default: %(default)s)")
    parser.add_argument("--sets", nargs="+", default=list(ARMS), choices=list(ARMS), help="(default: all)")
    parser.add_argument("--arms", nargs="+", help="only these arms, by name (default: each set's all)")
    parser.add_argument("--parallel", type=int, default=2, help="runs at a time, a core each (default: %(default)s)")
    nails = Path(os.environ.get("NAILS_DIR", REPO.parent / "shared" / "data" / "nails"))
    parser.add_argument("--nails", type=Path, default=nails, help="the nails set, only read (default: %(default)s)")
    return parser.parse_args()


def thin_sample(rng: np.random.Generator, side: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """A textured noisy photo with 6 to 12 dark smooth curves 2 or 3 px wide (the mask) and dark blots (not)."""
    texture = cv2.GaussianBlur(rng.normal(0, 1, (side, side)), (0, 0), 24)
    base = 130 + 40 * texture / (np.abs(texture).max() + 1e-6)
    mask = np.zeros((side, side), np.uint8)
    for _ in range(int(rng.integers(6, 13))):
        points = rng.uniform(0, side, (4, 2))  # a cubic Bezier curve's control points
        t = np.linspace(0, 1, 200)[:, None]
        curve = ((1 - t) ** 3 * points[0] + 3 * (1 - t) ** 2 * t * points[1] + 3 * (1 - t) * t**2 * points[2]
                 + t**3 * points[3])  # fmt: skip
        cv2.polylines(mask, [curve.astype(np.int32)], False, 255, int(rng.integers(2, 4)))
    blots = np.zeros_like(mask)
    for _ in range(int(rng.integers(3, 8))):
        center = (int(rng.integers(0, side)), int(rng.integers(0, side)))
        cv2.circle(blots, center, int(rng.integers(4, 14)), 255, -1)
    gray = base - 28 * (mask > 0) - 35 * (blots > 0) + rng.normal(0, 18, (side, side))
    image = np.stack([gray * 0.9, gray, gray * 1.1], axis=-1)
    return cv2.GaussianBlur(np.clip(image, 0, 255).astype(np.uint8), (3, 3), 0), mask


def write_pairs(folder: Path, count: int, seed: int, sample=thin_sample) -> None:
    """count pairs of sample in folder/images and folder/masks, as PNG."""
    for i in range(count):
        image, mask = sample(np.random.default_rng([seed, i]))
        for kind, array in (("images", image), ("masks", mask)):
            (folder / kind).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / kind / f"{i:04d}.png"), array)


def prepare(command: list[str]) -> None:
    subprocess.run([sys.executable, *command], cwd=REPO, check=True, capture_output=True)


def make_sets(args: argparse.Namespace) -> dict[str, tuple[Path, list[str]]]:
    """Each set's data root and predict.py's flags that score a run of it."""
    sets = {}
    if "thin" in args.sets:
        data, test = args.work / "thin" / "data", args.work / "thin" / "test"
        if not (data / "csv_file" / "valid.csv").exists():
            write_pairs(data / "train", 48, seed=1)
            write_pairs(data / "valid", 6, seed=2)
            write_pairs(test, 16, seed=3)
            prepare(["data_preparation.py", "--data_root", str(data)])
        sets["thin"] = (data, ["--input", str(test / "images"), "--masks", str(test / "masks")])
    if "blobs" in args.sets:
        data, test = args.work / "blobs" / "data", args.work / "blobs" / "test"
        if not (data / "csv_file" / "valid.csv").exists():
            write_pairs(test, 60, seed=99, sample=synthetic_sample)
            prepare(["data_preparation.py", "--data_root", str(data), "--synthetic", "150"])
        sets["blobs"] = (data, ["--input", str(test / "images"), "--masks", str(test / "masks")])
    if "nails" in args.sets:
        data = args.work / "nails" / "data"
        if not (data / "csv_file" / "valid.csv").exists():
            shutil.copytree(args.nails, data, dirs_exist_ok=True)
            prepare(["data_preparation.py", "--data_root", str(data)])
        sets["nails"] = (data, ["--data_root", str(data), "--split", "valid"])
    return sets


def train_and_score(job: dict, core: int, minutes: float) -> dict:
    """One run of an arm, pinned to a core, and predict.py's micro IoU of its last weights."""
    work = Path(job["work"])
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    pin = ["taskset", "-c", str(core)]
    command = [*pin, sys.executable, "train.py", "--data_root", str(job["data"]), "--work_dir", str(work),
               "--device", "cpu", "--encoder_weights", "none", "--augment", "any_orientation", "--time_budget",
               f"{minutes:g}", "--seed", str(job["seed"]), "--overwrite", *job["flags"]]  # fmt: skip
    begin = time.monotonic()
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - begin
    (work.parent / f"{work.name}.log").write_text(result.stdout + result.stderr)
    if result.returncode:
        return {**job, "error": result.stderr.strip().splitlines()[-1:]}
    record = json.loads((work / "tensorflow" / "run_config.json").read_text())
    settings = record["args"]
    weights = work / "tensorflow" / "weights" / f"last-weight_{settings['backbone']}.h5"
    subprocess.run([*pin, sys.executable, "predict.py", "--weights", str(weights), "--output", str(work / "scores"),
                    *job["score"]], cwd=REPO, env=env, check=True, capture_output=True)  # fmt: skip
    table = pd.read_csv(work / "scores" / "metrics.csv")
    history = pd.read_csv(work / "tensorflow" / "logs" / "history.csv")
    geometry = (f"patch {settings['patch_size']} x{settings['scale']:g}" if settings["patch_size"]
                else f"whole {settings['image_size']}")  # fmt: skip
    return {**job, "iou": round(ratios(int(table.tp.sum()), int(table.fp.sum()), int(table.fn.sum()))["iou"], 4),
            "geometry": geometry, "backbone": settings["backbone"], "batch": settings["batch_size"],
            "epochs": settings["epochs"], "steps": settings["epochs"] * record["steps_per_epoch"],
            "epochs_run": len(history), "seconds": round(seconds)}  # fmt: skip


def run_jobs(jobs: list[dict], args: argparse.Namespace, results: Path) -> None:
    """The jobs not yet in results, --parallel at a time, each on a core of its own."""
    done = {(r["set"], r["arm"], r["seed"]) for r in map(json.loads, results.read_text().splitlines())} \
        if results.exists() else set()  # fmt: skip
    todo = [job for job in jobs if (job["set"], job["arm"], job["seed"]) not in done]
    cores = list(range(args.parallel))

    def work(job: dict) -> None:
        core = cores.pop()
        try:
            row = train_and_score(job, core, args.minutes)
        finally:
            cores.append(core)
        with results.open("a") as file:
            file.write(json.dumps({k: v for k, v in row.items() if k not in ("data", "score", "work")}) + "\n")
        print(json.dumps(row), flush=True)

    with ThreadPoolExecutor(args.parallel) as pool:
        list(pool.map(work, todo))


def summary(results: Path) -> pd.DataFrame:
    """Per set and arm: IoU mean and range over seeds; the paired difference from the plan with a 95 % t-interval."""
    table = pd.DataFrame(map(json.loads, results.read_text().splitlines()))
    table = table[table.iou.notna()] if "iou" in table else table.iloc[:0]
    rows = []
    for (name, arm), runs in table.groupby(["set", "arm"], sort=False):
        plan = table[(table.set == name) & (table.arm == "plan")].set_index("seed").iou
        differences = (runs.set_index("seed").iou - plan).dropna()
        half = stats.t.ppf(0.975, len(differences) - 1) * differences.std() / np.sqrt(len(differences)) \
            if len(differences) > 1 else np.nan  # fmt: skip
        rows.append({"set": name, "arm": arm, "geometry": runs.geometry.iloc[0], "backbone": runs.backbone.iloc[0],
                     "seeds": len(runs), "iou_mean": runs.iou.mean(), "iou_min": runs.iou.min(),
                     "iou_max": runs.iou.max(), "steps_mean": runs.steps.mean(), "minus_plan": differences.mean(),
                     "interval_95": f"{differences.mean() - half:+.3f} to {differences.mean() + half:+.3f}"
                     if arm != "plan" else "", "seconds_max": runs.seconds.max()})  # fmt: skip
    return pd.DataFrame(rows).round(4)


def main() -> None:
    args = parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    sets = make_sets(args)
    jobs = [{"set": name, "arm": arm, "seed": seed, "flags": flags, "data": str(sets[name][0]), "score": sets[name][1],
             "work": str(args.work / name / f"{arm}-seed{seed}")}
            for seed in args.seeds for name in args.sets for arm, flags in ARMS[name].items()
            if not args.arms or arm in args.arms]  # fmt: skip
    results = args.work / "results.jsonl"
    run_jobs(jobs, args, results)
    cpu = next(line for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
               if line.startswith("Model name"))  # fmt: skip
    print(f"{cpu.split(':', 1)[1].strip()}: {args.parallel} at a time, a core each; --time_budget {args.minutes:g}")
    print(summary(results).to_string(index=False))


if __name__ == "__main__":
    main()
