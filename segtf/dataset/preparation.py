"""Preparing a dataset: pair images with masks, convert them to PNG under DATA/png/, split them, and write the
CSVs, the masks' fingerprint, the manifest of what was converted (reruns convert only changes) and a summary."""

import functools
import hashlib
import json
import multiprocessing
import os
import struct
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import NamedTuple, Optional

from segtf.checked import Source, fields, load_json, shown
from segtf.dataset.classes import (
    IGNORED,
    ClassRule,
    class_columns,
    class_fractions,
    to_label_mask,
    write_classes,
)
from segtf.dataset.fingerprint import foreground_names, pair_fingerprint, write_fingerprint
from segtf.dataset.images import (
    IMAGE_EXTENSIONS,
    LOSSY_EXTENSIONS,
    MaskRule,
    align,
    read_source,
    to_binary_mask,
    to_rgb,
)
from segtf.dataset.layout import CSV_FOLDER, PNG_FOLDER, split_csv
from segtf.dataset.summary import print_summary, rejections
from segtf.errors import UserError
from segtf.files import write_image, write_text

import cv2
import numpy as np
import pandas as pd
from tqdm import tqdm

MANIFEST = "prepared.json"
MASK_FOLDERS = ("masks", "labels")
DEFAULT_GROUP = "default"
CSV_COLUMNS = ["image", "mask", "group", "height", "width", "foreground"]


class Pair(NamedTuple):
    image: Path
    mask: Path
    group: str
    split: Optional[str]


def find_sources(data_root: Path) -> list[tuple[Optional[str], Path, Path]]:
    """(split, images folder, masks folder) for each split folder; split None means 'to be split'."""
    splits = [s for s in ("train", "valid") if (data_root / s / "images").is_dir()]
    if splits and "train" not in splits:
        raise UserError(f"{data_root / 'valid'} exists but {data_root / 'train' / 'images'} does not")
    parents = [(s if len(splits) == 2 else None, data_root / s) for s in splits] or [(None, data_root)]
    sources = []
    for split, parent in parents:
        masks = next((parent / m for m in MASK_FOLDERS if (parent / m).is_dir()), None)
        if not (parent / "images").is_dir() or masks is None:
            raise UserError(
                f"no dataset in {data_root}: expected {data_root}/train/images with "
                f"{data_root}/train/masks, or {data_root}/images with {data_root}/masks (or labels)"
            )
        sources.append((split, parent / "images", masks))
    return sources


def list_by_stem(folder: Path) -> tuple[dict[str, list[Path]], list[Path]]:
    """Image files keyed by relative path without extension, and the files that are not images."""
    by_stem: dict[str, list[Path]] = {}
    others = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        if path.suffix.lower() in IMAGE_EXTENSIONS:
            by_stem.setdefault(path.relative_to(folder).with_suffix("").as_posix(), []).append(path)
        else:
            others.append(path)
    return by_stem, others


def pair_files(split: Optional[str], images_dir: Path, masks_dir: Path) -> tuple[list[Pair], list[dict]]:
    """Match images and masks by relative path and stem; list what cannot be matched."""
    images, other_images = list_by_stem(images_dir)
    masks, other_masks = list_by_stem(masks_dir)
    pairs, rejected = [], []
    for path in other_images + other_masks:
        rejected.append({"image": path, "mask": None, "reason": "not an image file"})
    for key in sorted(images.keys() | masks.keys()):
        image_paths, mask_paths = images.get(key, []), masks.get(key, [])
        if len(image_paths) > 1 or len(mask_paths) > 1:
            for path in image_paths + mask_paths:
                rejected.append({"image": path, "mask": None, "reason": "several files share this name stem"})
        elif not mask_paths:
            rejected.append({"image": image_paths[0], "mask": None, "reason": "no mask"})
        elif not image_paths:
            rejected.append({"image": None, "mask": mask_paths[0], "reason": "no image"})
        else:
            group = key.split("/")[0] if "/" in key else DEFAULT_GROUP
            pairs.append(Pair(image_paths[0], mask_paths[0], group, split))
    return pairs, rejected


