"""network.py: mixed precision's float32 output and loss, the batch-norm momentum, the weight decay of each
optimizer."""

import math

from segtf.cli.train import train_args
from segtf.dataset import pipeline
from segtf.dataset.input_scaling import batch_dtype
from segtf.modeling import network

import pytest
import tensorflow as tf


@pytest.mark.parametrize(
    "precision, arch",
    [("float16", "unet"), ("bfloat16", "unet"), ("float16", "unetplusplus"), ("float16", "deeplabv3plus")],
)
def test_mixed_precision_gives_float32_output_and_finite_float32_loss(synthetic_data, precision, arch):
    """float16 scales the loss against underflow; bfloat16 has float32's range and does not. Our decoders' layers
    take the policy as segmentation_models' do."""
    net = network.create_model("resnet18", "none", precision=precision, arch=arch)
    if arch in network.OWN_DECODERS:
        assert net.get_layer("logits").compute_dtype == precision
    assert net.output.dtype == tf.float32 and net.layers[2].compute_dtype == precision
    assert all(weight.dtype == tf.float32 for weight in net.weights)
    scaled = isinstance(net.optimizer, tf.keras.mixed_precision.LossScaleOptimizer)
    assert scaled == (precision == "float16")
    assert tf.keras.mixed_precision.global_policy().name == "float32"  # set for the build only, then restored
    csv = synthetic_data / "csv_file" / "train.csv"
    batches, _ = pipeline.build_dataset([csv], 32, 2, training=True, dtype=batch_dtype(precision))
    images, masks = next(iter(batches))
    assert images.dtype == masks.dtype == batch_dtype(precision)
    loss = net.compute_loss(images, masks, net(images, training=True))
    assert loss.dtype == tf.float32
    history = net.fit(batches, steps_per_epoch=1, epochs=1, verbose=0)
    assert math.isfinite(history.history["loss"][0])


def test_bn_momentum_reaches_every_batchnorm_layer():
    net = network.create_model("resnet18", "none", bn_momentum=0.5)
    momenta = [layer.momentum for layer in net.submodules if isinstance(layer, tf.keras.layers.BatchNormalization)]
    assert len(momenta) > 10 and set(momenta) == {0.5}


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "radam", "sgd"])
def test_weight_decay_reaches_each_optimizer(optimizer):
    assert train_args(["--data_root", "d", "--weight_decay", "0.5"]).weight_decay == 0.5
    net = network.create_model("resnet18", "none", optimizer=optimizer, weight_decay=0.5)
    assert net.optimizer.get_config()["weight_decay"] == 0.5
