"""segtf: image segmentation with TensorFlow, one subpackage a stage (docs/architecture.md).

Importing the package sets Keras 2 up before TensorFlow loads, so every module of it, and every script that imports
it first (ruff sorts `segtf` ahead of third-party imports), gets Keras 2: segmentation_models needs it. On TensorFlow
2.16 and later tf.keras is Keras 3 unless TF_USE_LEGACY_KERAS=1 makes it the tf-keras package; TensorFlow 2.15's own
Keras is Keras 2, and there the variable would ask for tf-keras, which that stack does not install."""

import importlib.util
import os

if importlib.util.find_spec("tf_keras") is not None:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("SM_FRAMEWORK", "tf.keras")  # segmentation_models reads this at import