def pair_hash(key: str, seed: int) -> float:
    """A number from 0 to 1 drawn by a hash of the pair's relative path and the seed alone."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{key}".encode()).digest()[:8], "big") / 2**64


def split_pairs(pairs: list[Pair], valid_fraction: float, seed: int, data_root: Path) -> list[Pair]:
    """Give each pair without a split one: valid when its pair_hash is below valid_fraction, so that about
    valid_fraction of each group goes to valid and adding or removing photos never moves another one. A set of 2
    or more pairs that this leaves with no valid pair, or no training pair, gets one: the pair nearest the line."""
    unsplit = [i for i, p in enumerate(pairs) if not p.split]
    draws = {i: pair_hash(relative(data_root, pairs[i].image.with_suffix("")), seed) for i in unsplit}
    splits = {i: "valid" if draw < valid_fraction else "train" for i, draw in draws.items()}
    if len(unsplit) >= 2 and valid_fraction > 0:
        for missing, nearest in (("valid", min), ("train", max)):
            if missing not in splits.values():
                splits[nearest(draws, key=draws.get)] = missing
    return [p._replace(split=splits[i]) if i in splits else p for i, p in enumerate(pairs)]


def png_path(data_root: Path, source: Path) -> Path:
    return data_root / PNG_FOLDER / source.relative_to(data_root).with_suffix(".png")


def png_size(path: Path) -> tuple[int, int]:
    """(height, width) from a PNG header, without decoding the pixels."""
    with open(path, "rb") as f:
        width, height = struct.unpack(">II", f.read(24)[16:24])
    return height, width


def source_record(path: Path, data: Optional[bytes] = None) -> dict:
    """What identifies a source's content: size and modification time, cheap to read, and its sha256."""
    stat = path.stat()
    digest = hashlib.sha256(data if data is not None else path.read_bytes()).hexdigest()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}


def unchanged(path: Path, known: Optional[dict]) -> Optional[dict]:
    """The record of path if its content is the one recorded in known, else None. Size and time are
    compared first; when they differ, the content is hashed (a copy with an older time, `cp -p`)."""
    if known is None:
        return None
    stat = path.stat()
    if [stat.st_size, stat.st_mtime_ns] == [known["size"], known["mtime_ns"]]:
        return known
    record = source_record(path)
    return record if record["sha256"] == known["sha256"] else None


def convert_pair(
    pair: Pair, targets: tuple[Path, Path], rule: MaskRule, classes: Optional[ClassRule]
) -> tuple[dict, dict]:
    """Write the pair's PNGs, the mask binary (0 and 255) or, with classes, a label mask; return the records of its
    two sources. ValueError starting with the file at fault ("image ..." or "mask ...")."""
    image_data, mask_data = pair.image.read_bytes(), pair.mask.read_bytes()
    by_index = not (classes and classes.colors)  # a palette mask's indices are its classes, unless given by colour
    mask_source = read_source(mask_data, pair.mask, "mask", indices=by_index)
    image, mask = align(*read_source(image_data, pair.image, "image"), *mask_source)
    try:
        if classes:
            target = to_label_mask(mask, classes, rule, pair.mask.suffix)
        else:
            target = to_binary_mask(mask, rule, lossy=pair.mask.suffix.lower() in LOSSY_EXTENSIONS)
    except ValueError as error:
        raise ValueError(f"mask {error}") from error
    write_image(targets[0], to_rgb(image))
    write_image(targets[1], target)
    return source_record(pair.image, image_data), source_record(pair.mask, mask_data)


