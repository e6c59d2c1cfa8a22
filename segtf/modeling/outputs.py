"""How the model's outputs are read, one rule for training, prediction, cross-validation and the exports: a one-class
probability map loses its channel (H x W), a map of K classes keeps them (H x W x K); its mask is the one class's
pixels above a threshold, or each pixel's most probable class. NumPy arrays and tensors alike."""

from typing import TypeVar

Map = TypeVar("Map")  # a NumPy array or a tensor


def squeeze_channel(probabilities: Map) -> Map:
    """... x 1 probabilities of one class as ... (its channel dropped); ... x K of several classes as they are."""
    return probabilities[..., 0] if probabilities.shape[-1] == 1 else probabilities


def to_mask(probabilities: Map, several: bool, threshold: float = 0.5) -> Map:
    """The mask of a squeezed probability map (squeeze_channel): with several classes each pixel's most probable
    class, else the pixels above threshold."""
    return probabilities.argmax(-1) if several else probabilities > threshold
