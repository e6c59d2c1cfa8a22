"""Shared fixtures: copies of the real nails set and generated datasets, always in temporary folders."""

import os
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NAILS_DIR = Path(os.environ.get("NAILS_DIR", REPO.parent / "shared" / "data" / "nails"))


def copy_files(source: Path, target: Path) -> None:
    """Copy a tree without its permissions: the shared data is read-only, the copy must not be."""
    for path in source.rglob("*"):
        if path.is_file():
            (target / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target / path.relative_to(source))


@pytest.fixture
def nails(tmp_path: Path) -> Path:
    """A writable copy of the real nails set (flat layout: images/ and labels/ with JPEG masks)."""
    if not (NAILS_DIR / "images").is_dir():
        pytest.skip(f"real data not found at {NAILS_DIR}; set NAILS_DIR")
    copy_files(NAILS_DIR, tmp_path / "nails")
    return tmp_path / "nails"
