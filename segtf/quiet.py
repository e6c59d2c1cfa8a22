"""TensorFlow's C++ chatter kept from the terminal: its start-up probing of CUDA, oneDNN and the CPU (a dozen lines,
some at error level on every machine without a GPU) and the TFLite converter's statistics ("fully_quantize: 0,
inference_type: 6, ..."), none of which a user acts on. Both are written by C++ straight to the process's stderr,
some before absl's logging starts where TF_CPP_MIN_LOG_LEVEL does not reach them. TF_CPP_MIN_LOG_LEVEL=0 shows
everything again. Errors still reach the user: they are raised as Python exceptions once stderr is back."""

import contextlib
import os
import sys
from typing import Iterator


def asked_for_logs() -> bool:
    """Whether the user set TF_CPP_MIN_LOG_LEVEL to 0, asking for all of TensorFlow's logging."""
    return os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0"


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """The process's stderr (file descriptor 2, where C++ writes) pointed at nothing while the block runs, unless
    the user asked for logs."""
    if asked_for_logs():
        yield
        return
    sys.stderr.flush()
    saved, nothing = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(nothing, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(nothing)
