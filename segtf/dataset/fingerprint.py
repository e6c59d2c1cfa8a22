"""The dataset fingerprint, as nnU-Net's: what the prepared masks hold, for a training plan to read. Each pair's mask
is measured where preparation reads it (pair_fingerprint): each class's share of the pixels, its objects (8-connected
components), the smallest one's area and the structures' width. DATA/csv_file/fingerprint.csv keeps a row a prepared
pair; DATA/csv_file/fingerprint.json their spreads over the training pairs, which read_fingerprint reads back typed
and checked."""

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Sequence

from segtf.checked import Source, child, fields, load_json, number, shown
from segtf.dataset.classes import IGNORED
from segtf.dataset.layout import CSV_FOLDER
from segtf.files import write_text

import cv2
import numpy as np
import pandas as pd

VERSION = 1
FINGERPRINT_FILE = "fingerprint.json"
PAIRS_FILE = "fingerprint.csv"
ONE_CLASS = "foreground"  # the name of the one class of binary masks
MEASURES = ("share", "components", "smallest", "width")  # what is measured of each class, in each pair
COUNTS = ("components", "smallest")  # the measures that are whole numbers
SPREAD_KEYS = ("median", "p10", "p90")
CLASS_KEYS = ("present_in", *MEASURES)
TOP_KEYS = ("version", "pairs", "image_height", "image_width", "classes")
ABSENT = {"share": 0.0, "components": 0, "smallest": None, "width": None}  # a class's measures where it is absent


@dataclass(frozen=True)
class Spread:
    """The median and the 10th and 90th percentiles of a measure over pairs."""

    median: float
    p10: float
    p90: float


@dataclass(frozen=True)
class ClassFingerprint:
    """A class over the training pairs: the share of them it appears in, and its measures' spreads over those."""

    present_in: float
    share: Spread
    components: Spread
    smallest: Spread
    width: Spread


@dataclass(frozen=True)
class Fingerprint:
    """fingerprint.json: the training pairs' count, their images' sizes, and each class that appears in any."""

    pairs: int
    image_height: Spread
    image_width: Spread
    classes: Mapping[str, ClassFingerprint]


def fingerprint_path(data_root: Path) -> Path:
    """Where the summary over the training pairs lives: DATA/csv_file/fingerprint.json."""
    return data_root / CSV_FOLDER / FINGERPRINT_FILE


def pairs_path(data_root: Path) -> Path:
    """Where the fingerprint of each prepared pair lives: DATA/csv_file/fingerprint.csv."""
    return data_root / CSV_FOLDER / PAIRS_FILE


def foreground_names(class_names: Optional[Sequence[str]]) -> tuple[str, ...]:
    """The classes fingerprinted: "foreground" for one class (class_names None, binary masks), else every class
    but the background (index 0)."""
    return tuple(class_names[1:]) if class_names else (ONE_CLASS,)


# Measuring a mask


