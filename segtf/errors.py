"""UserError, which every script turns into one line and exit code 2."""

import contextlib
import sys
from typing import Iterator


class UserError(Exception):
    """A fault the user can fix (a flag, a file, the machine): library functions raise it, and each
    script's main() prints its message as one line and exits with code 2."""


@contextlib.contextmanager
def exit_on_user_error() -> Iterator[None]:
    """For a script's main(): a UserError raised inside becomes one line on stderr, `error: …`, and
    exit code 2, the code argparse uses for bad input."""
    try:
        yield
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
