"""Two workers on this machine (127.0.0.1, free ports, CPU) train as one cluster described by TF_CONFIG."""

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

from segtf.cli import prepare
from segtf.dataset import pipeline
from segtf.modeling import network
from segtf.training import checkpoints, distribute

import pandas as pd
import pytest
from helpers import PYTHONPATH, REPO, SMALL, assert_class_scores

WORKERS = 2


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def train_command(data_root: Path, work_dir: Path, *flags: str) -> list[str]:
    return ["train.py", "--data_root", str(data_root), "--work_dir", str(work_dir), *SMALL, *flags]


def start_workers(command: list[str], tmp_path: Path, kill_worker_1: bool = False, temp: str = "tmp") -> list:
    """Run `python command` as each worker; with kill_worker_1, worker 1 runs train.py through tests/kill_at.py,
    which SIGKILLs it in its second epoch. Each worker's temporary folder is tmp_path/<temp><index>."""
    workers = [f"127.0.0.1:{port}" for port in free_ports(WORKERS)]
    processes = []
    for index in range(WORKERS):
        (tmp_path / f"{temp}{index}").mkdir(exist_ok=True)
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "TMPDIR": str(tmp_path / f"{temp}{index}"),
               "PYTHONPATH": PYTHONPATH, "TF_CPP_MIN_LOG_LEVEL": "2"}  # fmt: skip
        script = ["tests/kill_at.py", "step", "1", *command[1:]] if kill_worker_1 and index == 1 else command
        processes.append(subprocess.Popen([sys.executable, *script], cwd=REPO, env=env, text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE))  # fmt: skip
    return processes


def finish(processes: list, timeout: float) -> list[tuple[int, str, str]]:
    """(return code, stdout, stderr) of each worker; kills every worker that has not ended in time."""
    deadline, results = time.monotonic() + timeout, []
    try:
        for process in processes:
            out, err = process.communicate(timeout=max(1.0, deadline - time.monotonic()))
            results.append((process.returncode, out, err))
    finally:
        for process in processes:
            process.kill()
    return results


def checksum(stdout: str) -> str:
    return re.search(r"finished; weights checksum (\w+)", stdout).group(1)


def kept_files(work_dir: Path) -> list[str]:
    return sorted(
        str(p.relative_to(work_dir)) for p in work_dir.rglob("*") if p.is_file() and "tensorboard" not in p.parts
    )


def test_a_killed_worker_stops_the_other_in_one_line_and_the_resumed_cluster_trains_in_step(tmp_path):
    """One cluster run of 3 classes on the TFRecord cache (both workers writing it at once) serves both checks: a lost
    worker ends the chief in one line, keeping its finished epochs; resumed, the workers train in step and only the
    chief keeps files."""
    data, work_dir = tmp_path / "classes", tmp_path / "work"
    prepare.main(["--data_root", str(data), "--synthetic", "16", "--classes", "3", "--workers", "1"])
    flags = ["--epochs", "2", "--cache_format", "tfrecord", "--log", "tensorboard"]
    start = time.monotonic()
    (chief_code, _, chief_err), (worker_code, _, _) = finish(
        start_workers(train_command(data, work_dir, *flags), tmp_path, kill_worker_1=True), 240
    )
    assert worker_code == -9 and chief_code == 2, chief_err[-3000:]
    assert chief_err.strip().splitlines()[-1].startswith("error: lost contact with another worker of the cluster")
    assert "--resume" in chief_err and "Traceback" not in chief_err
    print(f"killed run: {time.monotonic() - start:.0f} s")
    root = work_dir / "tensorflow"
    assert list(pd.read_csv(root / "logs" / "history.csv").epoch) == [0]  # epoch 1 was committed

    resumed = start_workers(train_command(data, work_dir, *flags, "--resume"), tmp_path, temp="resumed")
    results = finish(resumed, 240)
    for code, _out, err in results:
        assert code == 0, err[-3000:]
    (_, chief_out, _), (_, worker_out, _) = results
    assert "cluster of 2 workers x 1 device(s) = 2 replicas; this is worker 0, the chief" in chief_out
    assert "this is worker 1; worker 0 is the chief" in worker_out and "resuming" in chief_out
    assert "8 = 2 device(s) x 4" in chief_out and "best epoch" in chief_out and "best epoch" not in worker_out
    assert checksum(chief_out) == checksum(worker_out)
    history = pd.read_csv(root / "logs" / "history.csv")
    assert list(history.epoch) == [0, 1] and {"val_iou_class_1", "val_iou_class_2"} <= set(history.columns)
    assert json.loads((root / "run_config.json").read_text())["replicas"] == 2
    final = [f for f in kept_files(work_dir) if f.startswith("tensorflow/final/")]
    assert final and all(f.startswith("tensorflow/final/chief/") for f in final)  # the chief's last training state
    assert [f for f in kept_files(work_dir) if f not in final] == [
        "tensorflow/logs/history.csv",
        "tensorflow/logs/training_curves.png",
        "tensorflow/logs/validation_pictures.png",
        "tensorflow/run.lock",
        "tensorflow/run_config.json",
        "tensorflow/weights/best-weight_resnet18.h5",
        "tensorflow/weights/last-weight_resnet18.h5",
    ]
    assert len(list((root / "logs" / "tensorboard").iterdir())) == 2  # the chief's, killed and resumed: no worker's
    assert checkpoints.saved_position(root / "backup") is None
    assert not list((tmp_path / "resumed1").iterdir())  # worker 1's own files were removed


