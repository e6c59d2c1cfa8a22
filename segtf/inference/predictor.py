"""Probability maps of images at their own size, from one model or the average of several (an ensemble, such as the
folds of a cross-validation): each image resized to a model's input, or by sliding windows for a patch run, with
flip TTA. predict.py, train.py's out-of-fold predictions and the cross-validation report use it.
"""

from pathlib import Path
from typing import Iterator, NamedTuple, Optional, Sequence

from segtf.config import TrainConfig, read_run_config
from segtf.dataset.images import read_image, to_rgb
from segtf.dataset.input_scaling import resize_for_model, to_size
from segtf.errors import UserError
from segtf.inference.sliding_window import predict_scaled, window_predictor, with_tta
from segtf.modeling.network import build_model, load_weights
from segtf.modeling.outputs import squeeze_channel

import cv2
import numpy as np
import tensorflow as tf
from tqdm import tqdm

# An image and its probability map at its size (H x W, or H x W x K for K classes), with its index in the paths
Prediction = tuple[int, np.ndarray, np.ndarray]


class Member(NamedTuple):
    """One model of an ensemble, and how it is served: each image resized to size x size, or by windows (a dict of
    patch_size, scale, overlap and batch_size, as sliding_window.predict_scaled takes them); class_names: those of a
    run of several classes, else None; class_colors and ignore_color: the RGB of each class and of ignored pixels in
    the masks it learned from, when they were given by colour."""

    model: tf.keras.Model
    size: int
    windows: Optional[dict]
    class_names: Optional[list[str]] = None
    class_colors: Optional[list] = None
    ignore_color: Optional[list] = None


def input_side(member: Member) -> int:
    """The side of the square input a member's model takes: its image size, or a patch run's window."""
    return member.windows["patch_size"] if member.windows else member.size


def trained_config(weights: Path) -> Optional[TrainConfig]:
    """The configuration of the run that wrote the weights, from run_config.json beside them or a folder up; None
    for weights without one."""
    for folder in (weights.parent, weights.parent.parent):
        if (folder / "run_config.json").exists():
            return read_run_config(folder / "run_config.json").config
    return None


def load_model(weights: Path, backbone: Optional[str], image_size: Optional[int]) -> tuple[tf.keras.Model, int]:
    """The model with its weights, in float32, and its input size; backbone and image_size default to the run's."""
    if not weights.is_file():
        raise UserError(f"--weights {weights}: no such file")
    trained = trained_config(weights)
    if trained is None and not (backbone and image_size):
        raise UserError(f"no run_config.json beside {weights}: give --backbone and --image_size")
    backbone, image_size = backbone or trained.model.backbone, image_size or trained.loader.image_size
    arch = trained.model.arch if trained else "unet"
    model = build_model(backbone, "none", arch=arch, classes=trained.model.classes if trained else 1)
    load_weights(model, weights, "--weights", arch, backbone)
    return model, image_size


def load_member(weights: Path, settings: dict) -> Member:
    """A model served as its run was trained: settings may give backbone, image_size, patch_size and scale (None:
    the run's, from run_config.json), overlap and batch_size (for windows)."""
    model, size = load_model(weights, settings.get("backbone"), settings.get("image_size"))
    trained = trained_config(weights)
    patch_size = settings.get("patch_size") or (trained and trained.loader.patch_size)
    classes = (trained.model.class_names, trained.model.class_colors, trained.model.ignore_color) if trained else ()
    if not patch_size:
        return Member(model, size, None, *classes)
    scale = settings.get("scale") or (trained.loader.scale if trained else 1.0)
    windows = {"patch_size": patch_size, "scale": scale, **{k: settings[k] for k in ("overlap", "batch_size")}}
    return Member(model, size, windows, *classes)


