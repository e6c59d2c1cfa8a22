"""Predicting a folder of images or a prepared split: masks and overlays written into OUT, scored where the true
masks are known, with a table and a comparison picture."""

from pathlib import Path
from typing import Iterator, NamedTuple, Optional, Sequence

from segtf.dataset import pipeline
from segtf.dataset.classes import IGNORED, ClassRule, colors_to_labels, listed
from segtf.dataset.images import LOSSY_EXTENSIONS, read_image, to_binary_mask
from segtf.dataset.layout import PNG_FOLDER, split_csv
from segtf.dataset.preparation import list_by_stem
from segtf.errors import UserError
from segtf.evaluation.pictures import COMPARISON_ROWS, label_palette, legend, overlay, save_comparison, save_picture
from segtf.evaluation.scoring import image_rows, print_table
from segtf.files import write_image, write_palette_png
from segtf.inference.postprocessing import postprocess, postprocess_labels
from segtf.inference.predictor import Member, ensemble_probabilities
from segtf.modeling.outputs import to_mask
from segtf.text import counted

import numpy as np
import pandas as pd


class Inputs(NamedTuple):
    """Images to predict, their names relative to the input (their masks' paths under OUT/masks/), their true masks
    (None where unknown), and the files left out before prediction, each with why."""

    images: list[Path]
    rels: list[Path]
    truths: list[Optional[Path]]
    left_out: list[str]


def true_masks_by_image(rels: Sequence[Path], masks_dir: Path) -> list[Optional[Path]]:
    """The mask in masks_dir with each image's relative path and stem, or None."""
    if not masks_dir.is_dir():
        raise UserError(f"--masks {masks_dir} is not a folder")
    masks, _ = list_by_stem(masks_dir)
    return [masks.get(rel.with_suffix("").as_posix(), [None])[0] for rel in rels]


def split_images(data_root: Path, split: str) -> tuple[list[Path], list[Path], list[Path]]:
    """(images, relative names, masks) of a prepared split."""
    table = pipeline.read_samples(split_csv(data_root, split))
    images = [Path(p) for p in table.image]
    return images, [p.relative_to(data_root / PNG_FOLDER) for p in images], [Path(p) for p in table["mask"]]


def input_images(input_path: Path, left_out: list, out: Path) -> tuple[list[Path], list[Path]]:
    """(images, names relative to the input folder) of an image, or of every image below a folder but those in out
    (predict.py's own masks and overlays). Images sharing a name stem would write the same mask: they go to
    left_out."""
    if input_path.is_file():
        return [input_path], [Path(input_path.name)]
    if not input_path.is_dir():
        raise UserError(f"--input {input_path} does not exist")
    by_stem, _ = list_by_stem(input_path)
    own = out.resolve()
    if own.is_relative_to(input_path.resolve()):
        print(f"--input {input_path}: its images in --output {out} are left out (this script's own output)")
        by_stem = {stem: [p for p in paths if not p.resolve().is_relative_to(own)] for stem, paths in by_stem.items()}
    shared = [p for paths in by_stem.values() if len(paths) > 1 for p in paths]
    left_out += [f"{p}: several images share this name stem" for p in shared]
    images = [paths[0] for paths in by_stem.values() if len(paths) == 1]
    if not images and shared:
        raise UserError(f"--input {input_path}: every image shares its name stem with another ({shared[0].name}, "
                        f"{shared[1].name}), whose masks would have the same name: give each its own")  # fmt: skip
    if not images:
        raise UserError(f"--input {input_path}: no image there (PNG, JPEG, BMP, TIFF or WebP)")
    return images, [p.relative_to(input_path) for p in images]


def class_table(member: Member) -> Optional[ClassRule]:
    """The classes a model learned, with their colours where its masks had them; None for one class."""
    if not member.class_names:
        return None
    ignore = tuple(member.ignore_color) if member.ignore_color else None
    return ClassRule(tuple(member.class_names), tuple(tuple(c) for c in member.class_colors or ()), None, ignore)


def mask_of(
    photo: np.ndarray, probability: np.ndarray, settings: dict, classes: Optional[ClassRule]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mask, its PNG pixels, the overlay): one class, the probabilities post-processed by settings (0 and 255);
    several, the most probable class of each pixel (its index) post-processed by settings, the overlay in the classes'
    colours with a legend."""
    if classes:
        names, colors = list(classes.names), classes.colors or None
        labels = postprocess_labels(to_mask(probability, several=True), settings, names)
        return labels, labels, legend(overlay(photo, labels, names, colors), names, colors)
    mask = postprocess(probability, settings).numpy()
    return mask, mask.astype(np.uint8) * 255, overlay(photo, mask)


def predict_and_write(
    members: Sequence[Member], settings: dict, inputs: Inputs, out: Path, batch_size: int, tta: str, errors: dict,
    classes: Optional[ClassRule],
) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:  # fmt: skip
    """Write each image's mask (mask_of) and overlay into out; yield (index, photo, mask) for scoring. classes: the
    members' (class_table), None for one class."""
    images, rels = inputs.images, inputs.rels
    for index, photo, probability in ensemble_probabilities(members, images, batch_size, tta, errors):
        mask, pixels, drawn = mask_of(photo, probability, settings, classes)
        target = out / "masks" / rels[index].with_suffix(".png")
        if classes:  # indices that display in the classes' colours
            write_palette_png(target, pixels, label_palette(classes.names, classes.colors or None))
        else:
            write_image(target, pixels)
        save_picture(out / "overlays" / rels[index].with_suffix(".jpg"), drawn)
        yield index, photo, mask


