"""checked.py and the readers built on it: every file the project reads back is checked, one line naming the file,
the key or column and what it takes; nothing is coerced."""

import json

from segtf.checked import Source, read_table
from segtf.dataset.classes import CLASSES_FILE, read_classes
from segtf.dataset.folds import write_fold_csvs
from segtf.dataset.layout import CSV_FOLDER, PNG_FOLDER
from segtf.dataset.pipeline import read_samples
from segtf.dataset.preparation import MANIFEST, read_manifest
from segtf.dataset.tfrecord_cache import read_manifest as read_shards_manifest
from segtf.errors import UserError
from segtf.training.checkpoints import read_history

import pytest

COLUMNS = {"image": "text", "fold": "whole", "share": "number"}


@pytest.mark.parametrize(
    "text, problem",
    [
        ("image,share\na.png,0.5\n", "the column fold is missing (it takes the columns image, fold, share)"),
        ("image,fold,share\na.png,1.5,0.5\n", "the column fold holds other values than whole numbers"),
        ("image,fold,share\na.png,1,half\n", "the column share holds other values than numbers"),
        ("image,fold,share\n,1,0.5\n", "the column image holds other values than text"),
        ("image,fold,share\na.png,True,0.5\n", "the column fold holds other values than whole numbers"),
    ],
)
def test_a_table_is_checked_column_by_column(tmp_path, text, problem):
    path = tmp_path / "table.csv"
    path.write_text(text)
    with pytest.raises(UserError) as error:
        read_table(Source(path, "the fix"), COLUMNS)
    assert str(error.value) == f"{path}: {problem}; the fix"


def test_a_table_of_the_right_kinds_is_read_as_it_is_and_an_empty_one_has_its_columns(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("image,fold,share,other\n001.png,2,1,x\n")
    table = read_table(Source(path, ""), COLUMNS)
    assert table.image.tolist() == ["001.png"] and table.fold.tolist() == [2] and table.other.tolist() == ["x"]
    path.write_text("")
    assert read_table(Source(path, ""), COLUMNS).columns.tolist() == list(COLUMNS)


def written(data_root, name: str, text: str):
    path = data_root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_the_projects_files_name_the_key_or_column_at_fault(tmp_path):
    classes = written(tmp_path, f"{CSV_FOLDER}/{CLASSES_FILE}", json.dumps({"classes": "plate", "ignored": 255}))
    with pytest.raises(UserError, match="classes is \"plate\", where it takes a list of 2 or more different names"):
        read_classes(tmp_path)
    classes.write_text(json.dumps({"classes": ["background", "plate"], "ignored": 0}))
    with pytest.raises(UserError, match="ignored is 0, where it takes a whole number from 255 to 255"):
        read_classes(tmp_path)
    train = written(tmp_path, f"{CSV_FOLDER}/train.csv", "image,group\npng/a.png,g\npng/b.png,g\n")
    with pytest.raises(UserError, match=f"{train}: the column mask is missing .* data_preparation.py --data_root"):
        read_samples(train)
    written(tmp_path, f"{CSV_FOLDER}/folds2.csv", "image,group,fold\npng/a.png,g,first\n")
    with pytest.raises(UserError, match="folds2.csv: the column fold holds other values than whole numbers"):
        write_fold_csvs(tmp_path, 2)
    history = written(tmp_path, "history.csv", "epoch,loss\nfirst,0.5\n")
    with pytest.raises(UserError, match="the column epoch holds other values than whole numbers"):
        read_history(history)
    written(tmp_path, f"{PNG_FOLDER}/{MANIFEST}", "[]")
    with pytest.raises(UserError, match="the file is \\[\\], where it takes an object of mask_rule, sources; delete"):
        read_manifest(tmp_path)
    written(tmp_path, "cache/manifest.json", "{")
    with pytest.raises(UserError, match="the file is not JSON"):
        read_shards_manifest(tmp_path / "cache")
