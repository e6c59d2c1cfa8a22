"""Cross-validation: each fold's out-of-fold probabilities (written by train.py --folds after the fold trains), and
the report over all folds that predict.py --cv writes, with the post-processing chosen on them.

A fold's probabilities are those of its best weights for its validation images, at each image's own size, as uint8
PNGs (probability x 255, rounded) in WORK/fold_<K>/tensorflow/out_of_fold/, under the image's path in DATA/png/. With
several classes, the PNGs hold the most probable class (label masks), scored a class at a time, and post-processing
is chosen for each foreground class on its own.
"""

import json
import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import Optional

from segtf.config import TrainConfig, read_run_config
from segtf.dataset import pipeline
from segtf.dataset.folds import run_splits
from segtf.dataset.images import read_image
from segtf.dataset.layout import PNG_FOLDER, split_csv
from segtf.errors import UserError
from segtf.evaluation.pictures import COMPARISON_ROWS, save_comparison
from segtf.evaluation.postprocessing_choice import choose_postprocessing
from segtf.evaluation.scoring import image_rows, print_table, ratios
from segtf.files import write_image, write_text
from segtf.inference.postprocessing import NO_POSTPROCESSING, postprocess, postprocess_labels
from segtf.inference.predictor import ensemble_probabilities, load_member, read_rgb
from segtf.inference.sliding_window import DEFAULT_OVERLAP
from segtf.modeling.outputs import to_mask
from segtf.run_paths import RunPaths, work_paths
from segtf.text import counted

import numpy as np
import pandas as pd

POSTPROCESSING_FILE = "postprocessing.json"


def probability_png(probabilities: np.ndarray) -> np.ndarray:
    return np.round(np.clip(probabilities, 0, 1) * 255).astype(np.uint8)


