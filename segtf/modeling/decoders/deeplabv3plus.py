"""DeepLabV3+ (Chen et al. 2018, arXiv:1802.02611), built as segmentation_models.pytorch builds it: atrous spatial
pyramid pooling (ASPP) with separable convolutions and 256 channels, a 48-channel projection of the stride-4 features
beside it, a separable 3 x 3 convolution over both, 1 x 1 logits upsampled to the input's size (bilinear).

One departure: segmentation_models' encoders are not dilated, so their deepest features are at stride 32, not 16.
The ASPP works there with its atrous rates halved, 6, 12 and 18, which cover the same field of the input as 12, 24
and 36 at stride 16, and its output is upsampled by 8, not 4, to meet the stride-4 features. The encoder keeps its
every layer (and its ImageNet weights), and the decoder has the parameters of the stride-16 original."""

from segtf.modeling.decoders.blocks import conv_bn_relu

import tensorflow as tf

layers = tf.keras.layers

FILTERS = 256
SKIP_FILTERS = 48
RATES = (6, 12, 18)


def aspp(x: tf.Tensor, filters: int = FILTERS, rates=RATES, dropout: float = 0.5) -> tf.Tensor:
    """A 1 x 1 convolution, three atrous ones and the image's mean, projected together by a 1 x 1 convolution.

    The projection of the concatenation is written as two: of the four maps, and of the mean alone, added with
    broadcasting. The sum is the same, and the mean needs no resize to the map's size, which Keras 3 would only take
    as a layer of our own."""
    branches = [conv_bn_relu(x, filters, 1, "aspp_1x1")]
    branches += [conv_bn_relu(x, filters, 3, f"aspp_rate{rate}", dilation=rate, separable=True) for rate in rates]
    maps = layers.Concatenate(name="aspp_concat")(branches)
    maps = layers.Conv2D(filters, 1, use_bias=False, name="aspp_project_maps")(maps)
    mean = layers.GlobalAveragePooling2D(keepdims=True, name="aspp_mean")(x)
    mean = conv_bn_relu(mean, filters, 1, "aspp_pooling")
    mean = layers.Conv2D(filters, 1, use_bias=False, name="aspp_project_mean")(mean)
    x = layers.Add(name="aspp_project")([maps, mean])
    x = layers.BatchNormalization(name="aspp_project_bn")(x)
    x = layers.Activation("relu", name="aspp_project_relu")(x)
    return layers.Dropout(dropout, name="aspp_dropout")(x)


def deeplabv3plus(features: list[tf.Tensor], channels: int) -> tf.Tensor:
    """Logits (channels of them) at the input's size from the encoder's features at strides 2 to 32."""
    x = conv_bn_relu(aspp(features[4]), FILTERS, 3, "aspp_out", separable=True)
    x = layers.UpSampling2D(8, interpolation="bilinear", name="aspp_up")(x)
    skip = conv_bn_relu(features[1], SKIP_FILTERS, 1, "decoder_skip")
    x = layers.Concatenate(name="decoder_concat")([x, skip])
    x = conv_bn_relu(x, FILTERS, 3, "decoder_fuse", separable=True)
    x = layers.Conv2D(channels, 1, name="logits")(x)
    return layers.UpSampling2D(4, interpolation="bilinear", name="logits_up")(x)
