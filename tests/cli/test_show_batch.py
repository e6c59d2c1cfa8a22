"""dataloader.py, the command: a batch's shapes and the grid of augmented samples, its refusals in one line."""

from segtf.cli import show_batch

import cv2
import pytest


def test_the_command_turns_a_user_error_into_one_line_and_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        show_batch.main(["--data_root", str(tmp_path), "--mixed_precision", "false"])
    error = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and len(error.splitlines()) == 1
    assert error.startswith("error: ") and "does not exist: run data_preparation.py" in error


def test_command_prints_a_batch_and_saves_the_grid(synthetic_data, tmp_path, capsys):
    output = tmp_path / "grid.png"
    show_batch.main(["--data_root", str(synthetic_data), "--image_size", "64", "--batch_size", "8",
                     "--mixed_precision", "false", "--output", str(output)])  # fmt: skip
    printed = capsys.readouterr().out
    assert "images: shape (8, 64, 64, 3), float32, min 0" in printed
    assert "masks: shape (8, 64, 64, 1), float32, min 0, max 1" in printed
    assert cv2.imread(str(output)).shape == (2 * 64, 4 * 2 * 64, 3)


def test_tfrecord_without_resize_first_is_refused(synthetic_data, capsys):
    with pytest.raises(SystemExit) as exit_info:
        show_batch.main(["--data_root", str(synthetic_data), "--cache_format", "tfrecord", "--resize_first", "false"])
    assert exit_info.value.code == 2
    assert "--cache_format tfrecord keeps the samples at --image_size: it needs --resize_first True" in (
        capsys.readouterr().err
    )
