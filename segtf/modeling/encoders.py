"""The encoders: segmentation_models' backbones, and the feature maps a decoder of our own reads from one.

segmentation_models is imported here, before any other module of the model's uses it, with its banner ("Segmentation
Models: using `tf.keras` framework.") kept from the terminal: it says nothing a user acts on."""

import contextlib
import io
from pathlib import Path
from typing import Optional

from segtf.errors import UserError

import tensorflow as tf

with contextlib.redirect_stdout(io.StringIO()):
    import segmentation_models as sm


def check_encoder(backbone: str, encoder_weights: str) -> None:
    """UserError for a backbone segmentation_models does not have, or weights that are not a file."""
    if backbone not in sm.get_available_backbone_names():
        raise UserError(
            f"--backbone {backbone} is not one of segmentation_models': {', '.join(sm.get_available_backbone_names())}"
        )
    if encoder_weights not in ("none", "imagenet") and not Path(encoder_weights).is_file():
        raise UserError(f"--encoder_weights {encoder_weights}: no such file")


def encoder_features(backbone: str, weights: Optional[str]) -> tuple[tf.Tensor, list[tf.Tensor]]:
    """The backbone's input, of any size, and its feature maps at strides 2, 4, 8, 16 and 32: the layers
    segmentation_models' Unet takes its skips from, then the encoder's output. weights: None, 'imagenet' or a file."""
    get_backbone = sm.inject_global_submodules(sm.Backbones.get_backbone)  # as sm.Unet calls it, on tf.keras
    encoder = get_backbone(backbone, input_shape=(None, None, 3), weights=weights, include_top=False)
    layers = [
        encoder.get_layer(name=layer) if isinstance(layer, str) else encoder.get_layer(index=layer)
        for layer in reversed(sm.Backbones.get_feature_layers(backbone, n=4))
    ]
    return encoder.input, [layer.output for layer in layers] + [encoder.output]
