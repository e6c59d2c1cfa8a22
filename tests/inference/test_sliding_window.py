"""sliding_window.py: windows blended exactly, bounded memory, flip TTA, the graph of SavedModels. predict.py's
--patch_size, --overlap, --tta: cli/test_predict_windows.py."""

import tracemalloc

from segtf.errors import UserError
from segtf.inference import sliding_window as sw

import numpy as np
import pytest
import tensorflow as tf

RNG = np.random.default_rng(17)
glorot = tf.keras.initializers.GlorotUniform


def per_pixel(windows: np.ndarray) -> np.ndarray:
    """A function of each pixel alone: translation- and flip-equivariant, so blending must give it back exactly."""
    grey = windows.astype(np.float32).mean(axis=-1, keepdims=True, dtype=np.float32)
    return 1 / (1 + np.exp(2 - grey / 64))


def by_position(windows: np.ndarray) -> np.ndarray:
    """A function of each pixel and its place in the window: neither translation- nor flip-equivariant."""
    side = windows.shape[1]
    ramp = np.linspace(-1, 1, side, dtype=np.float32)
    weights = 0.6 + 0.3 * ramp[None, :, None, None] * ramp[None, None, :, None] - 0.1  # (1, P, P, 1)
    return per_pixel(windows) * weights


@pytest.fixture(scope="module")
def tiny_net() -> tf.keras.Model:
    """A tiny fixed random conv net with zero 'same' padding: what it says near a border depends on the window."""
    layers = [
        tf.keras.layers.Conv2D(4, 3, padding="same", activation="relu", kernel_initializer=glorot(seed=0)),
        tf.keras.layers.Conv2D(1, 3, padding="same", activation="sigmoid", kernel_initializer=glorot(seed=1)),
    ]
    return tf.keras.Sequential([tf.keras.Input((None, None, 3)), *layers])


@pytest.fixture(scope="module")
def conv_net(tiny_net):
    return lambda windows: tiny_net(tf.cast(windows, tf.float32) / 255, training=False).numpy()


def photo(height: int, width: int) -> np.ndarray:
    return RNG.integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_window_starts_step_down_and_end_flush_with_the_edge():
    assert sw.window_starts(10, 4, 0.5) == [0, 2, 4, 6]
    assert sw.window_starts(11, 4, 0.5) == [0, 2, 4, 6, 7]
    assert sw.window_starts(10, 4, 0) == [0, 4, 6]
    assert sw.window_starts(3, 4) == sw.window_starts(4, 4) == [0]
    assert sw.window_starts(1000, 100, 0.9)[:3] == [0, 10, 20]  # 100 x (1 - 0.9) is 9.999999999999998
    assert sw.window_starts(10, 4, 0.99) == list(range(7))  # a step of at least 1
    with pytest.raises(UserError, match="overlap"):
        sw.window_starts(10, 4, -0.5)


def test_gaussian_weights_peak_at_1_with_a_floor_and_are_symmetric():
    weights = sw.gaussian_weights(64)
    assert weights.dtype == np.float32 and weights.max() == 1 and weights.min() == np.float32(sw.WEIGHT_FLOOR)
    assert (weights == weights[::-1]).all() and (weights == weights[:, ::-1]).all() and (weights == weights.T).all()
    # sigma 64 / 8 = 8 around the centre 31.5: along row 31, pixel 31 is 0.5 off it and pixel 39 is 7.5 off
    assert weights[31, 39] / weights[31, 31] == pytest.approx(np.exp(-(7.5**2 - 0.5**2) / (2 * 8**2)))


@pytest.mark.parametrize("height, width", [(64, 64), (40, 64), (17, 50)])
def test_an_image_within_one_window_gets_the_direct_prediction(conv_net, height, width):
    image = photo(height, width)
    direct = conv_net(sw.pad_to(image, 64, 64)[None])[0, :height, :width, 0]  # padded by reflection
    assert np.abs(sw.predict_sliding(conv_net, image, 64) - direct).max() < 1e-5


@pytest.mark.parametrize("height, width, overlap", [(200, 333, 0.5), (50, 150, 0.5), (129, 97, 0.25), (96, 96, 0.9)])
def test_windows_of_a_per_pixel_function_blend_back_to_it_everywhere(height, width, overlap):
    image = photo(height, width)
    blended = sw.predict_sliding(per_pixel, image, 64, overlap, batch_size=3)
    assert blended.shape == (height, width) and blended.dtype == np.float32
    assert np.abs(blended - per_pixel(image[None])[0, ..., 0]).max() < 1e-5


