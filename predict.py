"""Use a trained model: masks for new images, scores against true masks, export, pictures.

    python predict.py --weights WORK/tensorflow/weights/best-weight_efficientnetb4.h5 --input photos/ --output OUT
    python predict.py --weights W --data_root DATA --split valid --output OUT     # also scores
    python predict.py --weights W --input photos/ --masks true_masks/ --output OUT  # also scores
    python predict.py --weights W --input photos/ --patch_size 384 --tta flip --output OUT  # full resolution
    python predict.py --weights W --export savedmodel tflite --output OUT
    python predict.py --history WORK/tensorflow/logs/history.csv --output OUT      # training curves

Masks go to OUT/masks/ (PNG, 0 and 255, at each image's size), overlays to OUT/overlays/, scores
to OUT/metrics.csv. Nothing in OUT is deleted.
"""

import argparse
import json
import math
from pathlib import Path
from typing import Iterator, Optional, Sequence

import keras2  # noqa: F401

import cv2
import numpy as np
import pandas as pd
import tensorflow as tf
from tqdm import tqdm

import dataloader
from data_preparation import list_by_stem, split_csv
from export import export_savedmodel, export_tflite
from flags import add_tta, fraction_below_one, image_size, positive_int, scale_factor
from images import LOSSY_EXTENSIONS, read_image, to_binary_mask, to_rgb
from input_scaling import resize_for_model, to_size
from model import build_model
from pictures import overlay, plot_history, save_comparison, save_picture
from scoring import SCORES, ratios, scores
from sliding_window import predict_scaled, window_predictor, with_tta
from utils import PNG_FOLDER, UserError, exit_on_user_error, write_image

COMPARISON_ROWS = 8
COMPARISON_SIDE = 192  # pixels of each tile in comparison.png


def run_config(weights: Path) -> dict:
    """The arguments of the run that wrote the weights: run_config.json beside them or a folder up."""
    for folder in (weights.parent, weights.parent.parent):
        if (folder / "run_config.json").exists():
            return json.loads((folder / "run_config.json").read_text())["args"]
    return {}


def load_model(weights: Path, backbone: Optional[str], image_size: Optional[int]) -> tuple[tf.keras.Model, int]:
    """The model with its weights, in float32, and its input size."""
    if not weights.is_file():
        raise UserError(f"--weights {weights}: no such file")
    saved = run_config(weights)
    backbone, image_size = backbone or saved.get("backbone"), image_size or saved.get("image_size")
    if not backbone or not image_size:
        raise UserError(f"no run_config.json beside {weights}: give --backbone and --image_size")
    model = build_model(backbone, "none")
    try:
        model.load_weights(str(weights))
    except (ValueError, OSError) as error:
        raise UserError(f"{weights} does not fit a {backbone} Unet: {error}") from error
    return model, image_size





def read_rgb(path: Path) -> np.ndarray:
    """Any image OpenCV reads as RGB uint8; ValueError saying why it cannot be read."""
    return cv2.cvtColor(to_rgb(read_image(Path(path))), cv2.COLOR_BGR2RGB)


