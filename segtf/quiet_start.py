"""TensorFlow imported with its C++ start-up logging kept from the terminal, for the scripts that train or predict.

At import TensorFlow probes CUDA, oneDNN and the CPU and logs a dozen lines, on a machine without a GPU some at
error level ("failed call to cuInit", "Unable to register cuDNN factory"), none of which a user acts on. From
TensorFlow 2.16 they are written before absl's logging starts, where TF_CPP_MIN_LOG_LEVEL does not reach them, so
the import runs with the process's stderr pointed at nothing; TF_CPP_MIN_LOG_LEVEL=3 keeps TensorFlow's later C++
logging quiet too. Errors still reach the user: a failed import raises after stderr is back, and TensorFlow's
errors while running are Python exceptions. A TF_CPP_MIN_LOG_LEVEL the user set (0 shows everything) turns all of
this off."""

import os
import sys

if "TF_CPP_MIN_LOG_LEVEL" not in os.environ and "tensorflow" not in sys.modules:
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    sys.stderr.flush()
    saved, nothing = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(nothing, 2)
    try:
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(nothing)
