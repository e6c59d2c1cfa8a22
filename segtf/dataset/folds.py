"""Cross-validation folds of the training pairs: which fold each pair is in, and each fold's CSVs.

The folds of N are recorded in DATA/csv_file/folds<N>.csv. A pair keeps the fold it was given there for as long as
it stays in train.csv, so that adding photos moves no earlier pair. A pair that has none is given the fold that
holds fewest pairs of its group (then fewest pairs, then the lowest number): new pairs group by group, the largest
group first, and within a group in the order of a hash of their path. So every group is spread over the folds and
their sizes differ by at most one pair of a group, which a hash alone would not give a few dozen photos (nnU-Net's
folds are balanced too, but drawn anew whenever the data change).

Fold K's training pairs are those of the other folds, its validation pairs its own: fold<K>of<N>_train.csv (with
one fold<K>of<N>_train_<group>.csv a group, for --balance) and fold<K>of<N>_valid.csv, beside train.csv.
"""

import hashlib
from pathlib import Path
from typing import Optional

from segtf.checked import Source, read_table
from segtf.dataset.layout import CSV_FOLDER
from segtf.errors import UserError
from segtf.files import write_text

import pandas as pd


def fold_split(fold: int, folds: int) -> str:
    """The name of fold's CSVs without their ending: fold<K>of<N>."""
    return f"fold{fold}of{folds}"


def run_splits(folds: Optional[int], fold: Optional[int]) -> tuple[str, str]:
    """The names of a run's training and validation CSVs: train and valid, or fold fold's of folds."""
    if not folds:
        return "train", "valid"
    return f"{fold_split(fold, folds)}_train", f"{fold_split(fold, folds)}_valid"


def path_hash(path: str) -> str:
    return hashlib.sha256(path.encode()).hexdigest()


def assign_folds(pairs: pd.DataFrame, folds: int, earlier: pd.DataFrame) -> pd.Series:
    """The fold of each pair (columns image, group), indexed like pairs: its fold in earlier (columns image,
    fold) when it has one there, else the fold with fewest pairs of its group, then fewest pairs."""
    known = dict(zip(earlier.image, earlier.fold))
    fold_of = {image: known[image] for image in pairs.image if image in known and 0 <= known[image] < folds}
    sizes = [0] * folds
    by_group = {group: [0] * folds for group in pairs.group.unique()}
    for image, group in zip(pairs.image, pairs.group):
        if image in fold_of:
            sizes[fold_of[image]] += 1
            by_group[group][fold_of[image]] += 1
    new = pairs[~pairs.image.isin(list(fold_of))]
    size = new.group.value_counts()  # larger groups first, so that the smaller ones even out the folds' sizes
    for image, group in sorted(zip(new.image, new.group), key=lambda p: (-size[p[1]], p[1], path_hash(p[0]))):
        fold = min(range(folds), key=lambda k: (by_group[group][k], sizes[k], k))
        fold_of[image] = fold
        sizes[fold] += 1
        by_group[group][fold] += 1
    return pairs.image.map(fold_of)


def write_csv(path: Path, table: pd.DataFrame) -> None:
    write_text(path, table.to_csv(index=False, float_format="%.6f"))


def write_fold_csvs(data_root: Path, folds: int) -> pd.DataFrame:
    """Give every pair of train.csv its fold (see assign_folds), record them in folds<N>.csv and write each
    fold's CSVs; returns train.csv's table with a fold column. Two runs doing this at once write the same."""
    csv_dir = data_root / CSV_FOLDER
    if not (csv_dir / "train.csv").exists():
        raise UserError(f"{csv_dir / 'train.csv'} does not exist: run data_preparation.py --data_root {data_root}")
    pairs = read_table(Source(csv_dir / "train.csv", f"run data_preparation.py --data_root {data_root} again"),
                       {"image": "text", "group": "text"})  # fmt: skip
    if len(pairs) < folds:
        raise UserError(
            f"--folds {folds}: {csv_dir / 'train.csv'} holds {len(pairs)} training pairs, and each fold needs one "
            "to validate and the others to train on: give at most as many folds as pairs"
        )
    record = csv_dir / f"folds{folds}.csv"
    earlier = pd.DataFrame(columns=["image", "fold"])
    if record.exists():  # the folds of earlier runs, kept
        source = Source(record, "train.py --folds wrote it; delete it to assign the folds anew")
        earlier = read_table(source, {"image": "text", "fold": "whole"})
    pairs["fold"] = assign_folds(pairs, folds, earlier)
    write_csv(record, pairs[["image", "group", "fold"]])
    columns = [c for c in pairs.columns if c != "fold"]
    for fold in range(folds):
        name, inside = fold_split(fold, folds), pairs.fold == fold
        write_csv(csv_dir / f"{name}_valid.csv", pairs[inside][columns])
        write_csv(csv_dir / f"{name}_train.csv", pairs[~inside][columns])
        groups = [csv_dir / f"{name}_train_{group}.csv" for group in sorted(pairs[~inside].group.unique())]
        for path, (_, members) in zip(groups, pairs[~inside].groupby("group")):
            write_csv(path, members[columns])
        for stale in set(csv_dir.glob(f"{name}_train_*.csv")) - set(groups):  # a group no longer there
            stale.unlink(missing_ok=True)
    return pairs
