"""The decoders of our own (Unet++, DeepLabV3+): their shapes and strides on three encoder families, one class and
three, and their build, training step and prediction on Keras 3 (the 3.12 stack). Their training, prediction by
windows and exports are training/test_training_options.py's."""

import json
import os
import subprocess
import sys

from segtf.modeling.network import build_model

import numpy as np
import pytest
import tensorflow as tf
from helpers import PYTHONPATH

# the layers each module's docstring places, and their strides
STRIDES = {
    "unetplusplus": {"decoder_x0_0_b_relu": 16, "decoder_x1_1_b_relu": 8, "decoder_x0_2_b_relu": 4,
                     "decoder_x0_3_b_relu": 2, "logits": 1},
    "deeplabv3plus": {"aspp_project_relu": 32, "aspp_up": 4, "decoder_fuse_relu": 4, "logits_up": 1},
}  # fmt: skip


@pytest.mark.parametrize("backbone, classes", [("resnet18", 1), ("efficientnetb0", 3), ("mobilenetv2", 1)])
@pytest.mark.parametrize("arch", list(STRIDES))
def test_decoders_build_on_three_encoder_families_at_their_documented_strides(arch, backbone, classes):
    model = build_model(backbone, "none", arch=arch, classes=classes)
    inner = tf.keras.Model(model.input, [model.output] + [model.get_layer(name).output for name in STRIDES[arch]])
    for size in (64, 96, 128):
        output, *maps = inner.predict(np.random.default_rng(0).random((2, size, size, 3), np.float32), verbose=0)
        assert output.shape == (2, size, size, classes) and output.dtype == np.float32
        assert [found.shape[1:3] for found in maps] == [(size // stride,) * 2 for stride in STRIDES[arch].values()]
        if classes > 1:
            np.testing.assert_allclose(output.sum(axis=-1), 1.0, atol=1e-5)


# Keras 3: a keras.applications encoder of another family for each decoder, the feature layers at strides 2 to 32
KERAS3_BUILD = """
import json
import keras
import numpy as np
import tensorflow as tf
from segtf.modeling.decoders.deeplabv3plus import deeplabv3plus
from segtf.modeling.decoders.unetplusplus import unetplusplus
encoders = {
    "unetplusplus": (unetplusplus, keras.applications.MobileNetV2,
                     ["block_1_expand_relu", "block_3_expand_relu", "block_6_expand_relu", "block_13_expand_relu",
                      "out_relu"]),
    "deeplabv3plus": (deeplabv3plus, keras.applications.EfficientNetB0,
                      ["block2a_expand_activation", "block3a_expand_activation", "block4a_expand_activation",
                       "block6a_expand_activation", "top_activation"]),
}
blocks = np.random.default_rng(0).random((4, 8, 8, 1)).astype("float32")  # a mask the decoders' strides can draw
masks = np.kron(blocks > 0.5, np.ones((1, 8, 8, 1))).astype("float32")
images = np.repeat(masks, 3, axis=-1) * 0.5 + np.random.default_rng(1).random((4, 64, 64, 3)).astype("float32") * 0.5
found = {"keras": keras.__version__, "tf_keras_is_keras": tf.keras.Model is keras.Model}
for name, (decoder, encoder_of, layers) in encoders.items():
    encoder = encoder_of(weights=None, include_top=False, input_shape=(None, None, 3))
    model = keras.Model(encoder.input, decoder([encoder.get_layer(layer).output for layer in layers], 1))
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.BinaryCrossentropy(from_logits=True), jit_compile=False)
    losses = [float(model.train_on_batch(images, masks)) for _ in range(8)]
    found[name] = {"losses": losses, "shape": list(model.predict(images[:1, :32, :32], verbose=0).shape)}
print(json.dumps(found))
"""


def test_decoders_build_train_and_predict_on_keras_3():
    """On the 3.12 stack, where Keras 3 is installed beside tf-keras; TF_USE_LEGACY_KERAS=0 keeps segtf from asking
    for tf-keras. Each decoder on a keras.applications encoder takes eight training steps and predicts."""
    if not sys.version_info >= (3, 12):
        pytest.skip("Keras 3 is the 3.12 stack's: make test PYTHON=python3.12 VENV=.venv-py312 runs this test")
    env = {**os.environ, "PYTHONPATH": PYTHONPATH, "TF_CPP_MIN_LOG_LEVEL": "2", "TF_USE_LEGACY_KERAS": "0"}
    result = subprocess.run([sys.executable, "-c", KERAS3_BUILD], capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["keras"].startswith("3.") and found["tf_keras_is_keras"]
    for name in ("unetplusplus", "deeplabv3plus"):
        losses = found[name]["losses"]
        assert found[name]["shape"] == [1, 32, 32, 1] and all(np.isfinite(losses)) and losses[-1] < 0.8 * losses[0]
