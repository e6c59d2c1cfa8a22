"""Cross-validation: the folds' CSVs and runs, the out-of-fold report and the post-processing it chooses, resuming
folds, ensembles and their SavedModel, and datasets of a few pairs. How folds are drawn: dataset/test_folds.py; the
post-processing steps and their choice: inference/test_postprocessing.py, evaluation/test_postprocessing_choice.py."""

import json
from pathlib import Path

from segtf.cli import predict, prepare
from segtf.dataset.folds import write_fold_csvs
from segtf.dataset.synthetic import synthetic_sample
from segtf.errors import UserError
from segtf.evaluation.cross_validation import fold_folders
from segtf.inference.postprocessing import NO_POSTPROCESSING, postprocess
from segtf.inference.predictor import ensemble_probabilities, load_member, read_rgb
from segtf.run_paths import work_paths

import cv2
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from helpers import run_training

FOLDS = 2


def write_flat_pairs(root: Path, count: int) -> Path:
    """count generated pairs in the flat layout (images/, masks/), split by data_preparation.py's hash."""
    for i in range(count):
        image, mask = synthetic_sample(np.random.default_rng(i))
        for kind, array in (("images", image), ("masks", mask)):
            (root / kind).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(root / kind / f"{i}.png"), array)
    return root


@pytest.fixture(scope="module")
def six_pairs(tmp_path_factory) -> Path:
    """Six pairs, prepared with the default --valid_fraction 0.2."""
    data_root = write_flat_pairs(tmp_path_factory.mktemp("six") / "data", 6)
    prepare.main(["--data_root", str(data_root), "--workers", "2"])
    return data_root


def test_six_pairs_get_a_validation_pair_and_a_warning(tmp_path, capsys):
    """And with --valid_fraction 0 every pair goes to the folds; train.py without --folds then says so."""
    data_root = write_flat_pairs(tmp_path / "data", 6)
    prepare.main(["--data_root", str(data_root), "--workers", "1"])
    assert len(pd.read_csv(data_root / "csv_file" / "valid.csv")) >= 1
    assert len(pd.read_csv(data_root / "csv_file" / "train.csv")) >= 1
    assert "warning: valid holds" in capsys.readouterr().out
    prepare.main(["--data_root", str(data_root), "--workers", "1", "--valid_fraction", "0"])
    assert len(pd.read_csv(data_root / "csv_file" / "train.csv")) == 6  # every pair in the folds
    assert len(pd.read_csv(data_root / "csv_file" / "valid.csv")) == 0
    with pytest.raises(SystemExit) as exit_info:
        run_training(data_root, tmp_path / "work", "--epochs", "1")
    assert exit_info.value.code == 2 and "--folds N" in capsys.readouterr().err


def test_fold_csvs_hold_each_training_pair_once(six_pairs):
    table = write_fold_csvs(six_pairs, FOLDS)
    csv_dir = six_pairs / "csv_file"
    valid = [set(pd.read_csv(csv_dir / f"fold{k}of{FOLDS}_valid.csv").image) for k in range(FOLDS)]
    assert sum(len(v) for v in valid) == len(table) and set.union(*valid) == set(table.image)
    for k in range(FOLDS):
        assert set(pd.read_csv(csv_dir / f"fold{k}of{FOLDS}_train.csv").image) == set(table.image) - valid[k]