def weights_files(paths: Sequence[Path]) -> list[Path]:
    """The weights each path stands for: an .h5 file itself; a work folder its best weights, or those of each of its
    folds (WORK/fold_<K>/tensorflow/weights/best-weight_*.h5)."""
    files = []
    for path in paths:
        if path.is_file():
            files.append(path)
            continue
        if not path.is_dir():
            raise UserError(f"--weights {path}: no such file or folder")
        found = sorted(path.glob("tensorflow/weights/best-weight_*.h5")) + sorted(
            path.glob("fold_*/tensorflow/weights/best-weight_*.h5"), key=lambda p: int(p.parts[-4].split("_")[1])
        )
        if not found:
            raise UserError(f"--weights {path}: no best-weight_*.h5 in its tensorflow/weights/ or fold_<K>/ folders")
        files += found
    return files


def read_rgb(path: Path) -> np.ndarray:
    """Any image OpenCV reads as RGB uint8; ValueError saying why it cannot be read."""
    return cv2.cvtColor(to_rgb(read_image(Path(path))), cv2.COLOR_BGR2RGB)


def image_batches(paths: Sequence[Path], size: int, batch_size: int, errors: dict) -> tf.data.Dataset:
    """(index, model input, height, width) batches, in the order of paths; a file that does not decode is left
    out, and errors[index] says why."""

    def load(index: np.int64) -> tuple[np.ndarray, bool]:
        try:
            return read_rgb(paths[index]), True
        except (ValueError, OSError) as error:
            errors[int(index)] = str(error)
            return np.zeros((1, 1, 3), np.uint8), False

    def load_tensor(index: tf.Tensor):
        image, ok = tf.numpy_function(load, [index], [tf.uint8, tf.bool])
        image.set_shape((None, None, 3))
        return index, image, ok

    def prepare(index: tf.Tensor, image: tf.Tensor, ok: tf.Tensor):
        return index, resize_for_model(image, size), tf.shape(image)[0], tf.shape(image)[1]

    return (
        tf.data.Dataset.range(len(paths))
        .map(load_tensor, num_parallel_calls=tf.data.AUTOTUNE)
        .filter(lambda index, image, ok: ok)
        .map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


def resized_probabilities(
    model: tf.keras.Model, paths: Sequence[Path], size: int, batch_size: int, tta: Optional[str], errors: dict
) -> Iterator[Prediction]:
    """Every image that decodes, resized to the model's input size x size, in batches."""
    predict_batch = with_tta(model.predict_on_batch, tta)
    for indices, images, heights, widths in image_batches(paths, size, batch_size, errors):
        probabilities = predict_batch(images.numpy())
        for index, probability, height, width in zip(indices.numpy(), probabilities, heights, widths):
            photo = read_rgb(paths[index])  # again: tf.data batches the resized copies, not the photos
            resized = to_size(probability, height, width).numpy()
            yield int(index), photo, squeeze_channel(resized)


def windowed_probabilities(
    model: tf.keras.Model, paths: Sequence[Path], windows: dict, tta: Optional[str], errors: dict
) -> Iterator[Prediction]:
    """Every image that decodes, by sliding windows on the image rescaled by windows' scale."""
    predict_batch = window_predictor(model)
    for index, path in enumerate(paths):
        try:
            photo = read_rgb(path)
        except (ValueError, OSError) as error:
            errors[index] = str(error)
            continue
        yield index, photo, predict_scaled(predict_batch, photo, **windows, tta=tta)


def member_probabilities(
    member: Member, paths: Sequence[Path], batch_size: int, tta: Optional[str], errors: dict
) -> Iterator[Prediction]:
    if member.windows:
        return windowed_probabilities(member.model, paths, member.windows, tta, errors)
    return resized_probabilities(member.model, paths, member.size, batch_size, tta, errors)


def ensemble_probabilities(
    members: Sequence[Member], paths: Sequence[Path], batch_size: int, tta: Optional[str], errors: dict
) -> Iterator[Prediction]:
    """(index into paths, photo, probability map at the photo's size) for every image that decodes, in the order
    of paths: the mean of the members' probabilities (one member: its own). errors[index] says why an image
    does not decode."""
    streams = [member_probabilities(m, paths, batch_size, tta, errors) for m in members]
    for predictions in tqdm(zip(*streams), total=len(paths), desc="predicting", unit="image"):
        index, photo, _ = predictions[0]
        yield index, photo, np.mean([p for _, _, p in predictions], axis=0, dtype=np.float32)
