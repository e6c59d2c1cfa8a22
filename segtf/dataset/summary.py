"""The summary data_preparation.py prints when it has prepared a dataset: the pairs by split and group, the reasons
pairs were rejected, each class's share, the foreground and the fingerprint."""

from pathlib import Path
from typing import Optional

from segtf.dataset.classes import ClassRule, class_columns
from segtf.dataset.fingerprint import Fingerprint, describe
from segtf.dataset.layout import CSV_FOLDER
from segtf.text import counted

import pandas as pd


def print_classes(table: pd.DataFrame, names: tuple[str, ...]) -> None:
    """Each class's share of all pixels and the images it is in, and the share of ignored pixels."""
    pixels = table.height * table.width
    shares = [(table[column] * pixels).sum() / pixels.sum() for column in class_columns(len(names))]
    listing = "; ".join(
        f"{k} {name} {share:.2%} in {(table[f'class_{k}'] > 0).sum()}"
        for k, (name, share) in enumerate(zip(names, shares))
    )
    print(f"  classes (share of the pixels, in how many images): {listing}; ignored {max(0.0, 1 - sum(shares)):.2%}")


def rejections(data_root: Path, rejected: list[dict]) -> str:
    """" (reason: count; ...), see DATA/csv_file/rejected.csv", or "" when nothing was rejected."""
    if not rejected:
        return ""
    reasons = pd.Series([r["reason"].split(":")[0] for r in rejected], dtype=str).value_counts()
    listing = "; ".join(f"{reason}: {n}" for reason, n in reasons.items())
    return f" ({listing}), see {data_root / CSV_FOLDER / 'rejected.csv'}"


def print_summary(
    data_root: Path,
    rows: list[dict],
    rejected: list[dict],
    converted: int,
    classes: Optional[ClassRule],
    fingerprint: Optional[Fingerprint],
) -> None:
    table = pd.DataFrame(rows)
    print(f"{data_root}: {counted(len(rows), 'pair')} prepared, {counted(converted, 'file')} converted to PNG")
    for split in ("train", "valid"):
        counts = table[table.split == split].group.value_counts().sort_index()
        groups = ", ".join(f"{g} {n}" for g, n in counts.items())
        print(f"  {split}: {counted(counts.sum(), 'pair')} ({groups})")
    print(f"  rejected: {len(rejected)}{rejections(data_root, rejected)}")
    n_valid = (table.split == "valid").sum()
    if n_valid < 5:
        print(
            f"  warning: valid holds {counted(n_valid, 'pair')}, too few for its score to mean much: cross-validate "
            "over the training pairs with train.py --folds 5 (README: Small datasets)"
        )
    if classes:
        print_classes(table, classes.names)
    fg = table.foreground
    print(f"  foreground fraction: min {fg.min():.4f}, median {fg.median():.4f}, max {fg.max():.4f}")
    if (fg == 0).any():
        print(f"  empty masks: {(fg == 0).sum()}, kept as images without foreground (--drop_empty leaves them out)")
    for line in describe(fingerprint) if fingerprint else ["fingerprint: none, without training pairs"]:
        print(f"  {line}")
