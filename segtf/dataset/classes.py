"""Several classes: masks to label masks (class indices 0 to K-1, from values or from a table of colours, with pixels
to ignore), and the dataset's class list in DATA/csv_file/classes.json, where train.py and predict.py read it.

A prepared label mask is a one-channel PNG whose pixels hold a class index, or IGNORED for pixels that no loss or
metric counts. With 2 classes (background and one), masks are read by the binary rules (images.to_binary_mask), so
that JPEG masks, 0/255 masks and --foreground_values work as they do for one class.
"""

import csv
import json
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

from segtf.checked import Source, fields, load_json, name_list, number, shown
from segtf.dataset.images import LOSSY_EXTENSIONS, MaskRule, mask_layer, to_binary_mask
from segtf.dataset.layout import CSV_FOLDER
from segtf.errors import UserError
from segtf.files import write_text

import numpy as np

IGNORED = 255  # the value of ignored pixels in prepared label masks, so at most 255 classes
CLASSES_FILE = "classes.json"
IGNORE_NAME = "ignore"  # the name of the --class_colors row whose colour marks pixels to ignore


class ClassRule(NamedTuple):
    """How masks become label masks: the class names (a name's index is its class), the RGB colour of each class
    (empty: masks hold class indices), the mask value and the colour of ignored pixels (None: nothing ignored)."""

    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...] = ()
    ignore_value: Optional[int] = None
    ignore_color: Optional[tuple[int, int, int]] = None

    def record(self) -> dict:
        return {"classes": list(self.names), "colors": [list(c) for c in self.colors],
                "ignore_value": self.ignore_value, "ignore_color": list(self.ignore_color or []) or None}  # fmt: skip


def default_names(count: int) -> tuple[str, ...]:
    return ("background", *(f"class_{k}" for k in range(1, count)))


def read_class_colors(path: Path) -> tuple[tuple[str, ...], tuple[tuple[int, int, int], ...], Optional[tuple]]:
    """(names, colours, ignore colour) from a CSV of name,red,green,blue (a header row is allowed), the background
    first; a row named ignore gives the colour of pixels to ignore. UserError naming the file and line."""
    names, colors, ignore = [], [], None
    try:
        rows = list(csv.reader(path.read_text().splitlines()))
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"--class_colors {path}: cannot be read ({error})") from error
    for line, row in enumerate(rows, 1):
        if not row or (line == 1 and [c.strip().lower() for c in row] == ["name", "red", "green", "blue"]):
            continue
        try:
            name, *rgb = (c.strip() for c in row)
            color = tuple(int(v) for v in rgb)
            if len(color) != 3 or not name or not all(0 <= v <= 255 for v in color):
                raise ValueError
        except ValueError as error:
            raise UserError(f"--class_colors {path}, line {line}: expected name,red,green,blue (0 to 255)") from error
        if color in colors or color == ignore:
            raise UserError(f"--class_colors {path}, line {line}: the colour {color} is listed twice")
        if name.lower() == IGNORE_NAME:
            ignore = color
        else:
            names.append(name)
            colors.append(color)
    if not 2 <= len(names) <= IGNORED:
        raise UserError(f"--class_colors {path}: {len(names)} classes; expected 2 to {IGNORED}, the background first")
    return tuple(names), tuple(colors), ignore


def listed(values: list, limit: int = 6) -> str:
    return ", ".join(map(str, values[:limit])) + (", ..." if len(values) > limit else "")


def colors_to_labels(mask: np.ndarray, rule: ClassRule) -> np.ndarray:
    """Class indices of a colour mask (OpenCV's BGR order); ValueError naming colours that are not in the table."""
    if mask.ndim != 3 or mask.shape[2] < 3:
        raise ValueError("is not a colour mask, but --class_colors gives classes by colour")
    bgr = mask[:, :, :3].astype(np.int64)
    codes = (bgr[:, :, 2] << 16) | (bgr[:, :, 1] << 8) | bgr[:, :, 0]  # one integer an RGB colour
    table = {(r << 16) | (g << 8) | b: k for k, (r, g, b) in enumerate(rule.colors)}
    if rule.ignore_color:
        r, g, b = rule.ignore_color
        table[(r << 16) | (g << 8) | b] = IGNORED
    found, inverse = np.unique(codes, return_inverse=True)
    unknown = [int(c) for c in found if int(c) not in table]
    if unknown:
        shown = [((c >> 16) & 255, (c >> 8) & 255, c & 255) for c in unknown]
        raise ValueError(f"has colours not in --class_colors: {listed(shown)}")
    return np.array([table[int(c)] for c in found], np.uint8)[inverse.reshape(codes.shape)]


