"""Show that a code change kept behaviour exactly: the same training histories, digit for digit, and an old run still
resumed, scored and exported by the new code.

    python benchmarks/same_behaviour.py --before HEAD~1
    python benchmarks/same_behaviour.py --before main --after ../restructured --work /tmp/same

BEFORE is checked out with `git worktree add --detach` into WORK (removed at the end, also on an error or SIGTERM);
AFTER is a folder used as it is (default: this checkout's working tree, uncommitted changes included) or a revision
checked out the same way. Each side's scripts run with this interpreter, in its own checkout, with PYTHONPATH set to
it, on the CPU (CUDA_VISIBLE_DEVICES empty), so that both sides run the same code path that --seed makes repeatable.

Steps, each a few tens of seconds on 2 cores:

  data        AFTER's data_preparation.py --synthetic 40, once; a copy per side, as each run writes DATA/cache/
              and both sides must build their caches themselves
  run a       the demo's command shape: resnet18, 64 px whole images, 2 epochs of 5 steps of 8, --seed 1
  run b       the same on 64 px patches of the images at scale 0.5 (--patch_size 64 --scale 0.5)
  compared    each pair of WORK/<run>-<side>/tensorflow/logs/history.csv as text, cell by cell. Its columns are the
              epoch and the metrics (epoch, f1, iou, loss, val_f1, val_iou, and val_loss but for patches); none is a
              wall-clock time, so every column is compared, and a column added or dropped is a difference too
  old run     a copy of BEFORE's finished run a, in BEFORE's data with BEFORE's caches, as a user's old work folder:
              AFTER's train.py --resume --epochs 3 must add epoch 3 to the two kept ones (not start again), then
              AFTER's predict.py must score the valid split with its best weights and export them (SavedModel, TFLite)

Prints a line per check and a summary line; exits 1 if any check failed. A temporary WORK is removed at the end when
everything passed, else kept for the logs of every command (WORK/logs/).
"""

import argparse
import contextlib
import csv
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

REPO = Path(__file__).resolve().parents[1]
# the demo's command shape, after --data_root and --work_dir
TRAIN = (
    "--device cpu --backbone resnet18 --image_size 64 --batch_size 8 --epochs 2 --steps_per_epoch 5 "
    "--encoder_weights none --mixed_precision false --seed 1"
).split()
RUNS = {"a": [], "b": "--patch_size 64 --scale 0.5".split()}  # run name: its flags on top of TRAIN
HISTORY = Path("tensorflow", "logs", "history.csv")
BEST = Path("tensorflow", "weights", "best-weight_resnet18.h5")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(__doc__.split("\n\n")[1:]),
    )  # fmt: skip
    parser.add_argument("--before", required=True, help="git revision of the code before the change, e.g. HEAD~1")
    parser.add_argument(
        "--after", default=str(REPO),
        help="the code after the change: a folder (a checkout or worktree, used as it is) or a git revision "
        "(default: this checkout's working tree, %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--work", type=Path,
        help="folder for the checkouts, data, runs and logs, kept afterwards; absent or empty "
        "(default: a temporary folder, removed when every check passed)",
    )  # fmt: skip
    return parser.parse_args()