def read_true_mask(path: Path, shape: tuple, classes: Optional[ClassRule]) -> np.ndarray:
    """A true mask of the given shape: booleans, or with several classes a label mask as data_preparation.py writes
    them (class indices, and IGNORED), read by the classes' colours where they have them; ValueError saying why it
    cannot be used."""
    if classes and classes.colors:
        true = colors_to_labels(read_image(path), classes)
    elif classes:
        count = len(classes.names)
        true = read_image(path, indices=True)
        if true.ndim != 2 or not np.isin(true, [*range(count), IGNORED]).all():
            raise ValueError(f"is not a label mask of {count} classes (data_preparation.py --classes writes them)")
    else:
        true = to_binary_mask(read_image(path, indices=True), lossy=Path(path).suffix.lower() in LOSSY_EXTENSIONS) > 0
    if true.shape != shape:
        raise ValueError(f"true mask {true.shape[::-1]} is not the image's size {shape[::-1]}")
    return true


class Drawn(NamedTuple):
    """An image to draw in comparison.png: its score, its caption, and the photo with its true and predicted masks."""

    iou: float
    caption: str
    sample: tuple


def image_iou(rows: list[dict], names: Optional[list[str]]) -> float:
    """One image's IoU from its rows of metrics.csv: its only row's, or the mean of its foreground classes'."""
    return float(np.mean([row["iou"] for row in rows if not names or row["class"] != names[0]]))


def score_predictions(
    predictions: Iterator, rels: list, truths: list, left_out: list, classes: Optional[ClassRule]
) -> tuple[list, list[Drawn]]:
    """Rows of scores for each prediction whose true mask is known (one, or one a class), and the COMPARISON_ROWS
    images of the lowest IoU to draw, worst first. True masks that cannot be used go to left_out."""
    rows, worst = [], []
    names = list(classes.names) if classes else None
    for index, photo, mask in predictions:
        if truths[index] is None:
            continue
        try:
            true = read_true_mask(truths[index], mask.shape, classes)
        except (ValueError, OSError) as error:
            left_out.append(f"{truths[index]}: {error}")
            continue
        name = rels[index].as_posix()
        scores = image_rows(name, mask, true, names)
        rows += scores
        iou = image_iou(scores, names)
        worst = sorted([*worst, Drawn(iou, f"{name}  IoU {iou:.3f}", (photo, true, mask))], key=lambda d: d.iou)
        worst = worst[:COMPARISON_ROWS]
    return rows, worst


def report(
    out: Path, written: int, rows: list, worst: list[Drawn], left_out: list, comparison: Path,
    classes: Optional[ClassRule],
) -> None:  # fmt: skip
    """Say where the masks are; write, print and draw the scores; name the files left out."""
    print(f"{counted(written, 'mask')} in {out / 'masks'}, overlays in {out / 'overlays'}")
    names = list(classes.names) if classes else None
    if rows:
        table = pd.DataFrame(rows)
        table.to_csv(out / "metrics.csv", index=False, float_format="%.6f")
        print_table(table, names)
        samples, captions = [d.sample for d in worst], [d.caption for d in worst]
        save_comparison(samples, comparison, captions, names, classes.colors or None if classes else None)
        print(f"scores in {out / 'metrics.csv'}, the {len(worst)} lowest-scored images in {comparison}")
    if left_out:
        print(f"{len(left_out)} left out:\n  " + "\n  ".join(left_out))


def folder_inputs(input_path: Path, masks: Optional[Path], out: Path) -> Inputs:
    """The images of --input but those in out, with the true masks of --masks where given."""
    left_out = []
    images, rels = input_images(input_path, left_out, out)
    truths = true_masks_by_image(rels, masks) if masks else [None] * len(images)
    if masks and not any(truths):
        raise UserError(f"--masks {masks}: no mask there has the relative path and name stem of an image of --input")
    return Inputs(images, rels, truths, left_out)


def split_inputs(data_root: Path, split: str) -> Inputs:
    """The images of a prepared split, with their true masks."""
    return Inputs(*split_images(data_root, split), [])


def predict_and_score(
    members: Sequence[Member], settings: dict, inputs: Inputs, out: Path, batch_size: int, tta: str, comparison: Path
) -> None:
    """Masks for the inputs, scored where the true masks are known."""
    errors, classes, left_out = {}, class_table(members[0]), list(inputs.left_out)
    predictions = predict_and_write(members, settings, inputs, out, batch_size, tta, errors, classes)
    rows, worst = score_predictions(predictions, inputs.rels, inputs.truths, left_out, classes)
    left_out += [f"{inputs.images[index]}: {error}" for index, error in sorted(errors.items())]
    unscored = [rel.as_posix() for rel, truth in zip(inputs.rels, inputs.truths) if truth is None]
    if unscored and len(unscored) < len(inputs.rels):
        print(f"{len(unscored)} without a true mask, not scored: {listed(unscored)}")
    report(out, len(inputs.images) - len(errors), rows, worst, left_out, comparison, classes)
    if not rows and len(unscored) < len(inputs.rels):
        raise UserError(f"none of the true masks could be used to score ({left_out[-1]})")