def image_batches(paths: Sequence[Path], size: int, batch_size: int, errors: dict) -> tf.data.Dataset:
    """(index, model input, height, width) batches; a file that does not decode is left out, and
    errors[index] says why."""

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
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(index into paths, photo, probability map at the photo's size) for every image that decodes, each image
    resized to the model's input size x size."""
    predict_batch = with_tta(model.predict_on_batch, tta)
    batches = image_batches(paths, size, batch_size, errors)
    for indices, images, heights, widths in tqdm(
        batches, total=math.ceil(len(paths) / batch_size), desc="predicting", unit="batch"
    ):
        probabilities = predict_batch(images.numpy())
        for index, probability, height, width in zip(indices.numpy(), probabilities, heights, widths):
            photo = read_rgb(paths[index])  # again: tf.data batches the resized copies, not the photos
            yield int(index), photo, to_size(probability, height, width).numpy()[..., 0]


def windowed_probabilities(
    model: tf.keras.Model,
    paths: Sequence[Path],
    windows: dict,
    tta: Optional[str],
    errors: dict,
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(index into paths, photo, probability map) for every image that decodes, predicted by sliding windows
    (window_settings) on the image rescaled by their scale, at the image's own resolution."""
    predict_batch = window_predictor(model)
    for index, path in enumerate(tqdm(paths, desc="predicting", unit="image")):
        try:
            photo = read_rgb(path)
        except (ValueError, OSError) as error:
            errors[index] = str(error)
            continue
        yield index, photo, predict_scaled(predict_batch, photo, **windows, tta=tta)


def window_settings(args: argparse.Namespace) -> Optional[dict]:
    """patch_size, scale, overlap and batch_size of sliding-window prediction: --patch_size and --scale, else the
    run's (run_config.json); None without a patch size."""
    trained = run_config(Path(args.weights))
    patch_size = args.patch_size or trained.get("patch_size")
    if not patch_size:
        return None
    scale = args.scale or trained.get("scale") or 1.0
    return {"patch_size": patch_size, "scale": scale, "overlap": args.overlap, "batch_size": args.batch_size}


def predict_probabilities(
    model: tf.keras.Model, paths: Sequence[Path], size: int, args: argparse.Namespace, errors: dict
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """(index into paths, photo, probability map at the photo's size) for every image that decodes: by
    sliding windows when there is a patch size (--patch_size, or the run's), else each image resized."""
    tta = None if args.tta == "none" else args.tta
    windows = window_settings(args)
    if windows:
        return windowed_probabilities(model, paths, windows, tta, errors)
    return resized_probabilities(model, paths, size, args.batch_size, tta, errors)




def print_scores(table: pd.DataFrame) -> None:
    means = table[list(SCORES)].mean()
    micro = ratios(table.tp.sum(), table.fp.sum(), table.fn.sum())
    print(f"{len(table)} images scored")
    print("  mean over images: " + ", ".join(f"{k} {v:.4f}" for k, v in means.items()))
    print("  micro (all pixels): " + ", ".join(f"{k} {v:.4f}" for k, v in micro.items()))
    print(
        "  five worst by IoU: " + ", ".join(f"{r.image} ({r.iou:.3f})" for r in table.nsmallest(5, "iou").itertuples())
    )


def true_masks_by_image(rels: Sequence[Path], masks_dir: Path) -> list[Optional[Path]]:
    """The mask in masks_dir with each image's relative path and stem, or None."""
    if not masks_dir.is_dir():
        raise UserError(f"--masks {masks_dir} is not a folder")
    masks, _ = list_by_stem(masks_dir)
    return [masks.get(rel.with_suffix("").as_posix(), [None])[0] for rel in rels]


def split_images(data_root: Path, split: str) -> tuple[list[Path], list[Path], list[Path]]:
    """(images, relative names, masks) of a prepared split."""
    table = dataloader.read_samples(split_csv(data_root, split))
    images = [Path(p) for p in table.image]
    return images, [p.relative_to(data_root / PNG_FOLDER) for p in images], [Path(p) for p in table["mask"]]


def input_images(input_path: Path, left_out: list) -> tuple[list[Path], list[Path]]:
    """(images, names relative to the input folder) of an image, or of every image below a folder.
    Images sharing a name stem would write the same mask: they go to left_out."""
    if input_path.is_file():
        return [input_path], [Path(input_path.name)]
    if not input_path.is_dir():
        raise UserError(f"--input {input_path} does not exist")
    by_stem, _ = list_by_stem(input_path)
    for paths in by_stem.values():
        if len(paths) > 1:
            left_out += [f"{p}: several images share this name stem" for p in paths]
    images = [paths[0] for paths in by_stem.values() if len(paths) == 1]
    if not images:
        raise UserError(f"no image in {input_path}")
    return images, [p.relative_to(input_path) for p in images]


def predict_and_write(
    model: tf.keras.Model, size: int, images: list, rels: list, out: Path, args: argparse.Namespace, errors: dict
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """Write each image's mask and overlay into out; yield (index, photo, mask) for scoring."""
    for index, photo, probability in predict_probabilities(model, images, size, args, errors):
        mask = probability > args.threshold
        write_image(out / "masks" / rels[index].with_suffix(".png"), mask.astype(np.uint8) * 255)
        save_picture(out / "overlays" / rels[index].with_suffix(".jpg"), overlay(photo, mask))
        yield index, photo, mask


def read_true_mask(path: Path, shape: tuple) -> np.ndarray:
    """A true mask as booleans of the given shape; ValueError saying why it cannot be used."""
    true = to_binary_mask(read_image(path), lossy=Path(path).suffix.lower() in LOSSY_EXTENSIONS) > 0
    if true.shape != shape:
        raise ValueError(f"true mask {true.shape[::-1]} is not the image's size {shape[::-1]}")
    return true


def score_predictions(predictions: Iterator, rels: list, truths: list, left_out: list) -> tuple[list, list]:
    """One row of scores per prediction whose true mask is known, and the first COMPARISON_ROWS
    (photo, true, predicted) samples to draw. True masks that cannot be used go to left_out."""
    rows, samples = [], []
    for index, photo, mask in predictions:
        if truths[index] is None:
            continue
        try:
            true = read_true_mask(truths[index], mask.shape)
        except (ValueError, OSError) as error:
            left_out.append(f"{truths[index]}: {error}")
            continue
        rows.append({"image": rels[index].as_posix(), **scores(mask, true)})
        rows[-1].update(true_foreground=true.mean(), predicted_foreground=mask.mean())
        if len(samples) < COMPARISON_ROWS:
            samples.append((photo, true, mask))
    return rows, samples


def report(out: Path, written: int, rows: list, samples: list, left_out: list, comparison: Path) -> None:
    """Say where the masks are; write, print and draw the scores; name the files left out."""
    print(f"{written} masks in {out / 'masks'}, overlays in {out / 'overlays'}")
    if rows:
        table = pd.DataFrame(rows)
        table.to_csv(out / "metrics.csv", index=False, float_format="%.6f")
        print_scores(table)
        save_comparison(samples, comparison, side=COMPARISON_SIDE)
        print(f"scores in {out / 'metrics.csv'}, pictures in {comparison}")
    if left_out:
        print(f"{len(left_out)} left out:\n  " + "\n  ".join(left_out))


def predict_and_score(model: tf.keras.Model, size: int, args: argparse.Namespace, out: Path) -> None:
    """Masks for --input or for a --data_root split, scored where the true masks are known."""
    left_out = []
    if args.data_root:
        images, rels, truths = split_images(Path(args.data_root), args.split)
    else:
        images, rels = input_images(Path(args.input), left_out)
        truths = true_masks_by_image(rels, Path(args.masks)) if args.masks else [None] * len(images)
    errors = {}
    predictions = predict_and_write(model, size, images, rels, out, args, errors)
    rows, samples = score_predictions(predictions, rels, truths, left_out)
    left_out += [f"{images[index]}: {error}" for index, error in sorted(errors.items())]
    report(out, len(images) - len(errors), rows, samples, left_out, Path(args.comparison or out / "comparison.png"))




def predict_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Masks for new images, scores against true masks, model export, and training curves. "
        "Writes into OUT without deleting anything there."
    )
    parser.add_argument("--weights", metavar="W", help="an .h5 file written by train.py")
    parser.add_argument("--input", metavar="PATH", help="an image, or a folder searched recursively")
    parser.add_argument("--output", required=True, metavar="OUT", help="folder for everything this writes")
    parser.add_argument(
        "--threshold", type=float, default=0.5, help="probability above which a pixel is mask (default: %(default)s)"
    )
    parser.add_argument(
        "--image_size", type=image_size, help="model input side in pixels (default: from run_config.json beside W)"
    )
    parser.add_argument("--backbone", help="the model's backbone (default: from run_config.json beside W)")
    parser.add_argument(
        "--batch_size", type=positive_int, default=8, help="images, or windows, per batch (default: %(default)s)"
    )
    parser.add_argument(
        "--patch_size",
        type=image_size,
        metavar="P",
        help="predict each image at its own resolution by P x P pixel windows (a multiple of 32) blended with "
        "Gaussian weights (default: the patch_size in run_config.json beside W; without one, off: each image is "
        "resized to image_size)",
    )
    parser.add_argument(
        "--scale",
        type=scale_factor,
        help="with a patch size: rescale each image by this factor before the windows, and the prediction back "
        "(default: the scale in run_config.json beside W, else 1)",
    )
    parser.add_argument(
        "--overlap",
        type=fraction_below_one,
        default=0.5,
        metavar="F",
        help="with a patch size: the share of a window's side that the next window overlaps, at least 0 and "
        "below 1 (default: %(default)s)",
    )
    add_tta(parser, "")
    parser.add_argument(
        "--masks", metavar="DIR", help="true masks for --input, paired by relative path and name stem: score them"
    )
    parser.add_argument("--data_root", metavar="DATA", help="score a prepared split of DATA instead of --input")
    parser.add_argument(
        "--split", default="valid", choices=["train", "valid"], help="with --data_root (default: %(default)s)"
    )
    parser.add_argument(
        "--comparison",
        metavar="PNG",
        help="when scoring: picture of photos with true and predicted masks (default: OUT/comparison.png)",
    )
    parser.add_argument(
        "--export",
        nargs="+",
        default=[],
        choices=["savedmodel", "tflite"],
        help="write OUT/savedmodel (uint8 images of any size in, probabilities at that size out) and/or "
        "OUT/model_float16.tflite (float [0, 1] images of image_size in)",
    )
    parser.add_argument(
        "--history", metavar="CSV", help="plot a run's history.csv (loss, IoU, F1) into OUT/training_curves.png"
    )
    args = parser.parse_args(argv)
    if not (args.input or args.data_root or args.export or args.history):
        parser.error("nothing to do: give --input, --data_root, --export or --history")
    if (args.input or args.data_root or args.export) and not args.weights:
        parser.error("--input, --data_root and --export need --weights")
    if args.input and args.data_root:
        parser.error("give --input (with --masks to score) or --data_root, not both")
    if not 0 < args.threshold < 1:
        parser.error("--threshold must be between 0 and 1")
    if args.masks and not args.input:
        parser.error("--masks scores the images of --input: give both")
    return args


def use_model(args: argparse.Namespace) -> None:
    """Training curves, exports and predictions, as the flags ask."""
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    if args.history:
        if not Path(args.history).is_file():
            raise UserError(f"--history {args.history}: no such file")
        plot_history(Path(args.history), out / "training_curves.png")
        print(f"training curves in {out / 'training_curves.png'}")
    if not args.weights:
        return
    model, size = load_model(Path(args.weights), args.backbone, args.image_size)
    windows = window_settings(args)
    if "savedmodel" in args.export:
        export_savedmodel(model, size, out / "savedmodel", windows)
    if "tflite" in args.export:  # of a patch run: its window; the app slides it
        export_tflite(model, windows["patch_size"] if windows else size, out / "model_float16.tflite")
    if args.input or args.data_root:
        predict_and_score(model, size, args, out)


def main(argv: Optional[Sequence[str]] = None) -> None:
    with exit_on_user_error():
        use_model(predict_args(argv))


if __name__ == "__main__":
    main()