def git(*args: str) -> str:
    """A git command in this checkout; its own message on failure, which names a revision it does not know."""
    result = subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True)
    if result.returncode:
        sys.exit(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def commit(revision: str) -> str:
    """The revision's commit, looked up before any work, so that a misspelt revision stops the script at once."""
    return git("rev-parse", "--verify", "--short", f"{revision}^{{commit}}")


def checkout(stack: contextlib.ExitStack, commit: str, folder: Path) -> Path:
    """A detached worktree of commit in folder, which stack removes however main ends, so that no stale worktree
    is left in the repository."""
    git("worktree", "add", "--detach", str(folder), commit)
    stack.callback(git, "worktree", "remove", "--force", str(folder))
    return folder


def python(code: Path, args: list[str], log: Path) -> tuple[bool, str]:
    """Run one of code's scripts the way a user would, from its checkout alone (cwd and PYTHONPATH, nothing else
    of this one); its output goes to log. (exited 0, '' or why not with the end of the log)."""
    env = {**os.environ, "PYTHONPATH": str(code), "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        out.write(f"cd {code} && {sys.executable} {' '.join(args)}\n")
        out.flush()
        result = subprocess.run([sys.executable, *args], cwd=code, env=env, stdout=out, stderr=subprocess.STDOUT)
    if result.returncode == 0:
        return True, ""
    last = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-1:]
    return False, f"{args[0]} exited {result.returncode} (log {log}): {' '.join(last)}"


def read_csv(path: Path) -> list[list[str]]:
    """The rows of a CSV file as the text written, header first: comparing text compares every digit."""
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def first_difference(before: list[list[str]], after: list[list[str]]) -> Optional[str]:
    """None if the two tables are the same text, else where they first differ, with both values."""
    if before[0] != after[0]:
        return f"columns differ: before {','.join(before[0])}, after {','.join(after[0])}"
    for row, (old, new) in enumerate(zip(before[1:], after[1:]), start=1):
        for column, old_value, new_value in zip(before[0], old, new):
            if old_value != new_value:
                return f"row {row} (epoch {old[0]}), column {column}: before {old_value}, after {new_value}"
    if len(before) != len(after):
        return f"before has {len(before) - 1} rows, after {len(after) - 1}"
    return None


def compare_run(name: str, sides: dict[str, Path], data: dict[str, Path], work: Path) -> tuple[bool, str]:
    """Train run name on both sides, each in its own copy of the data, and compare their histories."""
    start = time.perf_counter()
    for side, code in sides.items():
        ok, why = python(code, ["train.py", "--data_root", str(data[side]), "--work_dir", str(work / f"{name}-{side}"),
                                *TRAIN, *RUNS[name]], work / "logs" / f"train-{name}-{side}.log")  # fmt: skip
        if not ok:
            return False, f"{side} side failed: {why}"
    before, after = (read_csv(work / f"{name}-{side}" / HISTORY) for side in sides)
    difference = first_difference(before, after)
    seconds = f"({time.perf_counter() - start:.0f} s)"
    if difference:
        return False, f"histories differ at {difference} {seconds}"
    return True, f"histories identical, {len(after) - 1} epochs of {','.join(after[0])} {seconds}"


def resume_old_run(code: Path, old: Path, data: Path, work: Path) -> tuple[bool, str]:
    """AFTER's --resume --epochs 3 on a copy of BEFORE's finished run: its two epochs must be kept and a third added.
    Resuming reads and writes the history again with pandas, which may change a float's last digit, so the kept rows
    are compared as numbers; a run started again would differ in every value, its cosine schedule spanning 3 epochs."""
    copy = work / "old-run"
    shutil.copytree(old, copy)
    flags = [*TRAIN, *RUNS["a"]]
    flags[flags.index("--epochs") + 1] = "3"
    start = time.perf_counter()
    ok, why = python(code, ["train.py", "--data_root", str(data), "--work_dir", str(copy), *flags, "--resume"],
                     work / "logs" / "resume.log")  # fmt: skip
    if not ok:
        return False, why
    kept, resumed = read_csv(old / HISTORY), read_csv(copy / HISTORY)
    same = kept[0] == resumed[0] and all(
        math.isclose(float(a), float(b), rel_tol=1e-12) for old_row, row in zip(kept[1:], resumed[1:])
        for a, b in zip(old_row, row)
    )  # fmt: skip
    if not same or len(resumed) != len(kept) + 1:
        kept_rows = "kept" if same else "changed"
        return False, f"exited 0 but did not continue: {len(resumed) - 1} epochs now, the first {kept_rows}"
    return True, f"epoch 3 added to the kept 2, val_iou {resumed[-1][resumed[0].index('val_iou')]} " \
                 f"({time.perf_counter() - start:.0f} s)"  # fmt: skip


def predict_old_run(code: Path, old: Path, data: Path, work: Path) -> tuple[bool, str]:
    """AFTER's predict.py scores the valid split with the resumed old run's best weights."""
    out, start = work / "predicted", time.perf_counter()
    args = ["predict.py", "--weights", str(old / BEST), "--data_root", str(data), "--split", "valid",
            "--output", str(out)]  # fmt: skip
    ok, why = python(code, args, work / "logs" / "predict.log")
    return ok, why or f"exit 0, scores in {out / 'metrics.csv'} ({time.perf_counter() - start:.0f} s)"


def export_old_run(code: Path, old: Path, work: Path) -> tuple[bool, str]:
    """AFTER's predict.py exports the resumed old run's best weights as a SavedModel and a TFLite model."""
    out, start = work / "exported", time.perf_counter()
    args = ["predict.py", "--weights", str(old / BEST), "--export", "savedmodel", "tflite", "--output", str(out)]
    ok, why = python(code, args, work / "logs" / "export.log")
    files = ", ".join(sorted(p.name for p in out.iterdir())) if out.is_dir() else "nothing"
    return ok, why or f"exit 0, wrote {files} ({time.perf_counter() - start:.0f} s)"


def check_all(sides: dict[str, Path], work: Path) -> list[str]:
    """Every check in turn, one printed line each; the names of those that failed."""
    failed = []

    def report(name: str, result: tuple[bool, str]) -> bool:
        print(f"{name}: {result[1]}", flush=True)
        if not result[0]:
            failed.append(name)
        return result[0]

    data = {side: work / f"data-{side}" for side in sides}
    ok, why = python(sides["after"], ["data_preparation.py", "--data_root", str(work / "data"), "--synthetic", "40"],
                     work / "logs" / "data.log")  # fmt: skip
    if not report("data", (ok, why or f"40 synthetic pairs in {work / 'data'}, a copy per side")):
        return failed
    for folder in data.values():
        shutil.copytree(work / "data", folder)
    print("compared: every column of history.csv, as text (it has no wall-clock column)", flush=True)
    for name in RUNS:
        report(f"run {name}", compare_run(name, sides, data, work))
    if not (work / "a-before" / HISTORY).exists():
        return [*failed, "old run (no finished run a on the before side)"]
    old = work / "old-run"
    if report("old run resumed", resume_old_run(sides["after"], work / "a-before", data["before"], work)):
        report("old run predicted", predict_old_run(sides["after"], old, data["before"], work))
        report("old run exported", export_old_run(sides["after"], old, work))
    else:
        failed += ["old run predicted", "old run exported"]
    return failed


def main() -> None:
    args = parse_args()
    start = time.perf_counter()
    # a stop (a CI timeout, kill) unwinds like an error: the running script is killed and the checkouts removed
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit("stopped by SIGTERM"))
    before = commit(args.before)
    after = None if Path(args.after).is_dir() else commit(args.after)  # None: a folder, used as it is
    temporary = args.work is None
    work = Path(tempfile.mkdtemp(prefix="same-behaviour-")) if temporary else args.work.resolve()
    if not temporary and work.exists() and any(work.iterdir()):
        sys.exit(f"{work} is not empty: its runs would not start afresh; choose an absent or empty --work")
    work.mkdir(parents=True, exist_ok=True)
    print(f"before: {args.before} ({before})", flush=True)
    print(f"after:  {args.after} ({after or 'the folder as it is'})\nwork:   {work}", flush=True)
    with contextlib.ExitStack() as stack:
        sides = {"before": checkout(stack, before, work / "checkout-before")}
        sides["after"] = checkout(stack, after, work / "checkout-after") if after else Path(args.after).resolve()
        failed = check_all(sides, work)
    minutes = f"{(time.perf_counter() - start) / 60:.1f} min"
    if failed:
        sys.exit(f"NOT the same behaviour: {', '.join(failed)} failed ({minutes}); logs in {work / 'logs'}")
    if temporary:
        shutil.rmtree(work, ignore_errors=True)
    print(f"same behaviour: {len(RUNS)} histories identical, old run resumed, predicted, exported ({minutes})")


if __name__ == "__main__":
    main()
