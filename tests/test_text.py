"""text.py: counts with their nouns."""

from segtf.text import counted


def test_a_count_of_one_takes_the_singular_and_any_other_the_plural():
    assert [counted(n, "epoch") for n in (0, 1, 2)] == ["0 epochs", "1 epoch", "2 epochs"]
    assert counted(1, "class") == "1 class" and counted(3, "class") == "3 classes"
