"""The files the project writes and reads back (JSON settings and summaries, CSV tables), checked as they are read: a
missing or unknown key or column, a wrong type or a value out of range is one UserError line naming the file, the
key and what it takes, and how to put it right. Nothing is coerced: "false" is not a bool, "5" not a number."""

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from segtf.errors import UserError

import pandas as pd


@dataclass(frozen=True)
class Source:
    """A file read back, and how the user puts it right (for example "data_preparation.py writes it anew")."""

    path: Path
    fix: str

    def fault(self, problem: str) -> UserError:
        return UserError(f"{self.path}: {problem}; {self.fix}")


def shown(value: object) -> str:
    """A value as the file holds it, cut to 40 characters."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def child(key: str, name: str) -> str:
    """The dotted name of a key inside key ("" for the file's top)."""
    return f"{key}.{name}" if key else name


def load_json(source: Source) -> object:
    """The file's JSON content; UserError when it cannot be read or is not JSON."""
    try:
        return json.loads(source.path.read_text())
    except (OSError, UnicodeDecodeError) as error:
        raise source.fault(f"cannot be read ({error})") from error
    except json.JSONDecodeError as error:
        raise source.fault(f"the file is not JSON ({error})") from error


def fields(data: object, keys: Sequence[str], source: Source, key: str, optional: Sequence[str] = ()) -> dict:
    """data, checked to be an object of keys, and of optional ones, and of no others."""
    whole, takes = key or "the file", ", ".join([*keys, *optional])
    if not isinstance(data, dict):
        raise source.fault(f"{whole} is {shown(data)}, where it takes an object of {takes}")
    for name in keys:
        if name not in data:
            raise source.fault(f"{child(key, name)} is missing ({whole} takes {takes})")
    for name in data:
        if name not in keys and name not in optional:
            raise source.fault(f"{child(key, name)} is not a key it knows ({whole} takes {takes})")
    return data


def number(
    value: object, source: Source, key: str, least: float = 0.0, most: float = math.inf, whole: bool = False,
    inside: bool = False,
) -> float:  # fmt: skip
    """value, checked to be a finite number from least to most (strictly between them if inside; a whole number if
    whole); a bool or a string is not."""
    kind = "a whole number" if whole else "a number"
    if inside:
        takes = f"{kind} above {least:g} and below {most:g}"
    else:
        takes = f"{kind} of {least:g} or more" if math.isinf(most) else f"{kind} from {least:g} to {most:g}"
    wrong_type = isinstance(value, bool) or not isinstance(value, int if whole else (int, float))
    in_range = not wrong_type and math.isfinite(value) and (least < value < most if inside else least <= value <= most)
    if not in_range:
        raise source.fault(f"{key} is {shown(value)}, where it takes {takes}")
    return value


def boolean(value: object, source: Source, key: str) -> bool:
    """value, checked to be true or false (not "false", not 0)."""
    if not isinstance(value, bool):
        raise source.fault(f"{key} is {shown(value)}, where it takes true or false")
    return value


def name_list(value: object, source: Source, key: str, fewest: int = 1) -> list[str]:
    """value, checked to be a list of at least fewest different non-empty strings."""
    if not (isinstance(value, list) and all(isinstance(v, str) and v for v in value) and len(set(value)) == len(value)
            and len(value) >= fewest):  # fmt: skip
        raise source.fault(f"{key} is {shown(value)}, where it takes a list of {fewest} or more different names")
    return value


COLUMN_KINDS = {"text": "text", "number": "numbers", "whole": "whole numbers"}


def column_fits(column: pd.Series, kind: str) -> bool:
    if kind == "text":
        return column.map(lambda v: isinstance(v, str) and v != "").all()
    if kind == "whole":
        return pd.api.types.is_integer_dtype(column)
    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


def read_table(source: Source, columns: Mapping[str, str]) -> pd.DataFrame:
    """A CSV file, checked to have the columns (name: "text", "number" or "whole"), each of its kind in every row,
    and no empty cell among them; other columns are kept as read."""
    texts = {name: str for name, kind in columns.items() if kind == "text"}
    try:
        table = pd.read_csv(source.path, keep_default_na=False, dtype=texts)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as error:
        raise source.fault(f"cannot be read as a CSV table ({error})") from error
    except pd.errors.EmptyDataError:
        table = pd.DataFrame(columns=list(columns))
    return check_columns(table, source, columns)


def check_columns(table: pd.DataFrame, source: Source, columns: Mapping[str, str]) -> pd.DataFrame:
    """table, checked to have the columns (name: "text", "number" or "whole"), each of its kind in every row."""
    missing = [name for name in columns if name not in table.columns]
    if missing:
        raise source.fault(f"the column {missing[0]} is missing (it takes the columns {', '.join(columns)})")
    for name, kind in columns.items():
        if len(table) and not column_fits(table[name], kind):
            raise source.fault(f"the column {name} holds other values than {COLUMN_KINDS[kind]}")
    return table
