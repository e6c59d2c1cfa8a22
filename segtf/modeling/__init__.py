"""The model: the network, its losses, metrics, optimizers, weight averages and precision.

segmentation_models is imported here first, with its banner ("Segmentation Models: using `tf.keras` framework.")
kept from the terminal: it says nothing a user acts on, and printed before the scripts' own first line."""

import contextlib
import io

with contextlib.redirect_stdout(io.StringIO()):
    import segmentation_models  # noqa: F401
