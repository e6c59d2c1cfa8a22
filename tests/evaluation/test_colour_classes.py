"""Classes given by colour, end to end in predict.py's part: the user's colour masks scored through the classes'
colours, label masks written as palette PNGs that show those colours, and the comparison picture."""

from pathlib import Path

from segtf.errors import UserError
from segtf.evaluation.prediction import folder_inputs, predict_and_score
from segtf.inference.postprocessing import NO_POSTPROCESSING
from segtf.inference.predictor import Member

import cv2
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

NAMES = ["background", "plate", "lunula"]
COLORS = [[0, 0, 0], [200, 30, 30], [30, 30, 200]]  # RGB


def constant_model(label: int) -> tf.keras.Model:
    """A model whose most probable class is label everywhere."""
    inputs = tf.keras.Input((32, 32, 3))
    logits = tf.keras.layers.Lambda(lambda x: tf.zeros_like(x[..., :1]) + tf.one_hot(label, 3) * 5)(inputs)
    return tf.keras.Model(inputs, tf.keras.layers.Softmax()(logits))


def write_case(folder: Path, name: str, rgb_mask: np.ndarray) -> None:
    for kind, array in (("images", np.full((40, 48, 3), 90, np.uint8)), ("masks", rgb_mask[..., ::-1])):
        (folder / kind).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / kind / f"{name}.png"), array)


def test_colour_masks_are_scored_by_the_classes_colours_and_label_masks_show_them(tmp_path, capsys):
    plate = np.zeros((40, 48, 3), np.uint8)
    plate[:20] = COLORS[1]
    write_case(tmp_path, "half", plate)
    write_case(tmp_path, "all", np.full((40, 48, 3), COLORS[1], np.uint8))
    member = Member(constant_model(1), 32, None, NAMES, COLORS, None)
    inputs = folder_inputs(tmp_path / "images", tmp_path / "masks", tmp_path / "out")
    predict_and_score([member], NO_POSTPROCESSING, inputs, tmp_path / "out", 2, "none", tmp_path / "comparison.png")
    printed = capsys.readouterr().out
    assert "2 images scored, 3 classes" in printed and "plate: micro IoU 0.7500" in printed
    written = Image.open(tmp_path / "out" / "masks" / "all.png")
    assert written.mode == "P" and np.array(written).max() == 1  # indices, the class
    assert written.getpalette()[:9] == [v for rgb in COLORS for v in rgb]  # shown in the classes' colours
    comparison = cv2.imread(str(tmp_path / "comparison.png"))
    assert comparison.shape[1] == 3 * 48  # tiles at the photos' size, up to 256 px


def test_masks_given_but_none_usable_is_one_error(tmp_path):
    write_case(tmp_path, "green", np.full((40, 48, 3), (0, 255, 0), np.uint8))  # no class's colour
    member = Member(constant_model(1), 32, None, NAMES, COLORS, None)
    inputs = folder_inputs(tmp_path / "images", tmp_path / "masks", tmp_path / "out")
    with pytest.raises(UserError, match="none of the true masks could be used to score .*not in --class_colors"):
        predict_and_score([member], NO_POSTPROCESSING, inputs, tmp_path / "out", 2, "none", tmp_path / "c.png")
    (tmp_path / "masks" / "green.png").rename(tmp_path / "masks" / "other.png")
    with pytest.raises(UserError, match="no mask there has the relative path and name stem of an image"):
        folder_inputs(tmp_path / "images", tmp_path / "masks", tmp_path / "out")
