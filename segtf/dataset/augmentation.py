"""Augmentation: the albumentations transforms, and the loader's function that decodes each sample (or reads its
crop) and augments it with generators of its own, so that a run repeats exactly whichever thread draws a sample."""

import copy
import math
import random
import threading
from typing import Callable, Optional

from segtf.dataset.patches import Patches, read_crop

import albumentations as A
import cv2
import numpy as np
import tensorflow as tf

AUGMENTATIONS = ("photo", "any_orientation", "none")


def orientation_transforms() -> list:
    """For images without an up: any of the 8 orientations, a distortion of the grid, and gamma."""
    return [
        A.VerticalFlip(p=0.5),
        A.RandomRotate90(p=1.0),
        A.OneOf(
            [
                A.ElasticTransform(alpha=30, sigma=6, border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0),
                A.GridDistortion(border_mode=cv2.BORDER_CONSTANT, fill=0, fill_mask=0),
            ],
            p=0.3,
        ),
        A.RandomGamma(gamma_limit=(70, 150), p=0.3),
    ]


def train_transform(size: int, augment: str = "photo") -> A.Compose:
    """The training augmentations of --augment (AUGMENTATIONS), in albumentations 2 names; geometric ones move
    image and mask alike. photo: the original blog's; any_orientation: those and orientation_transforms."""
    if augment not in AUGMENTATIONS:
        raise ValueError(f"augment {augment!r}: expected one of {', '.join(AUGMENTATIONS)}")
    if augment == "none":
        return valid_transform(size)
    orientations = orientation_transforms() if augment == "any_orientation" else []
    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            *orientations,
            A.Affine(
                scale=(0.8, 1.2),
                rotate=(-30, 30),
                translate_percent=(-0.0625, 0.0625),
                border_mode=cv2.BORDER_CONSTANT,
                fill=0,
                fill_mask=0,
                p=0.5,
            ),
            A.GaussNoise(std_range=(0, math.sqrt(50) / 255), p=0.4),  # the original blog's variance 0 to 50
            A.GaussianBlur(blur_limit=(3, 7), p=0.4),
            A.OneOf(
                [
                    A.HueSaturationValue(10, 15, 15),
                    A.CLAHE(clip_limit=2),
                    A.RandomBrightnessContrast(0.15, 0.3),
                ],
                p=0.3,
            ),
            A.Resize(size, size),
        ]
    )


def valid_transform(size: int) -> A.Compose:
    return A.Compose([A.Resize(size, size)])


def sample_seed(seed: int, index: int) -> int:
    """The augmentation seed of the index-th sample of a stream: the same for the same seed and index, whichever
    thread draws it."""
    return int(np.random.SeedSequence([seed % 2**32, index]).generate_state(1)[0])


def augment_function(
    transform: A.Compose, size: int, seed: int, patches: Optional[Patches] = None, random_crops: bool = True
) -> Callable:
    """(index, (image bytes, mask bytes)) to (image, mask): decode with TensorFlow ops, augment with
    albumentations in a numpy function (uint8 in, uint8 out). With patches, (index, (image path, mask path)) of
    patch sources instead, each read as a crop (read_crop): random (seeded by sample_seed) with random_crops,
    else the centre crop.
    Each thread has its own copy of the transform, given for each sample a NumPy and a Python generator seeded
    by sample_seed (a crop draws from the NumPy one first): a run repeats exactly, which a random generator
    shared by the threads would not."""
    # By thread id, not in a threading.local: TensorFlow calls the numpy function from threads of its own,
    # each call with a new Python thread state, so a threading.local lost its copy after every sample.
    copies: dict[int, A.Compose] = {}

    def generators(index: np.int64) -> tuple[np.random.Generator, random.Random]:
        state = sample_seed(seed, int(index))
        return np.random.default_rng(state), random.Random(state)

    def transformed(
        image: np.ndarray, mask: np.ndarray, rng: np.random.Generator, py_random: random.Random
    ) -> tuple[np.ndarray, np.ndarray]:
        own = copies.get(threading.get_ident())
        if own is None:
            own = copies[threading.get_ident()] = copy.deepcopy(transform)
        # One pair of generators that every transform of the Compose draws from in turn: Compose.set_random_seed
        # gives each transform the same seed, so that they all drew the same numbers (flip, affine, noise, blur
        # and colour applied all together or not at all)
        own.set_random_state(rng, py_random)
        augmented = own(image=image, mask=mask)
        return augmented["image"], augmented["mask"]

    def augment(index: np.int64, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return transformed(image, mask, *generators(index))

    def crop_and_augment(index: np.int64, image_path: bytes, mask_path: bytes) -> tuple[np.ndarray, np.ndarray]:
        rng, py_random = generators(index)
        image, mask = read_crop(image_path.decode(), mask_path.decode(), patches, rng if random_crops else None)
        return transformed(image, mask, rng, py_random)

    def load_and_augment(index: tf.Tensor, sample: tuple[tf.Tensor, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor]:
        if patches:
            image, mask = tf.numpy_function(crop_and_augment, [index, *sample], [tf.uint8, tf.uint8])
        else:
            # decode_image reads the JPEG/PNG records, the BMP copies and the full-size PNGs alike;
            # masks are stored with one channel
            image = tf.io.decode_image(sample[0], channels=3, expand_animations=False)
            mask = tf.io.decode_image(sample[1], expand_animations=False)
            image, mask = tf.numpy_function(augment, [index, image, mask], [tf.uint8, tf.uint8])
        image.set_shape((size, size, 3))
        mask.set_shape((size, size, 1))
        return image, mask

    return load_and_augment
