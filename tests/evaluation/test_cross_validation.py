"""Cross-validation: folds that partition the training pairs and stay put, the out-of-fold report, the
post-processing chosen by nnU-Net's rule, ensembles and their SavedModel, and datasets of a few pairs."""

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf
from conftest import run_training

import data_preparation
import predict
from folds import assign_folds, write_fold_csvs
from inference import ensemble_probabilities, load_member, read_rgb
from postprocessing import NO_POSTPROCESSING, choose_postprocessing, component_labels, postprocess, postprocess_labels
from synthetic import synthetic_sample

FOLDS = 2


def pairs(names: list[str], group: str) -> pd.DataFrame:
    return pd.DataFrame({"image": [f"png/images/{group}/{n}.png" for n in names], "group": group})


def test_folds_partition_the_pairs_spread_each_group_and_stay_put_when_pairs_are_added():
    table = pd.concat([pairs([f"a{i}" for i in range(23)], "a"), pairs([f"b{i}" for i in range(7)], "b")])
    folds = assign_folds(table, 5, pd.DataFrame(columns=["image", "fold"]))
    assert sorted(folds.unique()) == list(range(5))
    for _, members in folds.groupby(table.group.to_numpy()):
        counts = members.value_counts().reindex(range(5), fill_value=0)
        assert counts.max() - counts.min() <= 1  # each group spread over the folds
    assert folds.value_counts().max() - folds.value_counts().min() <= 1
    grown = pd.concat([table, pairs([f"c{i}" for i in range(4)], "c"), pairs(["a_new"], "a")])
    again = assign_folds(grown, 5, table.assign(fold=folds))
    assert list(again.iloc[: len(table)]) == list(folds)  # no earlier pair moved
    assert again.iloc[len(table) :].between(0, 4).all()


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
    data_preparation.main(["--data_root", str(data_root), "--workers", "2"])
    return data_root


def test_six_pairs_get_a_validation_pair_and_a_warning(tmp_path, capsys):
    """And with --valid_fraction 0 every pair goes to the folds; train.py without --folds then says so."""
    data_root = write_flat_pairs(tmp_path / "data", 6)
    data_preparation.main(["--data_root", str(data_root), "--workers", "1"])
    assert len(pd.read_csv(data_root / "csv_file" / "valid.csv")) >= 1
    assert len(pd.read_csv(data_root / "csv_file" / "train.csv")) >= 1
    assert "warning: valid holds" in capsys.readouterr().out
    data_preparation.main(["--data_root", str(data_root), "--workers", "1", "--valid_fraction", "0"])
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
    assert exit_info.value.code == 2 and "fold 0, 1 of 2 has no out-of-fold" in capsys.readouterr().err


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


def test_component_labels_are_opencvs_8_connected_components():
    rng = np.random.default_rng(0)
    for _ in range(10):
        mask = rng.random((40, 50)) > 0.55
        labels = component_labels(tf.constant(mask)).numpy()
        count, reference = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        assert (labels[~mask] == 0).all()
        assert len(set(zip(labels[mask], reference[mask]))) == count - 1 == len(np.unique(labels[mask]))


def disc(mask: np.ndarray, centre: tuple, radius: int) -> np.ndarray:
    return cv2.circle(mask.astype(np.uint8), centre, radius, 1, -1).astype(bool)


def test_each_step_acts_as_documented():
    blank = np.zeros((100, 100), bool)
    big, small = disc(blank, (30, 30), 15), disc(blank, (80, 80), 3)
    ring = big & ~disc(blank, (30, 30), 5)
    probabilities = (big | small) * 0.6
    assert postprocess(probabilities, {"threshold": 0.5}).numpy().sum() == (big | small).sum()
    assert postprocess(probabilities, {"threshold": 0.7}).numpy().sum() == 0
    removed = postprocess(probabilities, {"min_size": (small.sum() + 1) / blank.size}).numpy()
    assert np.array_equal(removed, big)
    kept = postprocess(probabilities, {"min_size": small.sum() / blank.size}).numpy()
    assert np.array_equal(kept, big | small)
    assert np.array_equal(postprocess(probabilities, {"largest": True}).numpy(), big)
    filled = postprocess(ring * 1.0, {"fill_holes": True}).numpy()
    assert np.array_equal(filled, big)
    edge = np.ones((20, 20), bool)
    edge[:5, :5] = False  # background that touches the border is not a hole
    assert np.array_equal(postprocess(edge * 1.0, {"fill_holes": True}).numpy(), edge)


