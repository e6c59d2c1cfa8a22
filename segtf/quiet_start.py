"""TensorFlow imported without its C++ start-up logging (segtf/quiet.py), for the scripts that train or predict:
imported first by train.py, predict.py, dataloader.py, model.py and utils.py. TF_CPP_MIN_LOG_LEVEL=3 keeps
TensorFlow's later C++ logging quiet too, unless the user set the variable (0 shows everything)."""

import os
import sys

from segtf.quiet import quiet_stderr

if not os.environ.get("TF_CPP_MIN_LOG_LEVEL") and "tensorflow" not in sys.modules:
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    with quiet_stderr():
        import tensorflow  # noqa: F401
