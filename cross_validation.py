"""Cross-validation: each fold's out-of-fold probabilities (written by train.py --folds after the fold trains), and
the report over all folds that predict.py --cv writes, with the post-processing chosen on them.

A fold's probabilities are those of its best weights for its validation images, at each image's own size, as uint8
PNGs (probability x 255, rounded) in WORK/fold_<K>/tensorflow/out_of_fold/, under the image's path in DATA/png/.
"""

import argparse
import json
import os
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

import dataloader
from data_preparation import split_csv
from folds import run_splits
from inference import ensemble_probabilities, load_member, read_rgb
from pictures import COMPARISON_ROWS, save_comparison
from postprocessing import NO_POSTPROCESSING, choose_postprocessing, postprocess
from scoring import image_row, print_scores, ratios
from sliding_window import DEFAULT_OVERLAP
from utils import PNG_FOLDER, UserError, write_image, write_text
from workdir import RunPaths, work_paths

POSTPROCESSING_FILE = "postprocessing.json"


def probability_png(probabilities: np.ndarray) -> np.ndarray:
    return np.round(np.clip(probabilities, 0, 1) * 255).astype(np.uint8)


def write_out_of_fold(paths: RunPaths, args: argparse.Namespace) -> None:
    """The best weights' probabilities for the fold's validation images, predicted as predict.py would, into
    paths.out_of_fold: written into a folder beside it that is renamed when all are there, so that its
    existence says the fold is done."""
    data_root = Path(args.data_root)
    table = dataloader.read_samples(split_csv(data_root, run_splits(args.folds, args.fold)[1]))
    images = [Path(p) for p in table.image]
    member = load_member(paths.best, {"overlap": DEFAULT_OVERLAP, "batch_size": args.batch_size})
    partial = paths.out_of_fold.with_name(paths.out_of_fold.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    errors = {}
    for index, _, probabilities in ensemble_probabilities([member], images, args.batch_size, args.tta, errors):
        rel = images[index].relative_to(data_root / PNG_FOLDER)
        write_image(partial / rel.with_suffix(".png"), probability_png(probabilities))
    if errors:
        raise UserError(f"{images[min(errors)]}: {errors[min(errors)]}: run data_preparation.py again")
    os.replace(partial, paths.out_of_fold)
    print(f"out-of-fold probabilities of {len(images)} images in {paths.out_of_fold}")


def fold_folders(work: Path, backbone: str, folds: int) -> list[RunPaths]:
    """The run paths of each fold of work, all of which must have their out-of-fold probabilities."""
    runs = [work_paths(work / f"fold_{k}", backbone) for k in range(folds)]
    missing = [str(k) for k, run in enumerate(runs) if not run.out_of_fold.is_dir()]
    if missing:
        raise UserError(
            f"--cv {work}: fold {', '.join(missing)} of {folds} has no out-of-fold predictions: "
            f"train it with train.py --folds {folds} --fold K (or --resume)"
        )
    return runs


def read_fold_config(work: Path) -> dict:
    """The run config arguments of the first fold of work, which every fold shares but for its number."""
    configs = sorted(work.glob("fold_*/tensorflow/run_config.json"))
    if not configs:
        raise UserError(f"--cv {work}: no fold_<K>/tensorflow/run_config.json there: train with train.py --folds N")
    return json.loads(configs[0].read_text())["args"]


def out_of_fold_table(work: Path, data_root: Path) -> pd.DataFrame:
    """Every pair of train.csv with the fold whose out-of-fold probabilities hold it, and their file; UserError
    if a pair is in none or in several (photos added or removed since the folds trained)."""
    config = read_fold_config(work)
    runs = fold_folders(work, config["backbone"], config["folds"])
    table = dataloader.read_samples(split_csv(data_root, "train"))
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


def read_items(table: pd.DataFrame) -> list[tuple[np.ndarray, np.ndarray]]:
    """(probabilities in [0, 1], true mask) of each row of out_of_fold_table."""
    items = []
    for probabilities, mask in zip(table.probabilities, table["mask"]):
        items.append((read_rgb(probabilities)[..., 0] / np.float32(255), read_rgb(mask)[..., 0] > 0))
    return items


def score_rows(table: pd.DataFrame, items: list, settings: dict) -> pd.DataFrame:
    """One row of scores a pair, post-processed by settings, with its fold."""
    rows = []
    for name, fold, (probabilities, true) in zip(table.name, table.fold, items):
        mask = postprocess(probabilities, settings).numpy()
        rows.append({**image_row(name, mask, true), "fold": fold})
    return pd.DataFrame(rows)


def print_folds(scored: pd.DataFrame) -> None:
    for fold, members in scored.groupby("fold"):
        micro = ratios(members.tp.sum(), members.fp.sum(), members.fn.sum())["iou"]
        print(f"  fold {fold}: {len(members)} images, micro IoU {micro:.4f}, mean IoU {members.iou.mean():.4f}")


def save_worst(table: pd.DataFrame, scored: pd.DataFrame, items: list, path: Path) -> None:
    """photo | true | predicted rows of the COMPARISON_ROWS images with the lowest IoU, masked as score_rows does."""
    samples = []
    for index in scored.nsmallest(COMPARISON_ROWS, "iou").index:
        probabilities, true = items[index]
        samples.append((read_rgb(table.image[index]), true, postprocess(probabilities, NO_POSTPROCESSING).numpy()))
    save_comparison(samples, path)


def print_steps(steps: list[dict]) -> None:
    print("post-processing, chosen on the out-of-fold predictions (micro IoU without and with each step):")
    for step in steps:
        verdict = "kept" if step["kept"] else "not kept"
        value = "" if step["value"] is True else f" {step['value']:.4g}"
        before, after = step["iou_before"], step["iou_after"]
        print(f"  {step['step']}{value}: {before:.4f} -> {after:.4f} ({after - before:+.5f}), {verdict}")


def cross_validation_report(work: Path, data_root: Path, out: Path) -> None:
    """OUT/metrics.csv (a row a training pair), the scores over all folds and by fold, the worst images in
    OUT/comparison.png, and the post-processing chosen on them in WORK/postprocessing.json."""
    table = out_of_fold_table(work, data_root)
    items = read_items(table)
    scored = score_rows(table, items, NO_POSTPROCESSING)
    scored.to_csv(out / "metrics.csv", index=False, float_format="%.6f")
    print(f"cross-validation of {work}: out-of-fold predictions of {len(table)} training pairs, threshold 0.5")
    print_scores(scored)
    print_folds(scored)
    save_worst(table, scored, items, out / "comparison.png")
    settings, steps = choose_postprocessing(items)
    print_steps(steps)
    when = datetime.now().isoformat("T", "seconds")
    chosen = {"settings": settings, "steps": steps, "pairs": len(table), "date": when}
    write_text(work / POSTPROCESSING_FILE, json.dumps(chosen, indent=2, default=float) + "\n")
    print(f"scores in {out / 'metrics.csv'}, worst images in {out / 'comparison.png'}")
    print(f"post-processing {settings} in {work / POSTPROCESSING_FILE}")