def test_a_step_that_lowers_the_cross_validation_iou_is_not_kept():
    blank = np.zeros((100, 100), bool)
    two = disc(blank, (25, 25), 12) | disc(blank, (75, 75), 10)  # true masks of two parts: largest would cut one
    speck = disc(blank, (25, 25), 12) | disc(blank, (90, 10), 2)  # a prediction with a false speck
    items = [(two * 0.9, two), (speck * 0.9, disc(blank, (25, 25), 12))]
    settings, steps = choose_postprocessing(items)
    largest = next(s for s in steps if s["step"] == "largest")
    assert largest["iou_after"] < largest["iou_before"] and not largest["kept"] and not settings["largest"]
    size = next(s for s in steps if s["step"] == "min_size")
    assert size["kept"] and settings["min_size"] > 0  # removing the speck helps, keeping both parts of the first
    assert all(s["iou_after"] > s["iou_before"] for s in steps if s["kept"])


def test_resume_skips_finished_folds_and_completes_their_predictions(six_pairs, folds_work, capsys):
    history = (folds_work / "fold_0" / "tensorflow" / "logs" / "history.csv").read_text()
    out_of_fold = folds_work / "fold_1" / "tensorflow" / "out_of_fold"
    written = sorted(p.name for p in out_of_fold.rglob("*.png"))
    out_of_fold.rename(out_of_fold.with_name("moved"))  # as if killed after training, before its predictions
    run_training(six_pairs, folds_work, "--folds", str(FOLDS), "--epochs", "1", "--resume")
    assert "fold 0 is done" in capsys.readouterr().out
    assert (folds_work / "fold_0" / "tensorflow" / "logs" / "history.csv").read_text() == history  # not trained again
    assert sorted(p.name for p in out_of_fold.rglob("*.png")) == written


NAMES = ["background", "plate", "lunula"]


def test_each_class_is_post_processed_by_its_own_settings():
    """A plate (1) with a background hole, a lunula (2) inside it and a speck; two lunulae. Removed pixels become
    background; a hole is filled with background only, never over another class."""
    blank = np.zeros((100, 100), bool)
    plate, hole, speck = disc(blank, (30, 30), 15), disc(blank, (24, 30), 3), disc(blank, (80, 80), 2)
    lunula, other_lunula = disc(blank, (36, 30), 4), disc(blank, (80, 20), 6)
    labels = np.select([lunula | other_lunula, (plate & ~hole) | speck], [2, 1], 0).astype(np.uint8)
    same = postprocess_labels(labels, {"classes": {}}, NAMES)
    assert np.array_equal(same, labels)
    plate_only = {"min_size": (speck.sum() + 1) / blank.size, "fill_holes": True}
    cleaned = postprocess_labels(labels, {"classes": {"plate": plate_only}}, NAMES)
    assert np.array_equal(cleaned, np.select([lunula | other_lunula, plate & ~lunula], [2, 1], 0))
    largest = postprocess_labels(labels, {"classes": {"lunula": {"largest": True}}}, NAMES)
    assert np.array_equal(largest, np.where(lunula, 0, labels))  # the smaller lunula became background


def test_each_class_keeps_the_steps_that_raise_its_own_iou():
    """Specks of the plate that the truth lacks: removing them is kept for the plate; the lunula, in two parts in
    the truth, keeps no largest step."""
    blank = np.zeros((100, 100), bool)
    plate, speck = disc(blank, (30, 30), 15), disc(blank, (85, 85), 2)
    lunulae = disc(blank, (30, 70), 5) | disc(blank, (70, 40), 5)
    true = np.select([lunulae, plate], [2, 1], 0).astype(np.uint8)
    predicted = np.select([lunulae, plate | speck], [2, 1], 0).astype(np.uint8)
    settings, steps = choose_postprocessing([(predicted, true), (predicted, true)], NAMES)
    assert set(settings) == {"classes"} and set(settings["classes"]) == {"plate", "lunula"}
    assert settings["classes"]["plate"]["min_size"] > 0 and not settings["classes"]["lunula"]["largest"]
    plate_steps = [s for s in steps if s["class"] == "plate"]
    assert [s["step"] for s in plate_steps] == ["min_size", "fill_holes", "largest"]
    assert plate_steps[0]["kept"] and plate_steps[0]["iou_after"] == 1.0
    assert not any(s["kept"] for s in steps if s["class"] == "lunula")