def test_more_folds_than_training_pairs_is_one_line(six_pairs, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_training(six_pairs, tmp_path / "work", "--folds", "9", "--epochs", "1")
    assert exit_info.value.code == 2
    assert "--folds 9" in capsys.readouterr().err and not (tmp_path / "work").exists()


@pytest.fixture(scope="module")
def folds_work(six_pairs, tmp_path_factory) -> Path:
    """Both folds of the six pairs trained for one epoch, then the plain run on all six."""
    work = tmp_path_factory.mktemp("folds")
    run_training(six_pairs, work, "--folds", str(FOLDS), "--epochs", "1")
    return work


def test_six_pairs_train(six_pairs, tmp_path):
    run_training(six_pairs, tmp_path, "--epochs", "1")
    assert len(pd.read_csv(tmp_path / "tensorflow" / "logs" / "history.csv")) == 1


def test_each_fold_predicts_its_own_validation_pairs(six_pairs, folds_work):
    for k in range(FOLDS):
        written = sorted(p.relative_to(folds_work / f"fold_{k}" / "tensorflow" / "out_of_fold")
                         for p in (folds_work / f"fold_{k}" / "tensorflow" / "out_of_fold").rglob("*.png"))  # fmt: skip
        valid = pd.read_csv(six_pairs / "csv_file" / f"fold{k}of{FOLDS}_valid.csv").image
        assert written == sorted(Path(p).relative_to("png").with_suffix(".png") for p in valid)


def test_the_report_has_each_training_pair_once_and_chooses_postprocessing(six_pairs, folds_work, tmp_path, capsys):
    predict.main(["--cv", str(folds_work), "--output", str(tmp_path)])
    table = pd.read_csv(tmp_path / "metrics.csv")
    train = pd.read_csv(six_pairs / "csv_file" / "train.csv")
    assert sorted(table.image) == sorted(str(Path(p).relative_to("png").with_suffix(".png")) for p in train.image)
    assert sorted(table.fold.unique()) == list(range(FOLDS))
    chosen = json.loads((folds_work / "postprocessing.json").read_text())
    assert set(chosen["settings"]) == set(NO_POSTPROCESSING)
    assert [s["step"] for s in chosen["steps"]][0] == "threshold"
    out = capsys.readouterr().out
    assert "95% bootstrap interval" in out and "fold 1:" in out and (tmp_path / "comparison.png").exists()


def test_a_missing_fold_is_one_line(folds_work, tmp_path, capsys):
    work = tmp_path / "work"
    (work / "fold_0" / "tensorflow").mkdir(parents=True)
    (work / "fold_0" / "tensorflow" / "run_config.json").write_bytes(
        (folds_work / "fold_0" / "tensorflow" / "run_config.json").read_bytes()
    )
    with pytest.raises(SystemExit) as exit_info:
        predict.main(["--cv", str(work), "--output", str(tmp_path / "out")])
    assert exit_info.value.code == 2 and "folds 0, 1 of 2 without out-of-fold" in capsys.readouterr().err


def test_an_ensemble_of_two_copies_of_a_model_is_that_model(trained, synthetic_data):
    weights = trained / "weights" / "best-weight_resnet18.h5"
    member = load_member(weights, {"overlap": 0.5, "batch_size": 4})
    images = sorted((synthetic_data / "png" / "valid" / "images").rglob("*.png"))[:3]
    alone = [p for _, _, p in ensemble_probabilities([member], images, 4, None, {})]
    twice = [p for _, _, p in ensemble_probabilities([member, member], images, 4, None, {})]
    assert all(np.abs(a - b).max() < 1e-6 for a, b in zip(alone, twice))


def test_the_ensemble_savedmodel_agrees_with_predict_py(trained, six_pairs, tmp_path):
    best, last = trained / "weights" / "best-weight_resnet18.h5", trained / "weights" / "last-weight_resnet18.h5"
    settings = {**NO_POSTPROCESSING, "threshold": 0.4, "fill_holes": True, "largest": True}
    (tmp_path / "pp.json").write_text(json.dumps({"settings": settings}))
    predict.main(["--weights", str(best), str(last), "--postprocessing", str(tmp_path / "pp.json"),
                  "--export", "savedmodel", "--output", str(tmp_path / "out")])  # fmt: skip
    serve = tf.saved_model.load(str(tmp_path / "out" / "savedmodel")).signatures["serving_default"]
    members = [load_member(w, {"overlap": 0.5, "batch_size": 4}) for w in (best, last)]
    image_path = sorted((six_pairs / "png" / "images").glob("*.png"))[0]
    _, _, expected = next(ensemble_probabilities(members, [image_path], 4, None, {}))
    served = serve(images=tf.constant(read_rgb(image_path)[None]))
    assert np.abs(served["probabilities"].numpy()[0, ..., 0] - expected).max() < 1e-4
    mask = served["mask"].numpy()[0, ..., 0]
    assert np.mean(mask != postprocess(expected, settings).numpy()) < 1e-3  # probabilities at 0.4 may differ by 1e-4


def test_resume_skips_finished_folds_and_completes_their_predictions(six_pairs, folds_work, capsys):
    history = (folds_work / "fold_0" / "tensorflow" / "logs" / "history.csv").read_text()
    out_of_fold = folds_work / "fold_1" / "tensorflow" / "out_of_fold"
    written = sorted(p.name for p in out_of_fold.rglob("*.png"))
    out_of_fold.rename(out_of_fold.with_name("moved"))  # as if killed after training, before its predictions
    run_training(six_pairs, folds_work, "--folds", str(FOLDS), "--epochs", "1", "--resume")
    assert "fold 0 is done" in capsys.readouterr().out
    assert (folds_work / "fold_0" / "tensorflow" / "logs" / "history.csv").read_text() == history  # not trained again
    assert sorted(p.name for p in out_of_fold.rglob("*.png")) == written


def test_a_fold_without_out_of_fold_predictions_is_named_with_the_command_that_trains_it(tmp_path):
    work_paths(tmp_path / "fold_0", "resnet18").out_of_fold.mkdir(parents=True)
    with pytest.raises(UserError) as error:
        fold_folders(tmp_path, "resnet18", 3)
    assert str(error.value) == (
        f"--cv {tmp_path}: folds 1, 2 of 3 without out-of-fold predictions: train them with train.py --folds 3 "
        "--fold 1 and train.py --folds 3 --fold 2 (with --resume if interrupted)"
    )