def structure_width(binary: np.ndarray) -> float:
    """The width in pixels of the structures of a binary mask (uint8, not empty): 2d - 1 at their ridge, the pixels
    whose distance d to the background is the largest of their 3x3 neighbourhood, the median over the ridge. A line
    1 pixel wide gives 1, one 5 wide 5, a disk of radius r about 2r - 1. The mask is padded with background, so that
    structures cut by the image's edge end there (OpenCV would count the edge as infinitely far)."""
    padded = cv2.copyMakeBorder(binary, 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    distance = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    ridge = (padded > 0) & (distance == cv2.dilate(distance, np.ones((3, 3), np.uint8)))
    return float(np.median(2 * distance[ridge] - 1))


def component_areas(binary: np.ndarray) -> np.ndarray:
    """The pixel area of each 8-connected component of a binary mask (uint8)."""
    _, _, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    return stats[1:, cv2.CC_STAT_AREA]


def class_fingerprint(binary: np.ndarray) -> dict:
    """share, components, smallest and width of one class, given as a binary mask (uint8, nonzero where it is);
    smallest and width are None where the class is absent."""
    areas = component_areas(binary)
    if not len(areas):
        return dict(ABSENT)
    return {
        "share": float(areas.sum()) / binary.size,
        "components": len(areas),
        "smallest": int(areas.min()),
        "width": structure_width(binary),
    }


def pair_fingerprint(mask: np.ndarray, class_names: Sequence[str]) -> dict:
    """Each foreground class's measures in one prepared mask (uint8), by class name: share (of all the mask's
    pixels), components (8-connected), smallest (the smallest component's area) and width (structure_width).

    One name: every value above 0 is the class (a binary mask of 0 and 255; in a label mask of 2 classes, set the
    ignored pixels to 0 first, as preparation does). Several: label k is class_names[k - 1], and IGNORED no class."""
    if len(class_names) == 1:
        return {class_names[0]: class_fingerprint((mask > 0).astype(np.uint8))}
    counts = np.bincount(mask.ravel(), minlength=IGNORED + 1)  # to skip the absent classes' passes
    return {
        name: class_fingerprint((mask == k).astype(np.uint8)) if k < IGNORED and counts[k] else dict(ABSENT)
        for k, name in enumerate(class_names, 1)
    }


# Writing


def spread(values: Sequence[float]) -> dict:
    p10, median, p90 = np.percentile(np.asarray(values, float), [10, 50, 90])
    return {"median": float(median), "p10": float(p10), "p90": float(p90)}


def summarise(pairs: Sequence[dict], class_names: Sequence[str]) -> dict:
    """fingerprint.json's content from the rows of the training pairs (height, width, fingerprint): the images'
    sizes, and each class's share of the pairs it appears in and its measures' spreads over those."""
    summary = {
        "version": VERSION,
        "pairs": len(pairs),
        "image_height": spread([p["height"] for p in pairs]),
        "image_width": spread([p["width"] for p in pairs]),
        "classes": {},
    }
    for name in class_names:
        present = [p["fingerprint"][name] for p in pairs if p["fingerprint"][name]["components"]]
        if present:
            measures = {m: spread([c[m] for c in present]) for m in MEASURES}
            summary["classes"][name] = {"present_in": len(present) / len(pairs), **measures}
    return summary


def pair_table(data_root: Path, rows: Sequence[dict], class_names: Sequence[str]) -> pd.DataFrame:
    """A row a prepared pair: its image's path (as in train.csv), split, size and each class's measures."""
    columns = [f"{name}_{m}" for name in class_names for m in MEASURES]
    records = [
        {
            "image": Path(row["image"]).relative_to(data_root).as_posix(),
            "split": row["split"],
            "height": row["height"],
            "width": row["width"],
            **{f"{name}_{m}": row["fingerprint"][name][m] for name in class_names for m in MEASURES},
        }
        for row in rows
    ]
    table = pd.DataFrame(records, columns=["image", "split", "height", "width", *columns])
    counts = {f"{name}_{m}": "Int64" for name in class_names for m in COUNTS}  # whole numbers, or empty (None)
    return table.astype(counts).sort_values("image")


def write_fingerprint(data_root: Path, rows: Sequence[dict], class_names: Sequence[str]) -> Optional[Fingerprint]:
    """fingerprint.csv, a row for each prepared pair (prepare_pair's rows), and fingerprint.json, the summary over
    the training pairs: none (an earlier one removed) when there is no training pair. Each whole or not at all.
    Returns the summary written, as read_fingerprint would read it back."""
    table = pair_table(data_root, rows, class_names)
    write_text(pairs_path(data_root), table.to_csv(index=False, float_format="%.6f"))
    train = [row for row in rows if row["split"] == "train"]
    if not train:
        fingerprint_path(data_root).unlink(missing_ok=True)
        return None
    summary = summarise(train, class_names)
    write_text(fingerprint_path(data_root), json.dumps(summary, indent=1) + "\n")
    return parse_fingerprint(summary, fingerprint_path(data_root))


# Reading


def source_of(data_root_or_path: Path) -> Source:
    return Source(data_root_or_path, "data_preparation.py writes it anew")


def check_version(value: object, source: Source) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise source.fault(f"version is {shown(value)}, where it takes the whole number {VERSION}")
    if value != VERSION:
        raise source.fault(f"version {value} is not one this version of segtf reads (it reads {VERSION})")


def read_spread(data: object, source: Source, key: str, most: float = math.inf) -> Spread:
    values = fields(data, SPREAD_KEYS, source, key)
    return Spread(**{k: float(number(values[k], source, child(key, k), most=most)) for k in SPREAD_KEYS})


def read_class(data: object, source: Source, key: str) -> ClassFingerprint:
    values = fields(data, CLASS_KEYS, source, key)
    present_in = float(number(values["present_in"], source, child(key, "present_in"), most=1.0))
    spreads = {m: read_spread(values[m], source, child(key, m), 1.0 if m == "share" else math.inf) for m in MEASURES}
    return ClassFingerprint(present_in=present_in, **spreads)


def parse_fingerprint(data: object, path: Path) -> Fingerprint:
    """A fingerprint from fingerprint.json's content, checked; UserError naming the file and the key at fault. The
    version first: another version may hold other keys."""
    source = source_of(path)
    if isinstance(data, dict) and "version" in data:
        check_version(data["version"], source)
    values = fields(data, TOP_KEYS, source, "")
    classes = values["classes"]
    if not isinstance(classes, dict):
        raise source.fault(f"classes is {shown(classes)}, where it takes an object of class names")
    return Fingerprint(
        pairs=int(number(values["pairs"], source, "pairs", whole=True)),
        image_height=read_spread(values["image_height"], source, "image_height"),
        image_width=read_spread(values["image_width"], source, "image_width"),
        classes={name: read_class(c, source, child("classes", name)) for name, c in classes.items()},
    )


def read_fingerprint(data_root: Path) -> Optional[Fingerprint]:
    """DATA/csv_file/fingerprint.json, typed and checked; None when there is none (data prepared by a version
    before fingerprints, or without training pairs). UserError, one line naming the file and the key, when it is
    not JSON or not a fingerprint of this version."""
    path = fingerprint_path(data_root)
    if not path.exists():
        return None
    return parse_fingerprint(load_json(source_of(path)), path)


# Describing


def class_line(name: str, fingerprint: ClassFingerprint) -> str:
    objects = f"{fingerprint.components.median:.0f}"
    return (
        f"{name}: in {fingerprint.present_in:.0%} of them, structures {fingerprint.width.median:.1f} px wide "
        f"(median; 10% below {fingerprint.width.p10:.1f}), the smallest object {fingerprint.smallest.median:.0f} px "
        f"(median), {objects} object{'' if objects == '1' else 's'} a pair (median)"
    )


def describe(fingerprint: Fingerprint) -> list[str]:
    """The lines preparation's summary prints: the training pairs and their images' size, then each class (on the
    same line when there is one)."""
    header = (
        f"fingerprint: {fingerprint.pairs} training pairs, images {fingerprint.image_width.median:.0f} x "
        f"{fingerprint.image_height.median:.0f} px (median)"
    )
    lines = [class_line(name, c) for name, c in fingerprint.classes.items()] or ["no class appears in any of them"]
    return [f"{header}; {lines[0]}"] if len(lines) == 1 else [header, *(f"  {line}" for line in lines)]