def write_out_of_fold(paths: RunPaths, config: TrainConfig) -> None:
    """The best weights' probabilities for the fold's validation images, predicted as predict.py would, into
    paths.out_of_fold: written into a folder beside it that is renamed when all are there, so that its
    existence says the fold is done."""
    data_root, batch_size = Path(config.loader.data_root), config.loader.batch_size
    table = pipeline.read_samples(split_csv(data_root, run_splits(config.run.folds, config.run.fold)[1]))
    images = [Path(p) for p in table.image]
    member = load_member(paths.best, {"overlap": DEFAULT_OVERLAP, "batch_size": batch_size})
    partial = paths.out_of_fold.with_name(paths.out_of_fold.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    errors = {}
    for index, _, probabilities in ensemble_probabilities([member], images, batch_size, config.run.tta, errors):
        rel = images[index].relative_to(data_root / PNG_FOLDER)
        several = bool(member.class_names)
        pixels = to_mask(probabilities, several).astype(np.uint8) if several else probability_png(probabilities)
        write_image(partial / rel.with_suffix(".png"), pixels)
    if errors:
        raise UserError(f"{images[min(errors)]}: {errors[min(errors)]}: run data_preparation.py again")
    os.replace(partial, paths.out_of_fold)
    print(f"out-of-fold probabilities of {counted(len(images), 'image')} in {paths.out_of_fold}")


def fold_folders(work: Path, backbone: str, folds: int) -> list[RunPaths]:
    """The run paths of each fold of work, all of which must have their out-of-fold probabilities."""
    runs = [work_paths(work / f"fold_{k}", backbone) for k in range(folds)]
    missing = [str(k) for k, run in enumerate(runs) if not run.out_of_fold.is_dir()]
    if missing:
        which, them = ("fold", "it") if len(missing) == 1 else ("folds", "them")
        commands = " and ".join(f"train.py --folds {folds} --fold {k}" for k in missing)
        raise UserError(
            f"--cv {work}: {which} {', '.join(missing)} of {folds} without out-of-fold predictions: train {them} "
            f"with {commands} (with --resume if interrupted)"
        )
    return runs


def read_fold_config(work: Path) -> TrainConfig:
    """The configuration of the first fold of work, which every fold shares but for its number."""
    configs = sorted(work.glob("fold_*/tensorflow/run_config.json"))
    if not configs:
        raise UserError(f"--cv {work}: no fold_<K>/tensorflow/run_config.json there: train with train.py --folds N")
    return read_run_config(configs[0]).config


def out_of_fold_table(work: Path, data_root: Path) -> pd.DataFrame:
    """Every pair of train.csv with the fold whose out-of-fold probabilities hold it, and their file; UserError
    if a pair is in none or in several (photos added or removed since the folds trained)."""
    config = read_fold_config(work)
    runs = fold_folders(work, config.model.backbone, config.run.folds)
    table = pipeline.read_samples(split_csv(data_root, "train"))
    rels = [Path(p).relative_to(data_root / PNG_FOLDER).with_suffix(".png") for p in table.image]
    found = [[k for k, run in enumerate(runs) if (run.out_of_fold / rel).exists()] for rel in rels]
    for rel, where in zip(rels, found):
        if len(where) != 1:
            raise UserError(
                f"{rel}: out-of-fold probabilities in {len(where)} folds, not 1: the training pairs changed since the "
                "folds trained; train them again (--overwrite)"
            )
    table["fold"] = [where[0] for where in found]
    table["probabilities"] = [str(runs[where[0]].out_of_fold / rel) for rel, where in zip(rels, found)]
    table["name"] = [rel.as_posix() for rel in rels]
    return table


def read_items(table: pd.DataFrame, names: Optional[list[str]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """(probabilities in [0, 1], true mask) of each row of out_of_fold_table; with several classes (names), the
    (predicted, true) label masks."""
    items = []
    for predicted, mask in zip(table.probabilities, table["mask"]):
        predicted, true = read_image(Path(predicted)), read_image(Path(mask))
        items.append((predicted, true) if names else (predicted / np.float32(255), true > 0))
    return items


def score_rows(table: pd.DataFrame, items: list, settings: dict, names: Optional[list[str]]) -> pd.DataFrame:
    """The scores of each pair (one row, post-processed by settings; or a row a class), with its fold."""
    rows = []
    for name, fold, (predicted, true) in zip(table.name, table.fold, items):
        mask = postprocess_labels(predicted, settings, names) if names else postprocess(predicted, settings).numpy()
        rows += [{**row, "fold": fold} for row in image_rows(name, mask, true, names)]
    return pd.DataFrame(rows)


def print_folds(scored: pd.DataFrame, names: Optional[list[str]]) -> None:
    """Each fold's micro IoU and mean IoU over images (with several classes, their means over the foreground)."""
    for fold, members in scored.groupby("fold"):
        by_class = members.groupby("class", sort=False) if names else [(None, members)]
        scores = [(ratios(m.tp.sum(), m.fp.sum(), m.fn.sum())["iou"], m.iou.mean()) for _, m in by_class]
        micro, mean = np.mean(scores[1:] if names else scores, axis=0)
        print(f"  fold {fold}: {counted(members.image.nunique(), 'image')}, micro IoU {micro:.4f}, mean IoU {mean:.4f}")


def save_worst(
    table: pd.DataFrame, scored: pd.DataFrame, items: list, path: Path, names: Optional[list], colors: Optional[list]
) -> None:
    """photo | true | predicted rows of the COMPARISON_ROWS images with the lowest IoU (of the foreground classes'
    mean), masked as score_rows does, each named with its IoU."""
    foreground = scored[scored["class"] != names[0]] if names else scored
    image_iou = foreground.groupby("image", sort=False).iou.mean()
    index_of = {name: index for index, name in enumerate(table.name)}
    samples, captions = [], []
    for name, iou in image_iou.nsmallest(COMPARISON_ROWS).items():
        predicted, true = items[index_of[name]]
        mask = predicted if names else postprocess(predicted, NO_POSTPROCESSING).numpy()
        samples.append((read_rgb(table.image[index_of[name]]), true, mask))
        captions.append(f"{name}  IoU {iou:.3f}")
    save_comparison(samples, path, captions, names, colors)


def step_value(step: dict) -> str:
    """A chosen step's value as printed: none for a switch, min_size as a share of an image's pixels."""
    if step["value"] is True:
        return ""
    if step["step"] == "min_size":
        return f" {step['value']:.3%} of an image's pixels"
    return f" {step['value']:.4g}"


def print_steps(steps: list[dict]) -> None:
    print("post-processing, chosen on the out-of-fold predictions (micro IoU without and with each step):")
    for step in steps:
        verdict = "kept" if step["kept"] else "not kept"
        value = step_value(step)
        before, after = step["iou_before"], step["iou_after"]
        of_class = f"{step['class']}: " if "class" in step else ""
        print(f"  {of_class}{step['step']}{value}: {before:.4f} -> {after:.4f} ({after - before:+.5f}), {verdict}")


def cross_validation_report(work: Path, data_root: Path, out: Path) -> None:
    """OUT/metrics.csv (a row a training pair), the scores over all folds and by fold, the worst images in
    OUT/comparison.png, and the post-processing chosen on them in WORK/postprocessing.json."""
    table = out_of_fold_table(work, data_root)
    model = read_fold_config(work).model
    names = model.class_names
    items = read_items(table, names)
    scored = score_rows(table, items, NO_POSTPROCESSING, names)
    scored.to_csv(out / "metrics.csv", index=False, float_format="%.6f")
    rule = "the most probable class" if names else "threshold 0.5"
    print(f"cross-validation of {work}: out-of-fold predictions of {len(table)} training pairs, {rule}")
    print_table(scored, names)
    print_folds(scored, names)
    save_worst(table, scored, items, out / "comparison.png", names, model.class_colors)
    settings, steps = choose_postprocessing(items, names)
    print_steps(steps)
    when = datetime.now().isoformat("T", "seconds")
    chosen = {"settings": settings, "steps": steps, "pairs": len(table), "date": when}
    write_text(work / POSTPROCESSING_FILE, json.dumps(chosen, indent=2, default=float) + "\n")
    print(f"scores in {out / 'metrics.csv'}, worst images in {out / 'comparison.png'}")
    print(f"post-processing {settings} in {work / POSTPROCESSING_FILE}")
