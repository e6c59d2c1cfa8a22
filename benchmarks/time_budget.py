"""Does a run with --time_budget end within its budget, with its learning-rate schedule run to its end?

    NAILS_DIR=../shared/data/nails python benchmarks/time_budget.py --work /tmp/budget [--minutes 10]

Copies the nails set (NAILS_DIR) into WORK, prepares it, and runs the short command of the README on the CPU:
train.py --data_root --work_dir --device cpu --encoder_weights none --time_budget MINUTES --seed 1. Prints the
plan and budget lines train.py printed, the process's wall-clock time against the budget (the acceptance of issue
36: at most 5 % over), the steps trained against the steps the cosine schedule spans, and the best val IoU;
train.py's output is kept in WORK/train.log. The CPU (lscpu's model name) is printed with the figures: a step's
speed differs between machines, which the budget reads.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", required=True, type=Path, help="folder for the data copy and the run")
    parser.add_argument("--minutes", type=float, default=10.0, help="the time budget (default: %(default)s)")
    nails = Path(os.environ.get("NAILS_DIR", REPO.parent / "shared" / "data" / "nails"))
    parser.add_argument("--nails", type=Path, default=nails, help="the nails set (default: %(default)s)")
    return parser.parse_args()


def cpu_name() -> str:
    lines = subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("Model name")), "unknown CPU")


def main() -> None:
    args = parse_args()
    data, work = args.work / "nails", args.work / "run"
    shutil.rmtree(args.work, ignore_errors=True)
    shutil.copytree(args.nails, data)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run([sys.executable, "data_preparation.py", "--data_root", str(data)], cwd=REPO, env=env, check=True,
                   capture_output=True)  # fmt: skip
    command = [sys.executable, "train.py", "--data_root", str(data), "--work_dir", str(work), "--device", "cpu",
               "--encoder_weights", "none", "--time_budget", f"{args.minutes:g}", "--seed", "1"]  # fmt: skip
    begin = time.monotonic()
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    seconds = time.monotonic() - begin
    (args.work / "train.log").write_text(result.stdout + result.stderr)  # each epoch's time, in Keras' lines
    if result.returncode:
        sys.exit(f"train.py exited {result.returncode}: {result.stderr[-3000:]}")
    for line in result.stdout.splitlines():
        if line.startswith(("plan: ", "time budget ", "best epoch ")):
            print(line)
    record = json.loads((work / "tensorflow" / "run_config.json").read_text())
    epochs, steps = record["args"]["epochs"], record["steps_per_epoch"]
    history = pd.read_csv(work / "tensorflow" / "logs" / "history.csv")
    budget = args.minutes * 60
    print(f"CPU: {cpu_name()}, {os.cpu_count()} cores")
    print(f"wall-clock: {seconds:.0f} s of a {budget:.0f} s budget ({seconds / budget:.1%}; at most 105 % asked)")
    print(f"steps: {len(history)} of {epochs} epochs x {steps} = {len(history) * steps} trained, the schedule "
          f"spans {epochs * steps}; best val IoU {history.val_iou.max():.4f}")  # fmt: skip
    sys.exit(0 if seconds <= 1.05 * budget and len(history) == epochs else 1)


if __name__ == "__main__":
    main()
