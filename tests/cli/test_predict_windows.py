"""predict.py's --patch_size, --overlap and --tta: their ranges, masks at each image's size by windows or whole, and
windows for a run trained on patches."""

import json
import shutil
from pathlib import Path

from segtf.cli import predict
from segtf.cli.predict import predict_args
from segtf.inference import predictor
from segtf.inference import sliding_window as sw

import cv2
import numpy as np
import pytest


@pytest.mark.parametrize("flags, says", [
    (["--patch_size", "50"], "--patch_size: must be a multiple of 32"),
    (["--overlap", "1"], "--overlap: must be at least 0 and below 1"),
    (["--overlap", "-0.1"], "--overlap: must be at least 0 and below 1"),
    (["--tta", "rotate"], "--tta: invalid choice: 'rotate'"),
])  # fmt: skip
def test_predict_flags_out_of_range_exit_2_naming_the_flag(flags, says, capsys):
    with pytest.raises(SystemExit) as exit_info:
        predict_args(["--weights", "w", "--input", "i", "--output", "o", *flags])
    assert exit_info.value.code == 2 and says in capsys.readouterr().err


def masks_have_each_images_size(images: Path, out: Path) -> None:
    for image in images.rglob("*.*"):
        mask = cv2.imread(str(out / "masks" / image.relative_to(images).with_suffix(".png")), cv2.IMREAD_UNCHANGED)
        assert mask.shape == cv2.imread(str(image)).shape[:2] and set(np.unique(mask)) <= {0, 255}


@pytest.mark.parametrize("flags", [["--patch_size", "64", "--overlap", "0.25", "--tta", "flip"], ["--tta", "flip"]])
def test_predict_writes_masks_at_each_images_size_by_windows_or_whole(trained, synthetic_data, tmp_path, flags):
    images = synthetic_data / "valid" / "images"
    weights = trained / "weights" / "best-weight_resnet18.h5"
    predict.main(["--weights", str(weights), "--input", str(images), "--output", str(tmp_path), *flags])
    masks_have_each_images_size(images, tmp_path)


def test_predict_slides_windows_when_the_run_was_trained_on_patches(trained, synthetic_data, tmp_path, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(trained / "weights", run / "weights")
    config = json.loads((trained / "run_config.json").read_text())
    config["args"]["patch_size"] = 64
    (run / "run_config.json").write_text(json.dumps(config))
    patch_sizes = []

    def spy(predict_batch, image, **settings):
        patch_sizes.append(settings["patch_size"])
        return sw.predict_scaled(predict_batch, image, **settings)

    monkeypatch.setattr(predictor, "predict_scaled", spy)
    image = sorted((synthetic_data / "valid" / "images").rglob("*.*"))[0]
    predict.main(["--weights", str(run / "weights" / "best-weight_resnet18.h5"), "--input", str(image),
                  "--output", str(tmp_path / "out")])  # fmt: skip
    assert patch_sizes == [64]
