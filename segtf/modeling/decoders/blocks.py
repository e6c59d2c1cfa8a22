"""The convolution blocks the decoders share: a convolution, batch normalisation and ReLU."""

import tensorflow as tf

layers = tf.keras.layers


def conv_bn_relu(x: tf.Tensor, filters: int, kernel: int, name: str, dilation: int = 1, separable: bool = False):
    """A convolution without bias (the batch norm has one), its batch norm and a ReLU; separable: a depthwise
    convolution then a pointwise one, as DeepLabV3+ uses."""
    convolution = layers.SeparableConv2D if separable else layers.Conv2D
    x = convolution(filters, kernel, padding="same", dilation_rate=dilation, use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)
