"""predict.py: masks at each image's size, scores, pictures, the weights it needs. Its exports:
export/test_convert.py and export/test_checked.py; its sliding-window flags: cli/test_predict_windows.py."""

from pathlib import Path

from segtf.cli import predict

import cv2
import numpy as np
import pandas as pd
import pytest
from helpers import weights_of


@pytest.fixture(scope="module")
def photos(synthetic_data, tmp_path_factory) -> Path:
    """A folder of original images of several sizes and formats, one in a subfolder, one corrupt."""
    folder = tmp_path_factory.mktemp("photos")
    sources = sorted((synthetic_data / "valid" / "images").rglob("*.*"))[:5]
    for i, source in enumerate(sources):
        target = folder / ("sub" if i == 0 else "") / source.name
        target.parent.mkdir(exist_ok=True)
        target.write_bytes(source.read_bytes())
    (folder / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return folder


@pytest.fixture(scope="module")
def predicted(trained, photos, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("predicted")
    (out / "keep.txt").write_text("a file of the user's")
    predict.main(["--weights", weights_of(trained), "--input", str(photos), "--output", str(out)])
    return out


def test_masks_have_each_images_size_and_only_0_and_255(photos, predicted):
    images = [p for p in photos.rglob("*.*") if p.name != "corrupt.png"]
    for image in images:
        relative = image.relative_to(photos)
        mask = cv2.imread(str(predicted / "masks" / relative.with_suffix(".png")), cv2.IMREAD_UNCHANGED)
        assert mask.shape == cv2.imread(str(image)).shape[:2]
        assert set(np.unique(mask)) <= {0, 255}
        assert (predicted / "overlays" / relative.with_suffix(".jpg")).exists()
    assert len(list((predicted / "masks").rglob("*.png"))) == len(images)


def test_a_corrupt_file_is_named_and_the_rest_written(trained, photos, tmp_path, capsys):
    predict.main(["--weights", weights_of(trained), "--input", str(photos), "--output", str(tmp_path)])
    printed = capsys.readouterr().out
    assert "1 left out" in printed and "corrupt.png: does not decode" in printed
    assert not (tmp_path / "masks" / "corrupt.png").exists()


def test_images_sharing_a_name_stem_are_left_out_not_overwritten(trained, photos, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    image = next(p for p in photos.glob("*.*") if p.name != "corrupt.png")
    for suffix in (".png", ".bmp"):
        cv2.imwrite(str(folder / f"same{suffix}"), cv2.imread(str(image)))
    cv2.imwrite(str(folder / "other.png"), cv2.imread(str(image)))
    predict.main(["--weights", weights_of(trained), "--input", str(folder), "--output", str(tmp_path / "out")])
    assert "2 left out" in capsys.readouterr().out
    assert [p.name for p in (tmp_path / "out" / "masks").iterdir()] == ["other.png"]
    (folder / "other.png").unlink()
    with pytest.raises(SystemExit) as exit_info:
        predict.main(["--weights", weights_of(trained), "--input", str(folder), "--output", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert "every image shares its name stem with another (same.bmp, same.png)" in capsys.readouterr().err


def test_an_output_folder_inside_the_input_is_left_out_of_it(trained, photos, tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for image in sorted(p for p in photos.glob("*.*") if p.name != "corrupt.png")[:2]:
        (folder / image.name).write_bytes(image.read_bytes())
    for _ in range(2):
        predict.main(["--weights", weights_of(trained), "--input", str(folder), "--output", str(folder / "out")])
    assert "(this script's own output)" in capsys.readouterr().out
    assert len(list((folder / "out" / "masks").rglob("*.png"))) == 2


def test_existing_files_in_the_output_folder_are_kept(predicted):
    assert (predicted / "keep.txt").read_text() == "a file of the user's"


def test_scoring_a_prepared_split_writes_metrics_and_a_comparison(trained, synthetic_data, tmp_path, capsys):
    predict.main(["--weights", weights_of(trained), "--data_root", str(synthetic_data), "--output", str(tmp_path)])
    metrics = pd.read_csv(tmp_path / "metrics.csv")
    assert len(metrics) == len(pd.read_csv(synthetic_data / "csv_file" / "valid.csv"))
    assert {"iou", "f1", "precision", "recall", "true_foreground", "predicted_foreground"} <= set(metrics.columns)
    row = metrics.iloc[0]
    assert row.iou == pytest.approx(row.tp / (row.tp + row.fp + row.fn), abs=1e-6)
    printed = capsys.readouterr().out
    assert "micro (all pixels)" in printed and "five worst by IoU" in printed
    drawn = metrics.sort_values("iou", kind="stable").image.head(8)  # the 8 lowest-scored, ties in order, as drawn
    side = min(256, max(max(cv2.imread(str(synthetic_data / "png" / p)).shape[:2]) for p in drawn))  # tiles' side
    assert cv2.imread(str(tmp_path / "comparison.png")).shape[0] == 24 + 8 * side  # the titles' strip, 8 rows


def test_scoring_against_a_masks_folder(trained, synthetic_data, tmp_path):
    images, masks = synthetic_data / "valid" / "images", synthetic_data / "valid" / "masks"
    predict.main(["--weights", weights_of(trained), "--input", str(images), "--masks", str(masks),
                  "--output", str(tmp_path)])  # fmt: skip
    assert len(pd.read_csv(tmp_path / "metrics.csv")) == len(list(images.rglob("*.*")))


def test_training_curves_are_plotted_from_a_history(trained, tmp_path):
    predict.main(["--history", str(trained / "logs" / "history.csv"), "--output", str(tmp_path)])
    assert cv2.imread(str(tmp_path / "training_curves.png")).shape[1] > 600


def test_weights_without_run_config_need_backbone_and_size(trained, tmp_path, capsys):
    lone = tmp_path / "w.h5"
    lone.write_bytes(Path(weights_of(trained)).read_bytes())
    with pytest.raises(SystemExit) as exit_info:
        predict.main(["--weights", str(lone), "--export", "tflite", "--output", str(tmp_path)])
    assert exit_info.value.code == 2 and "--backbone and --image_size" in capsys.readouterr().err