def test_tf_config_of_one_task_is_one_machine(monkeypatch):
    monkeypatch.setenv(
        "TF_CONFIG", json.dumps({"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 0}})
    )
    assert distribute.cluster_resolver("tf_config") is None
    monkeypatch.delenv("TF_CONFIG")
    assert distribute.cluster_resolver("tf_config") is None and distribute.is_chief(None)


@pytest.mark.parametrize(
    "tf_config, error",
    [
        ("{not json", "TF_CONFIG is not a valid cluster description"),
        (
            '{"cluster": {"worker": ["a:1", "b:1"], "ps": ["c:1"]}, "task": {"type": "ps", "index": 0}}',
            "chief and worker",
        ),
    ],
)
def test_a_bad_tf_config_is_named(monkeypatch, tf_config, error):
    monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(distribute.UserError, match=error):
        distribute.cluster_resolver("tf_config")


def test_slurm_tasks_become_workers_on_one_port_each(monkeypatch):
    slurm = {"SLURM_PROCID": "1", "SLURM_STEP_NUM_TASKS": "2", "SLURM_STEP_NODELIST": "node[07-08]",
             "SLURM_STEP_TASKS_PER_NODE": "1(x2)"}  # fmt: skip
    for name, value in slurm.items():
        monkeypatch.setenv(name, value)
    resolver = distribute.cluster_resolver("slurm")
    assert resolver.cluster_spec().as_dict() == {"worker": ["node07:8888", "node08:8888"]}
    assert (resolver.task_type, resolver.task_id, distribute.is_chief(resolver)) == ("worker", 1, False)
    monkeypatch.delenv("SLURM_PROCID")
    with pytest.raises(distribute.UserError, match="srun"):
        distribute.cluster_resolver("slurm")


EVALUATE = """
import json
from segtf.dataset import pipeline
from segtf.modeling import network
from segtf.training import distribute
from helpers import class_scores_under
strategy = distribute.make_strategy(["cpu"], 1, distribute.cluster_resolver("tf_config"))
with strategy.scope():
    net = network.create_model("resnet18", "none")
net.load_weights({weights!r})
valid, _ = pipeline.build_dataset([{csv!r}], 64, 2, training=False, replicas=strategy.num_replicas_in_sync)
binary = net.evaluate(valid, verbose=0, return_dict=True)
print(json.dumps({{"binary": binary, "classes": class_scores_under(strategy)}}))
"""


def test_two_workers_score_as_one_process_does(trained, synthetic_data, tmp_path):
    """The validation set of one class, and the class scores of class_scores_under."""
    script = EVALUATE.format(weights=str(trained / "weights" / "last-weight_resnet18.h5"),
                             csv=str(synthetic_data / "csv_file" / "valid.csv"))  # fmt: skip
    net = network.create_model("resnet18", "none")  # alone, in this process
    net.load_weights(str(trained / "weights" / "last-weight_resnet18.h5"))
    valid, _ = pipeline.build_dataset([synthetic_data / "csv_file" / "valid.csv"], 64, 2, training=False)
    scores = [net.evaluate(valid, verbose=0, return_dict=True)]
    for code, out, err in finish(start_workers(["-c", script], tmp_path), 180):
        assert code == 0, err[-3000:]
        found = json.loads(out.splitlines()[-1])
        scores.append(found["binary"])
        assert_class_scores(found["classes"])
    assert scores[1] == scores[2]
    assert scores[1]["iou"] == pytest.approx(scores[0]["iou"], abs=1e-6)
    assert scores[1]["f1"] == pytest.approx(scores[0]["f1"], abs=1e-6)  # not the loss: Dice depends on the batches
