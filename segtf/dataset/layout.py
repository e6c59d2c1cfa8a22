"""Where prepared data lives under DATA: the folders data_preparation.py writes, and each split's CSV."""

from pathlib import Path

PNG_FOLDER = "png"  # the PNG copies of the images and masks
CSV_FOLDER = "csv_file"  # train.csv, valid.csv, one CSV a group, rejected.csv


def split_csv(data_root: Path, split: str) -> Path:
    """Where the CSV of a split ("train", "valid", "train_<group>") lives."""
    return data_root / CSV_FOLDER / f"{split}.csv"