def values_to_labels(layer: np.ndarray, rule: ClassRule) -> np.ndarray:
    """Class indices of a mask whose values are class indices; ValueError naming values outside the classes."""
    ignored = layer == rule.ignore_value if rule.ignore_value is not None else np.zeros(layer.shape, bool)
    outside = np.unique(layer[~ignored & (layer >= len(rule.names))])
    if len(outside):
        ignore = f" or --ignore_value {rule.ignore_value}" if rule.ignore_value is not None else ""
        raise ValueError(
            f"has values outside the classes 0 to {len(rule.names) - 1}{ignore}: {listed(outside.tolist())}"
        )
    return np.where(ignored, IGNORED, layer).astype(np.uint8)


def to_label_mask(mask: np.ndarray, rule: ClassRule, binary_rule: MaskRule, suffix: str) -> np.ndarray:
    """One channel of class indices (and IGNORED). By the colour table; else, with 2 classes, by the binary rules
    on the pixels not ignored; else the values are the classes. ValueError for a lossy file (JPEG, WebP) where
    exact values or colours are needed, since compression changes them."""
    lossy = suffix.lower() in LOSSY_EXTENSIONS
    if lossy and (rule.colors or len(rule.names) > 2):
        raise ValueError(f"is a {suffix} file, whose compression changes class values and colours: give PNG masks")
    if rule.colors:
        return colors_to_labels(mask, rule)
    if len(rule.names) == 2:
        layer = mask_layer(mask)
        ignored = layer == rule.ignore_value if rule.ignore_value is not None else np.zeros(layer.shape, bool)
        foreground = to_binary_mask(np.where(ignored, 0, layer).astype(layer.dtype), binary_rule, lossy) > 0
        return np.where(ignored, IGNORED, foreground).astype(np.uint8)
    if mask.ndim == 3 and np.ptp(mask[:, :, : min(3, mask.shape[2])], axis=2).max() > 0:
        raise ValueError("is a colour mask: give the classes' colours with --class_colors")
    return values_to_labels(mask if mask.ndim == 2 else mask[:, :, 0], rule)


def class_columns(count: int) -> list[str]:
    """The CSV columns of each class's share of an image's pixels."""
    return [f"class_{k}" for k in range(count)]


def class_fractions(labels: np.ndarray, count: int) -> np.ndarray:
    """The share of each class's pixels in a label mask (ignored pixels count in none)."""
    return np.bincount(labels.ravel(), minlength=IGNORED + 1)[:count] / labels.size


def write_classes(data_root: Path, rule: Optional[ClassRule]) -> None:
    """DATA/csv_file/classes.json for several classes; none (an earlier one removed) for one."""
    path = data_root / CSV_FOLDER / CLASSES_FILE
    if rule is None:
        path.unlink(missing_ok=True)
        return
    record = {"classes": list(rule.names), "colors": [list(c) for c in rule.colors],
              "ignore_color": list(rule.ignore_color) if rule.ignore_color else None, "ignored": IGNORED}  # fmt: skip
    write_text(path, json.dumps(record, indent=1) + "\n")


def color(value: object, source: Source, key: str) -> tuple[int, int, int]:
    """value, checked to be an RGB colour: three whole numbers from 0 to 255."""
    if not isinstance(value, list) or len(value) != 3:
        raise source.fault(f"{key} is {shown(value)}, where it takes [red, green, blue], each from 0 to 255")
    return tuple(int(number(v, source, f"{key}[{i}]", 0, 255, whole=True)) for i, v in enumerate(value))


def read_class_table(data_root: Path) -> Optional[ClassRule]:
    """The classes of a dataset prepared with several (DATA/csv_file/classes.json): their names and, when they were
    given by colour (--class_colors), their colours and the ignored pixels' colour. None for one class."""
    path = data_root / CSV_FOLDER / CLASSES_FILE
    if not path.exists():
        return None
    source = Source(path, "data_preparation.py writes it anew")
    # colors and ignore_color: since classes by colour were kept; files written before hold neither
    values = fields(load_json(source), ("classes", "ignored"), source, "", optional=("colors", "ignore_color"))
    number(values["ignored"], source, "ignored", IGNORED, IGNORED, whole=True)
    names = name_list(values["classes"], source, "classes", fewest=2)
    colors = values.get("colors") or []
    if not isinstance(colors, list) or len(colors) not in (0, len(names)):
        raise source.fault(f"colors is {shown(colors)}, where it takes a colour for each of the {len(names)} classes")
    ignore = values.get("ignore_color")
    return ClassRule(tuple(names), tuple(color(c, source, f"colors[{k}]") for k, c in enumerate(colors)),
                     ignore_color=color(ignore, source, "ignore_color") if ignore is not None else None)  # fmt: skip


def read_classes(data_root: Path) -> Optional[list[str]]:
    """The class names of a dataset prepared with several classes, else None (one class, binary masks)."""
    table = read_class_table(data_root)
    return list(table.names) if table else None


def class_count_of(names: Optional[Sequence[str]]) -> int:
    """The number of classes, the background included, of class names (None: one class, binary masks)."""
    return len(names) if names else 1


def class_count(data_root: Path) -> int:
    """How many classes the dataset was prepared with: 1 for binary masks."""
    return class_count_of(read_classes(data_root))