def prepare_pair(
    pair: Pair, data_root: Path, rule: MaskRule, classes: Optional[ClassRule], known: dict, force: bool
) -> dict:
    """Convert one pair unless its PNGs hold its sources' content already, and describe it (with classes, each
    class's share of the pixels too) and fingerprint its mask, converted or not; a rejected pair carries a 'reason'.
    known: the records of the last finished run, by relative path."""
    row = {"image": pair.image, "mask": pair.mask, "split": pair.split, "group": pair.group, "converted": 0}
    targets = png_path(data_root, pair.image), png_path(data_root, pair.mask)
    sources = (pair.image, pair.mask)
    records = [None, None]
    if not force and all(t.exists() for t in targets):
        records = [unchanged(s, known.get(relative(data_root, s))) for s in sources]
    if None in records:
        try:
            records = convert_pair(pair, targets, rule, classes)
        except ValueError as error:
            return {**row, "reason": str(error)}
        except OSError as error:
            return {**row, "reason": f"cannot be read or written: {error}"}
        row["converted"] = 2
    height, width = png_size(targets[0])
    mask = cv2.imread(str(targets[1]), cv2.IMREAD_UNCHANGED)
    if mask.shape != (height, width):  # a rejected pair leaves no PNG behind
        for target in targets:
            target.unlink(missing_ok=True)
        reason = f"size mismatch: image {width}x{height}, mask {mask.shape[1]}x{mask.shape[0]}"
        return {**row, "converted": 0, "reason": reason}
    shares = {}
    if classes:
        count = len(classes.names)
        shares = dict(zip(class_columns(count), map(float, class_fractions(mask, count))))
        mask = np.where(mask == IGNORED, 0, mask)
    return {
        **row,
        "image": targets[0],
        "mask": targets[1],
        "height": height,
        "width": width,
        "foreground": float(np.count_nonzero(mask)) / mask.size,
        **shares,
        "fingerprint": pair_fingerprint(mask, foreground_names(classes.names if classes else None)),
        "records": {relative(data_root, s): r for s, r in zip(sources, records)},
    }


def prepare_all(
    pairs: list[Pair],
    data_root: Path,
    rules: tuple[MaskRule, Optional[ClassRule]],
    known: dict,
    force: bool,
    workers: Optional[int],
) -> list[dict]:
    task = functools.partial(
        prepare_pair, data_root=data_root, rule=rules[0], classes=rules[1], known=known, force=force
    )
    # forkserver, not fork: a child forked while OpenCV's thread pool holds a lock waits on it forever in
    # distanceTransform or dilate (seen in the suite, where the parent had run OpenCV before)
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(workers or os.cpu_count(), mp_context=context) as pool:
        return list(tqdm(pool.map(task, pairs, chunksize=4), total=len(pairs), desc="preparing", unit="pair"))


def relative(data_root: Path, path: Optional[Path]) -> str:
    return path.relative_to(data_root).as_posix() if path is not None else ""


def write_csvs(data_root: Path, rows: list[dict], rejected: list[dict], classes: Optional[ClassRule]) -> list[Path]:
    """Write train, valid, train_<group> and rejected CSVs, removing group CSVs of earlier runs."""
    csv_dir = data_root / CSV_FOLDER
    columns = CSV_COLUMNS + (class_columns(len(classes.names)) if classes else [])
    table = pd.DataFrame(rows, columns=columns + ["split"])
    for column in ("image", "mask"):
        table[column] = table[column].map(functools.partial(relative, data_root))
    table = table.sort_values("image")
    written = []
    for split in ("train", "valid"):
        written.append(split_csv(data_root, split))
        table[table.split == split][columns].to_csv(written[-1], index=False, float_format="%.6f")
    for group, members in table[table.split == "train"].groupby("group"):
        written.append(split_csv(data_root, f"train_{group}"))
        members[columns].to_csv(written[-1], index=False, float_format="%.6f")
    train = table[table.split == "train"]
    for k in range(1, len(classes.names)) if classes else []:
        written.append(csv_dir / f"classes_train_{k}.csv")
        train[train[f"class_{k}"] > 0][columns].to_csv(written[-1], index=False, float_format="%.6f")
    for stale in (set(csv_dir.glob("train_*.csv")) | set(csv_dir.glob("classes_train_*.csv"))) - set(written):
        stale.unlink()
    rejected_table = pd.DataFrame(
        [
            {"image": relative(data_root, r["image"]), "mask": relative(data_root, r["mask"]), "reason": r["reason"]}
            for r in rejected
        ],
        columns=["image", "mask", "reason"],
    ).sort_values(["image", "mask"])
    rejected_table.to_csv(csv_dir / "rejected.csv", index=False)
    return written


