"""Words for what the scripts print: a count with its noun in the singular or the plural."""


def counted(count: int, noun: str) -> str:
    """"1 epoch", "2 epochs", "0 classes"."""
    plural = noun + ("es" if noun.endswith(("s", "x", "sh")) else "s")  # not "ch": epochs
    return f"{count} {noun if count == 1 else plural}"
