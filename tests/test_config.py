"""The run's configuration and run_config.json: the files that train.py wrote before the configuration was typed
(one class, three classes, a fold of --folds, patches) load, and what no run writes is refused, naming the file and
the setting, never coerced."""

import dataclasses
import json
import shutil
from pathlib import Path

from segtf.config import SavedRun, TrainConfig, read_run_config, write_run_config
from segtf.errors import UserError

import pytest

FIXTURES = Path(__file__).parent / "fixtures" / "run_configs"  # written by train.py at commit 01dae96


@pytest.mark.parametrize("name", ["one_class", "three_classes", "fold", "patches"])
def test_a_run_config_of_todays_runs_loads_setting_for_setting(name: str):
    saved = read_run_config(FIXTURES / f"{name}.json")
    written = json.loads((FIXTURES / f"{name}.json").read_text())
    assert isinstance(saved, SavedRun) and saved.steps_per_epoch == written["steps_per_epoch"]
    flat = saved.config.flat()
    assert {k: v for k, v in flat.items() if k in written["args"]} == written["args"]
    assert (flat["plan"], flat["plan_reasons"], flat["time_budget"]) == ("none", [], None)  # settings added since


def test_the_settings_land_in_their_parts():
    three = read_run_config(FIXTURES / "three_classes.json").config
    assert three.model.classes == 3 and three.model.class_names == ["background", "class_1", "class_2"]
    fold = read_run_config(FIXTURES / "fold.json").config
    assert (fold.run.folds, fold.run.fold) == (2, 1)
    patches = read_run_config(FIXTURES / "patches.json").config
    assert (patches.loader.patch_size, patches.loader.scale, patches.model.backbone) == (32, 0.5, "resnet18")


def copy_with(tmp_path: Path, **changes) -> Path:
    """one_class.json with its args changed (a value of None removes the setting)."""
    record = json.loads((FIXTURES / "one_class.json").read_text())
    for key, value in changes.items():
        if value is None:
            del record["args"][key]
        else:
            record["args"][key] = value
    path = tmp_path / "run_config.json"
    path.write_text(json.dumps(record))
    return path


@pytest.mark.parametrize("recorded, precision", [(True, "float16"), (False, "float32")])
def test_runs_from_before_named_precisions_read_as_the_precision_they_used(tmp_path: Path, recorded, precision):
    assert read_run_config(copy_with(tmp_path, mixed_precision=recorded)).config.loader.mixed_precision == precision


def test_a_setting_an_older_run_lacks_takes_its_default(tmp_path: Path):
    config = read_run_config(copy_with(tmp_path, ema=None, arch=None)).config
    assert config.optimization.ema == 0.0 and config.model.arch == "unet"


@pytest.mark.parametrize(
    "changes, says",
    [
        ({"image_size": "64"}, 'image_size is "64", which is not an integer'),
        ({"epochs": True}, "epochs is true, which is not an integer"),
        ({"scale": "0.5"}, 'scale is "0.5", which is not a number'),
        ({"class_names": ["a", 2]}, 'class_names is ["a", 2], which is not a list of strings or null'),
        ({"patch_size": 3.5}, "patch_size is 3.5, which is not an integer or null"),
        ({"learning_rat": 0.1}, "unknown setting learning_rat"),
    ],
)
def test_a_setting_of_the_wrong_type_or_unknown_is_refused_naming_the_file(tmp_path: Path, changes, says):
    with pytest.raises(UserError) as error:
        read_run_config(copy_with(tmp_path, **changes))
    assert str(error.value) == f"{tmp_path / 'run_config.json'}: {says}"


@pytest.mark.parametrize("text", ["{", "[]", '{"args": {}}', '{"args": [], "steps_per_epoch": 2}'])
def test_a_file_train_py_did_not_write_is_refused(tmp_path: Path, text: str):
    (tmp_path / "run_config.json").write_text(text)
    with pytest.raises(UserError, match=f"^{tmp_path / 'run_config.json'}: "):
        read_run_config(tmp_path / "run_config.json")


def test_what_is_written_reads_back_as_it_was(tmp_path: Path):
    shutil.copy(FIXTURES / "three_classes.json", tmp_path / "old.json")
    config = read_run_config(tmp_path / "old.json").config
    changed = dataclasses.replace(config, loader=dataclasses.replace(config.loader, seed=7))
    write_run_config(tmp_path / "run_config.json", changed, {"steps_per_epoch": 5})
    assert read_run_config(tmp_path / "run_config.json") == SavedRun(changed, 5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        changed.loader.seed = 8


def test_the_flat_settings_are_the_fields_of_the_four_parts():
    config = TrainConfig.from_flat({"data_root": "DATA"}, "defaults")
    fields = [f.name for part in (config.loader, config.model, config.optimization, config.run)
              for f in dataclasses.fields(part)]  # fmt: skip
    assert list(config.flat()) == fields and len(set(fields)) == len(fields)
