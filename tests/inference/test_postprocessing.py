"""postprocessing.py: connected components as OpenCV's, each step as documented, each class by its own settings."""

import json

from segtf.errors import UserError
from segtf.inference.postprocessing import component_labels, postprocess, postprocess_labels, read_postprocessing

import cv2
import numpy as np
import pytest
import tensorflow as tf
from helpers import NAIL_CLASSES, disc


def test_component_labels_are_opencvs_8_connected_components():
    rng = np.random.default_rng(0)
    for _ in range(10):
        mask = rng.random((40, 50)) > 0.55
        labels = component_labels(tf.constant(mask)).numpy()
        count, reference = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        assert (labels[~mask] == 0).all()
        assert len(set(zip(labels[mask], reference[mask]))) == count - 1 == len(np.unique(labels[mask]))


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


def test_each_class_is_post_processed_by_its_own_settings():
    """A plate (1) with a background hole, a lunula (2) inside it and a speck; two lunulae. Removed pixels become
    background; a hole is filled with background only, never over another class."""
    blank = np.zeros((100, 100), bool)
    plate, hole, speck = disc(blank, (30, 30), 15), disc(blank, (24, 30), 3), disc(blank, (80, 80), 2)
    lunula, other_lunula = disc(blank, (36, 30), 4), disc(blank, (80, 20), 6)
    labels = np.select([lunula | other_lunula, (plate & ~hole) | speck], [2, 1], 0).astype(np.uint8)
    same = postprocess_labels(labels, {"classes": {}}, NAIL_CLASSES)
    assert np.array_equal(same, labels)
    plate_only = {"min_size": (speck.sum() + 1) / blank.size, "fill_holes": True}
    cleaned = postprocess_labels(labels, {"classes": {"plate": plate_only}}, NAIL_CLASSES)
    assert np.array_equal(cleaned, np.select([lunula | other_lunula, plate & ~lunula], [2, 1], 0))
    largest = postprocess_labels(labels, {"classes": {"lunula": {"largest": True}}}, NAIL_CLASSES)
    assert np.array_equal(largest, np.where(lunula, 0, labels))  # the smaller lunula became background


WRITTEN = {"threshold": 0.45, "min_size": 0.001, "fill_holes": True, "largest": False}


@pytest.mark.parametrize(
    "settings, line",
    [
        ({**WRITTEN, "fill_holes": "false"}, 'settings.fill_holes is "false", where it takes true or false'),
        ({**WRITTEN, "largest": 0}, "settings.largest is 0, where it takes true or false"),
        ({**WRITTEN, "threshold": 5}, "settings.threshold is 5, where it takes a number above 0 and below 1"),
        ({**WRITTEN, "min_size": "0.01"}, 'settings.min_size is "0.01", where it takes a number from 0 to 1'),
        ({**WRITTEN, "thresold": 0.4}, "settings.thresold is not a key it knows (settings takes threshold, "),
        ({"classes": {"class_1": {}}}, "chosen for the classes class_1, not for these models"),
    ],
)
def test_a_postprocessing_file_is_checked_key_by_key_and_nothing_is_coerced(tmp_path, settings, line):
    path = tmp_path / "postprocessing.json"
    path.write_text(json.dumps({"settings": settings, "steps": [], "pairs": 4, "date": "2026-12-07T00:00:00"}))
    with pytest.raises(UserError) as error:
        read_postprocessing(path, None)
    assert str(error.value).startswith(f"{path}: {line}")
    assert str(error.value).endswith("predict.py --cv writes it anew, or give --postprocessing none")


def test_a_postprocessing_file_of_several_classes_names_the_class_at_fault_and_takes_missing_steps_as_none(tmp_path):
    path = tmp_path / "postprocessing.json"
    path.write_text(json.dumps({"settings": {"classes": {"plate": {"largest": True}, "lunula": {}}}}))
    read = read_postprocessing(path, NAIL_CLASSES)
    assert read["classes"] == {"plate": {"largest": True}, "lunula": {}}
    path.write_text(json.dumps({"settings": {"classes": {"plate": {"threshold": 0.4}, "lunula": {}}}}))
    with pytest.raises(UserError, match="settings.classes.plate.threshold is not a key it knows"):
        read_postprocessing(path, NAIL_CLASSES)
    for text, problem in [("{", "the file is not JSON"), ("[]", r"the file is \[\], where it takes an object of")]:
        path.write_text(text)
        with pytest.raises(UserError, match=problem):
            read_postprocessing(path, NAIL_CLASSES)
    path.write_text(json.dumps({"settings": WRITTEN}))
    assert read_postprocessing(path, None) == WRITTEN
