"""folds.py: folds that partition the training pairs, spread each group and stay put when pairs are added."""

from segtf.dataset.folds import assign_folds

import pandas as pd


def pairs(names: list[str], group: str) -> pd.DataFrame:
    return pd.DataFrame({"image": [f"png/images/{group}/{n}.png" for n in names], "group": group})


def test_folds_partition_the_pairs_spread_each_group_and_stay_put_when_pairs_are_added():
    table = pd.concat([pairs([f"a{i}" for i in range(23)], "a"), pairs([f"b{i}" for i in range(7)], "b")])
    folds = assign_folds(table, 5, pd.DataFrame(columns=["image", "fold"]))
    assert sorted(folds.unique()) == list(range(5))
    for _, members in folds.groupby(table.group.to_numpy()):
        counts = members.value_counts().reindex(range(5), fill_value=0)
        assert counts.max() - counts.min() <= 1  # each group spread over the folds
    assert folds.value_counts().max() - folds.value_counts().min() <= 1
    grown = pd.concat([table, pairs([f"c{i}" for i in range(4)], "c"), pairs(["a_new"], "a")])
    again = assign_folds(grown, 5, table.assign(fold=folds))
    assert list(again.iloc[: len(table)]) == list(folds)  # no earlier pair moved
    assert again.iloc[len(table) :].between(0, 4).all()