def read_manifest(data_root: Path) -> dict:
    """What the last finished run recorded: its mask rule and the record of each source it converted."""
    path = data_root / PNG_FOLDER / MANIFEST
    if not path.exists():
        return {"mask_rule": None, "sources": {}}
    source = Source(path, "delete it, and data_preparation.py converts every pair again")
    manifest = fields(load_json(source), ("mask_rule", "sources"), source, "")
    if not isinstance(manifest["sources"], dict):
        raise source.fault(f"sources is {shown(manifest['sources'])}, where it takes an object of converted sources")
    return manifest


def rule_record(rule: MaskRule, classes: Optional[ClassRule]) -> dict:
    record = {"threshold": rule.threshold, "foreground": list(rule.foreground)}
    return {**record, "classes": classes.record()} if classes else record  # one class: as before classes existed


def write_manifest(data_root: Path, rules: tuple[MaskRule, Optional[ClassRule]], results: list[dict]) -> None:
    """Written only after a finished run, so that an interrupted one is checked again next time."""
    sources = {k: v for r in results for k, v in r.get("records", {}).items()}
    manifest = {"mask_rule": rule_record(*rules), "sources": dict(sorted(sources.items()))}
    write_text(data_root / PNG_FOLDER / MANIFEST, json.dumps(manifest, indent=1) + "\n")


def find_pairs(data_root: Path, valid_fraction: float, seed: int) -> tuple[list[Pair], list[dict]]:
    """Every image/mask pair of the dataset, each with its split, and the files that do not pair."""
    pairs, rejected = [], []
    for split, images_dir, masks_dir in find_sources(data_root):
        found, unmatched = pair_files(split, images_dir, masks_dir)
        pairs += found
        rejected += unmatched
    return split_pairs(pairs, valid_fraction, seed, data_root), rejected


def open_dataset(data_root: Path, valid_fraction: float, seed: int) -> tuple[list[Pair], list[dict]]:
    """The pairs of data_root (find_pairs) and the files that do not pair, once the folders written into exist."""
    if not data_root.is_dir():
        raise UserError(f"data root {data_root} does not exist")
    pairs, rejected = find_pairs(data_root, valid_fraction, seed)
    try:
        for folder in (PNG_FOLDER, CSV_FOLDER):
            (data_root / folder).mkdir(exist_ok=True)
    except OSError as error:
        raise UserError(f"cannot write into {data_root}: {error.strerror}") from error
    return pairs, rejected


def drop(row: dict, reason: str) -> dict:
    """A prepared pair rejected after all: its PNGs removed, so that DATA/png/ holds the prepared pairs only."""
    for png in (row["image"], row["mask"]):
        png.unlink(missing_ok=True)
    return {**{k: v for k, v in row.items() if k != "records"}, "converted": 0, "reason": reason}


def prepare(
    data_root: Path,
    pairs: list[Pair],
    rejected: list[dict],
    rules: tuple[MaskRule, Optional[ClassRule]],
    drop_empty: bool,
    workers: Optional[int],
) -> None:
    """Convert the pairs of open_dataset by the mask rules, write the CSVs and the manifest, print a summary."""
    manifest = read_manifest(data_root)
    force = manifest["mask_rule"] not in (None, rule_record(*rules))  # masks made by another rule
    results = prepare_all(pairs, data_root, rules, manifest["sources"], force, workers)
    if drop_empty:
        results = [drop(r, "empty mask (--drop_empty)") if r.get("foreground") == 0 else r for r in results]
    rows = [r for r in results if "reason" not in r]
    rejected += [r for r in results if "reason" in r]
    try:
        write_manifest(data_root, rules, results)
        write_csvs(data_root, rows, rejected, rules[1])
        write_classes(data_root, rules[1])
        fingerprint = write_fingerprint(data_root, rows, foreground_names(rules[1].names if rules[1] else None))
    except OSError as error:  # a full disk
        raise UserError(f"cannot write into {data_root}: {error.strerror or error}") from error
    if not rows:
        see = f"; {len(rejected)} rejected{rejections(data_root, rejected)}" if rejected else ""
        raise UserError(f"no usable image/mask pair in {data_root}{see}")
    print_summary(data_root, rows, rejected, sum(r["converted"] for r in results), rules[1], fingerprint)
