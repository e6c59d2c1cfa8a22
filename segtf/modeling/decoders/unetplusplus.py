"""Unet++ (Zhou et al. 2018, arXiv:1807.10165): a Unet whose skip connections are nested, densely connected decoders,
built as segmentation_models.pytorch builds it (decoder channels 256, 128, 64, 32, 16, nearest upsampling, a 3 x 3
convolution for the logits)."""

from segtf.modeling.decoders.blocks import conv_bn_relu

import tensorflow as tf

layers = tf.keras.layers

DECODER_CHANNELS = (256, 128, 64, 32, 16)


def decoder_block(x: tf.Tensor, skips: list[tf.Tensor], filters: int, name: str) -> tf.Tensor:
    """x upsampled by 2, the skips (at that size) beside it, then two 3 x 3 convolutions."""
    x = layers.UpSampling2D(2, name=f"{name}_up")(x)
    if skips:
        x = layers.Concatenate(name=f"{name}_concat")([x, *skips])
    x = conv_bn_relu(x, filters, 3, f"{name}_a")
    return conv_bn_relu(x, filters, 3, f"{name}_b")


def unetplusplus(features: list[tf.Tensor], channels: int, decoder_channels=DECODER_CHANNELS) -> tf.Tensor:
    """Logits (channels of them) at the input's size from the encoder's features at strides 2 to 32.

    Node (d, l) sits at the skip of level l (stride 16 / 2**l); d counts the nodes before it on its level. (l, l)
    upsamples the encoder's feature a level deeper; (d, l) upsamples (d, l - 1) and takes every later node of its
    level and the encoder's skip. Nodes of depth 0 are the main path, with decoder_channels; the others have their
    skip's channels."""
    deep_first = features[::-1]  # strides 32, 16, 8, 4, 2
    nodes = {}
    for level in range(len(deep_first) - 1):
        skip = deep_first[level + 1]
        for depth in range(level, -1, -1):
            below = deep_first[level] if depth == level else nodes[depth, level - 1]
            later = [nodes[d, level] for d in range(depth + 1, level + 1)]
            filters = decoder_channels[level] if depth == 0 else skip.shape[-1]
            nodes[depth, level] = decoder_block(below, [*later, skip], filters, f"decoder_x{depth}_{level}")
    top = decoder_block(nodes[0, len(deep_first) - 2], [], decoder_channels[-1], "decoder_top")
    return layers.Conv2D(channels, 3, padding="same", name="logits")(top)