def full_size_blend(predict_batch: sw.PredictBatch, image: np.ndarray, patch: int, overlap: float) -> np.ndarray:
    """The straightforward way: every window's weighted prediction into full-size sums at once, with the
    Gaussian written out (sigma P/8, 1 at the centre, floored at 1e-3)."""
    height, width = image.shape[:2]
    padded = np.pad(image, ((0, max(0, patch - height)), (0, max(0, patch - width)), (0, 0)), mode="reflect")
    distance = np.arange(patch) - (patch - 1) / 2
    gaussian = np.exp(-(distance[:, None] ** 2 + distance[None, :] ** 2) / (2 * (patch / 8) ** 2))
    weights = np.maximum(gaussian / gaussian.max(), 1e-3)
    sums, totals = np.zeros(padded.shape[:2]), np.zeros(padded.shape[:2])
    for y in sw.window_starts(height, patch, overlap):
        for x in sw.window_starts(width, patch, overlap):
            prediction = predict_batch(padded[None, y : y + patch, x : x + patch])[0, ..., 0]
            sums[y : y + patch, x : x + patch] += weights * prediction
            totals[y : y + patch, x : x + patch] += weights
    return (sums / totals)[:height, :width]


@pytest.mark.parametrize("height, width, overlap", [(200, 333, 0.5), (50, 150, 0.5), (129, 97, 0.25)])
def test_gaussian_blending_agrees_with_a_full_size_reference(conv_net, height, width, overlap):
    image = photo(height, width)
    for predict_batch in (by_position, conv_net):
        reference = full_size_blend(predict_batch, image, 64, overlap)
        blended = sw.predict_sliding(predict_batch, image, 64, overlap, batch_size=4)
        assert np.abs(blended - reference).max() < 1e-5
    # the conv net's windows disagree with its view of the whole image, near their borders: blending matters
    assert np.abs(reference - conv_net(image[None])[0, ..., 0]).max() > 1e-3


def test_a_3000_by_2000_image_is_predicted_in_bounded_memory():
    image, patch, batch_size = photo(3000, 2000), 256, 8
    output_bytes = 3000 * 2000 * 4
    # Besides the output: the band's two float32 sums of P x W, the division of the finished rows and a spare
    # (4 bands), and the batch of windows as predict_batch's float32 copy and its temporaries (2 batches).
    # Full-size sums, as in full_size_blend, would need 2 x output_bytes more.
    band_bytes, batch_bytes = patch * 2000 * 4, batch_size * patch * patch * 3 * 4
    tracemalloc.start()
    try:
        blended = sw.predict_sliding(per_pixel, image, patch, batch_size=batch_size)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert blended.shape == (3000, 2000)
    assert peak < output_bytes + 4 * band_bytes + 2 * batch_bytes, f"peak {peak / 1e6:.1f} MB"


def flipped_mean(predict_batch: sw.PredictBatch) -> sw.PredictBatch:
    """Flip TTA written out: the mean of the plain, left-right and upside-down predictions, each flipped back."""

    def predict(windows: np.ndarray) -> np.ndarray:
        left_right = np.flip(predict_batch(np.flip(windows, 2)), 2)
        upside_down = np.flip(predict_batch(np.flip(windows, 1)), 1)
        return (predict_batch(windows) + left_right + upside_down) / 3

    return predict


def test_flip_tta_leaves_a_flip_equivariant_prediction_as_it_is():
    image = photo(150, 230)
    plain = sw.predict_sliding(per_pixel, image, 64)
    assert np.abs(sw.predict_sliding(per_pixel, image, 64, tta="flip") - plain).max() < 1e-6


def test_flip_tta_is_the_mean_of_the_three_flipped_predictions_in_every_window():
    image = photo(150, 230)
    with_tta = sw.predict_sliding(by_position, image, 64, tta="flip")
    assert np.abs(with_tta - sw.predict_sliding(flipped_mean(by_position), image, 64)).max() < 1e-6
    assert np.abs(with_tta - sw.predict_sliding(by_position, image, 64)).max() > 1e-2
    windows = photo(64, 64)[None]
    assert np.abs(sw.flip_tta(by_position)(windows) - flipped_mean(by_position)(windows)).max() < 1e-6


def test_bad_arguments_raise_user_errors():
    with pytest.raises(UserError, match="tta 'rotate'"):
        sw.predict_sliding(per_pixel, photo(10, 10), 8, tta="rotate")
    with pytest.raises(UserError, match="height x width x channels"):
        sw.predict_sliding(per_pixel, np.zeros((10, 10), np.uint8), 8)
    with pytest.raises(UserError, match="patch size 0"):
        sw.predict_sliding(per_pixel, photo(10, 10), 0)


@pytest.mark.parametrize("height, width", [(50, 40), (134, 159), (300, 200), (64, 64)])
@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_the_graph_for_savedmodels_predicts_as_predict_scaled_does(tiny_net, conv_net, height, width, scale):
    image = photo(height, width)

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8)])  # sizes known only when it runs
    def graph(image: tf.Tensor) -> tf.Tensor:
        predict = lambda windows: tiny_net(tf.cast(windows, tf.float32) / 255, training=False)  # noqa: E731
        return sw.predict_scaled_graph(predict, image, scale, 64, 0.5, 3)

    expected = sw.predict_scaled(conv_net, image, scale, 64, 0.5, 3)
    assert np.abs(graph(tf.constant(image)).numpy() - expected).max() < 1e-5
