"""pictures.py: masks drawn over photos and comparison rows, on small arrays."""

from segtf.evaluation import pictures

import numpy as np


def test_overlay_tints_the_mask_only_and_leaves_the_photo_unchanged():
    photo = np.full((20, 30, 3), 100, np.uint8)
    mask = np.zeros((20, 30), bool)
    mask[5:15, 10:20] = True
    drawn = pictures.overlay(photo, mask)
    assert (drawn[~mask] == 100).all() and (photo == 100).all()
    assert drawn[10, 15, 1] > 150 and drawn[10, 15, 0] < 100  # green inside the mask


def test_comparison_rows_fit_photo_true_and_predicted_into_squares():
    photo = np.full((40, 80, 3), 200, np.uint8)
    true, predicted = np.ones((40, 80), bool), np.zeros((40, 80), bool)
    rows = pictures.comparison_rows([(photo, true, predicted)] * 3, side=32)
    assert rows.shape == (3, 32, 96, 3)
    assert (rows[0, :8] == 0).all()  # the wide photo is centred on black, not stretched
    assert (rows[0, 16, 64:] == 200).all()  # nothing predicted: the third tile is the plain photo


def test_a_comparison_has_a_strip_naming_its_columns_and_classes_and_each_row_its_caption():
    photo = np.full((40, 80, 3), 200, np.uint8)
    true = predicted = np.zeros((40, 80), np.uint8)
    rows = pictures.comparison_rows([(photo, true, predicted)] * 2, 32, ["background", "plate", "lunula"])
    drawn = pictures.titled(rows, ["first.png  IoU 0.500", ""], ["background", "plate", "lunula"], None)
    assert drawn.shape == (24 + 2 * 16 + 2 * 32, 96, 3)
    header = drawn[: 24 + 2 * 16]
    assert (header[5:20, :90] > 200).any()  # the columns' titles, in white
    plate_line = header[24 + 4 : 24 + 16, :60]
    assert (np.abs(plate_line.astype(int) - pictures.class_color(2 - 1)).sum(axis=2) < 60).any()  # its colour
    assert not np.array_equal(drawn[56:88], rows[0]) and np.array_equal(drawn[88:], rows[1])  # only the captioned


def test_curves_are_titled_by_the_loss_and_one_epoch_shows_its_point(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)
    history = tmp_path / "history.csv"
    history.write_text("epoch,loss,iou,f1,val_loss,val_iou,val_f1\n0,0.5,0.4,0.6,0.6,0.3,0.5\n")
    pictures.plot_history(history, tmp_path / "curves.png", "loss (cross-entropy)")
    loss_axis = [f for f in figures if hasattr(f, "axes")][0].axes[0]
    assert loss_axis.get_title() == "loss (cross-entropy)"
    assert [line.get_marker() for line in loss_axis.lines] == ["o", "o"]
    figure = [f for f in figures if hasattr(f, "axes")][0]
    assert all(axis.get_legend() is not None for axis in figure.axes)  # valid's line named wherever it is drawn
