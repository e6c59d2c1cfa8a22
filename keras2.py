"""Imported before TensorFlow by every module that uses it (ruff sorts it into its own section, ahead of
third-party imports). segmentation_models needs Keras 2: on TensorFlow 2.16 and later, tf.keras is Keras 3
unless TF_USE_LEGACY_KERAS=1 makes it tf-keras; TensorFlow 2.15 ignores the variable."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("SM_FRAMEWORK", "tf.keras")  # segmentation_models reads this at import
