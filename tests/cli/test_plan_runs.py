"""train.py's plan of a prepared set: printed and recorded, flags that win over it, --plan none, a resumed run's own
plan; and a run fitted to --time_budget. The rules on generated fingerprints: training/test_plan.py."""

import json

from segtf.cli import train
from segtf.cli.train import given_flags, train_args, train_config
from segtf.config import write_run_config
from segtf.training import budget

import pandas as pd
import pytest
from helpers import SMALL


def config_of(*argv: str):
    return train_config(train_args(list(argv)), given_flags(list(argv)))


def test_the_plan_of_a_prepared_set_is_printed_and_recorded_and_flags_win(synthetic_data, tmp_path, capsys):
    base = ["--data_root", str(synthetic_data), "--work_dir", str(tmp_path), "--device", "cpu",
            "--encoder_weights", "none"]  # fmt: skip
    config = config_of(*base)
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("plan: ")]
    assert config.model.backbone == "resnet18" and config.loader.batch_size == 8
    assert config.loader.patch_size is None and config.loader.image_size == 160  # the generated 96-160 px images
    assert [f"plan: {reason}" for reason in config.run.plan_reasons] == printed and len(printed) == 3
    given = config_of(*base, "--batch_size", "4", "--backbone", "mobilenetv2", "--image_size", "64")
    assert (given.loader.batch_size, given.model.backbone, given.loader.image_size) == (4, "mobilenetv2", 64)
    assert len(given.run.plan_reasons) == 0
    plain = config_of(*base, "--plan", "none")
    loader = plain.loader
    assert (loader.image_size, loader.batch_size, loader.patch_size, plain.model.backbone) == (
        384, 32, None, "efficientnetb4"
    )  # fmt: skip
    assert plain.optimization.epochs == 100 and not plain.run.plan_reasons
    assert "plan: " not in capsys.readouterr().out


def test_a_resumed_run_keeps_its_plan_its_length_and_its_budget(synthetic_data, tmp_path, capsys):
    base = ["--data_root", str(synthetic_data), "--work_dir", str(tmp_path), "--device", "cpu",
            "--encoder_weights", "none"]  # fmt: skip
    first = config_of(*base, "--time_budget", "30", "--patch_size", "64")
    record = {"replicas": 1, "steps_per_epoch": 7}
    saved = first.optimization.__class__(**{**first.optimization.__dict__, "epochs": 12, "steps_per_epoch": 7})
    write_run_config(tmp_path / "tensorflow" / "run_config.json", first.__class__(
        first.loader, first.model, saved, first.run), record)  # fmt: skip
    capsys.readouterr()
    resumed = config_of(*base, "--resume")
    assert resumed.loader == first.loader and resumed.model == first.model
    assert (resumed.optimization.epochs, resumed.optimization.steps_per_epoch) == (12, 7)
    assert resumed.optimization.time_budget == 30 and list(resumed.run.plan_reasons) == list(first.run.plan_reasons)
    assert "plan: " not in capsys.readouterr().out  # nothing planned again
    assert config_of(*base, "--resume", "--epochs", "20").optimization.epochs == 20  # a flag still wins


def test_epochs_and_a_time_budget_exclude_each_other(synthetic_data, capsys):
    with pytest.raises(SystemExit):
        train_args(["--data_root", str(synthetic_data), "--epochs", "3", "--time_budget", "5"])
    assert "--epochs and --time_budget exclude each other" in capsys.readouterr().err


@pytest.mark.parametrize("minutes", ["0", "-1", "nan", "inf", "an hour"])
def test_a_time_budget_is_minutes_above_0(synthetic_data, capsys, minutes):
    with pytest.raises(SystemExit):
        train_args(["--data_root", str(synthetic_data), "--time_budget", minutes])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.endswith(f"--time_budget: must be a finite number of minutes above 0, got {minutes}")


def test_a_budgeted_run_trains_the_epochs_its_speed_buys(synthetic_data, tmp_path, monkeypatch, capsys):
    """The speed is given (measuring it: training/test_plan.py), so that the run is short and its
    epochs known: 60 s, less the run's start (5 s) and end (10 s) and what the test took, buy one epoch of 5 steps of
    a second, with 10 s of validation and saving."""
    measured = []
    monkeypatch.setattr(
        budget, "measure_speed", lambda build, *_: measured.append(build) or budget.Speed(1.0, 10.0, 5.0)
    )
    train.main(["--data_root", str(synthetic_data), "--work_dir", str(tmp_path), *SMALL, "--time_budget", "1"])
    assert len(measured) == 1
    out = capsys.readouterr().out
    assert "a step takes 1.00 s and an epoch's validation and saving 10.0 s here, so 1 epoch of 5 steps" in out
    args = json.loads((tmp_path / "tensorflow" / "run_config.json").read_text())["args"]
    assert (args["epochs"], args["steps_per_epoch"], args["time_budget"]) == (1, 5, 1.0)
    assert len(pd.read_csv(tmp_path / "tensorflow" / "logs" / "history.csv")) == 1
