"""Kills late in a run and the signals that stop one (SIGTERM, Ctrl-C twice), each resumed by the next run: every
stop is said in one line with the command that continues, and the run ends with exactly its epochs."""

import signal

from segtf.run_paths import work_paths
from segtf.training import checkpoints

import pandas as pd
from helpers import STEPS, assert_whole_run, run_to
from helpers import run_training as run

EPOCHS = 3


def test_a_run_killed_or_signalled_late_resumes_to_exactly_its_epochs(synthetic_data, tmp_path):
    paths = work_paths(tmp_path, "resnet18")
    flags = ["--epochs", str(EPOCHS)]

    killed = run_to("after_backup", 1, synthetic_data, tmp_path, *flags)  # epoch 2 committed, its files not moved
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert checkpoints.committed_epochs(paths.backup, STEPS) == 2

    # recovers epoch 2's files, then stops in epoch 3 (a kill mid-epoch: test_checkpoints.py's first point)
    interrupted = run_to("ctrl_c", 2, synthetic_data, tmp_path, *flags, "--resume")  # the second stops at once
    assert interrupted.returncode == 130, interrupted.stderr[-2000:]
    last = interrupted.stderr.strip().splitlines()[-1]
    assert last.startswith("interrupted; continue with: python") and last.endswith("--resume")
    assert checkpoints.saved_position(paths.backup) == (1, STEPS - 1) and len(pd.read_csv(paths.history)) == 2

    stopped = run_to("sigterm", 2, synthetic_data, tmp_path, *flags, "--resume")  # stops after the step, saving it
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr[-2000:]
    assert "SIGTERM received: stopped after step 2 of epoch 3" in stopped.stderr
    assert "--resume" in stopped.stderr.splitlines()[-1] and "Traceback" not in stopped.stderr
    assert checkpoints.saved_position(paths.backup) == (2, 1)

    for point, committed in (("first_file", 3), ("after_last_epoch", 3)):
        killed = run_to(point, 2, synthetic_data, tmp_path, *flags, "--resume")
        assert killed.returncode == -signal.SIGKILL, f"{point}: {killed.stderr[-2000:]}"
        assert checkpoints.committed_epochs(paths.backup, STEPS) == committed, point
    run(synthetic_data, tmp_path, *flags, "--resume")
    assert_whole_run(tmp_path, EPOCHS)
