"""postprocessing_choice.py: nnU-Net's rule, a step kept only where it raises the cross-validation IoU, for one class
and for each of several."""

from segtf.evaluation.postprocessing_choice import MIN_GAIN, choose_postprocessing, choose_steps
from segtf.inference.postprocessing import NO_POSTPROCESSING

import numpy as np
from helpers import NAIL_CLASSES, disc


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


def test_each_class_keeps_the_steps_that_raise_its_own_iou():
    """Specks of the plate that the truth lacks: removing them is kept for the plate; the lunula, in two parts in
    the truth, keeps no largest step."""
    blank = np.zeros((100, 100), bool)
    plate, speck = disc(blank, (30, 30), 15), disc(blank, (85, 85), 2)
    lunulae = disc(blank, (30, 70), 5) | disc(blank, (70, 40), 5)
    true = np.select([lunulae, plate], [2, 1], 0).astype(np.uint8)
    predicted = np.select([lunulae, plate | speck], [2, 1], 0).astype(np.uint8)
    settings, steps = choose_postprocessing([(predicted, true), (predicted, true)], NAIL_CLASSES)
    assert set(settings) == {"classes"} and set(settings["classes"]) == {"plate", "lunula"}
    assert settings["classes"]["plate"]["min_size"] > 0 and not settings["classes"]["lunula"]["largest"]
    plate_steps = [s for s in steps if s["class"] == "plate"]
    assert [s["step"] for s in plate_steps] == ["min_size", "fill_holes", "largest"]
    assert plate_steps[0]["kept"] and plate_steps[0]["iou_after"] == 1.0
    assert not any(s["kept"] for s in steps if s["class"] == "lunula")


def test_a_step_whose_gain_is_below_min_gain_is_not_kept():
    def iou(settings: dict) -> float:
        return 0.5 + (MIN_GAIN / 100 if settings["fill_holes"] else 0) + (MIN_GAIN if settings["largest"] else 0)

    settings, steps = choose_steps(iou, NO_POSTPROCESSING, [("fill_holes", [True]), ("largest", [True])])
    assert [s["kept"] for s in steps] == [False, True] and not settings["fill_holes"] and settings["largest"]
