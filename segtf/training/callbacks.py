"""The callbacks of training besides the checkpoints: sliding-window validation of patch runs, validation pictures,
the epoch timer, the schedule and early stop, TensorBoard and Weights & Biases."""

import os
import time
from pathlib import Path
from typing import Optional, Sequence

from segtf.config import TrainConfig
from segtf.dataset import pipeline
from segtf.dataset.folds import run_splits
from segtf.dataset.input_scaling import to_pixels
from segtf.dataset.layout import split_csv
from segtf.dataset.patches import Patches
from segtf.errors import UserError
from segtf.evaluation.pictures import comparison_rows, save_picture, titled
from segtf.evaluation.scoring import class_pixel_counts, pixel_counts, ratios
from segtf.inference.sliding_window import DEFAULT_OVERLAP, predict_scaled, window_predictor
from segtf.modeling.ema import AveragedValidation, averaged_weights
from segtf.modeling.metrics import metric_name
from segtf.modeling.outputs import squeeze_channel, to_mask
from segtf.run_paths import RunPaths
from segtf.training import checkpoints

import cv2
import numpy as np
import pandas as pd
import tensorflow as tf


def validation_pictures(
    model: tf.keras.Model,
    valid: tf.data.Dataset,
    paths: RunPaths,
    tensorboard: bool,
    names: Optional[Sequence[str]],
    colors: Optional[Sequence],
    count: int = 4,
) -> tf.keras.callbacks.Callback:
    """Each epoch, draw `count` validation images with their true and predicted masks (several classes: labels, and
    the most probable class), side by side, into WORK/tensorflow/logs/validation_pictures.png and, with
    tensorboard, into its logs."""
    images, masks = next(iter(valid.unbatch().batch(count)))
    images = images.numpy().astype(np.float32)
    photos = to_pixels(images)
    true = masks.numpy()[..., 0] if names else masks.numpy()[..., 0] > 0.5
    writer = tf.summary.create_file_writer(str(paths.tensorboard / "validation_pictures")) if tensorboard else None

    def draw(epoch: int, logs: dict) -> None:
        with averaged_weights(model):
            probabilities = model.predict(images, verbose=0)
        predicted = to_mask(squeeze_channel(probabilities), several=bool(names))
        rows = comparison_rows(zip(photos, true, predicted), photos.shape[1], names, colors)
        save_picture(paths.pictures, titled(rows, [f"epoch {epoch + 1}"], names, colors))
        if writer:
            with writer.as_default():
                tf.summary.image("photo | true mask | predicted mask", rows, step=epoch, max_outputs=count)

    return tf.keras.callbacks.LambdaCallback(on_epoch_end=draw)


def sliding_window_validation(
    model: tf.keras.Model,
    table: pd.DataFrame,
    patches: Patches,
    batch_size: int,
    tta: Optional[str],
    names: Optional[list[str]] = None,
) -> tf.keras.callbacks.Callback:
    """Each epoch, val_iou and val_f1 of the whole validation images, predicted as predict.py does with a patch
    size (sliding windows on the image rescaled by patches.scale) and scored at each image's own resolution,
    from the pixels of the whole set. With several classes (names), the means over the foreground classes, and
    each class's val_iou_<name>, as the Keras metrics log them."""
    predict_batch = window_predictor(model)
    windows = {"scale": patches.scale, "patch_size": patches.size, "overlap": DEFAULT_OVERLAP}

    def validate(epoch: int, logs: dict) -> None:
        counts = [{"tp": 0, "fp": 0, "fn": 0} for _ in names or [None]]
        with averaged_weights(model):
            for image_path, mask_path in zip(table.image, table["mask"]):
                photo = cv2.cvtColor(cv2.imread(image_path), cv2.COLOR_BGR2RGB)
                truth = cv2.imread(mask_path, cv2.IMREAD_GRAYSCALE)
                probabilities = predict_scaled(predict_batch, photo, **windows, batch_size=batch_size, tta=tta)
                predicted = to_mask(probabilities, several=bool(names))
                if names:
                    found = class_pixel_counts(predicted, truth, len(names))
                else:
                    found = [pixel_counts(predicted, truth > 127)]
                for total, image_counts in zip(counts, found):
                    for name, count in image_counts.items():
                        total[name] += count
        scores = [ratios(**c) for c in counts]
        foreground = scores[1:] if names else scores
        logs["val_iou"], logs["val_f1"] = (float(np.mean([s[k] for s in foreground])) for k in ("iou", "f1"))
        for class_name, score in zip(names or [], scores):
            logs[f"val_iou_{metric_name(class_name)}"] = score["iou"]

    return tf.keras.callbacks.LambdaCallback(on_epoch_end=validate)


def run_window_validation(config: TrainConfig, model: tf.keras.Model) -> tf.keras.callbacks.Callback:
    """sliding_window_validation of a patch run (--patch_size): its validation split, windows and TTA."""
    loader, run = config.loader, config.run
    table = pipeline.read_samples(split_csv(Path(loader.data_root), run_splits(run.folds, run.fold)[1]))
    return sliding_window_validation(
        model, table, pipeline.patches_of(loader), loader.batch_size, run.tta, config.model.class_names
    )


def check_wandb_login() -> None:
    """An online wandb run without a login would stop at a prompt, or fail after the data is loaded."""
    from wandb.apis import InternalApi

    if os.environ.get("WANDB_MODE", "online") not in ("offline", "dryrun", "disabled") and not InternalApi().api_key:
        raise UserError("--log wandb: not logged in to Weights & Biases; run `wandb login`, or set WANDB_MODE=offline")


def wandb_callbacks(config: TrainConfig, paths: RunPaths) -> list:
    import wandb
    from wandb.integration.keras import WandbMetricsLogger

    wandb.init(project=config.run.wandb_project, config=config.flat(), dir=str(paths.history.parent))
    return [WandbMetricsLogger()]


def epoch_timer(seconds: list) -> tf.keras.callbacks.Callback:
    """Append each epoch's training seconds (validation excluded) to `seconds`."""
    state = {}
    return tf.keras.callbacks.LambdaCallback(
        on_epoch_begin=lambda epoch, logs: state.update(start=time.perf_counter()),
        on_batch_end=lambda batch, logs: state.update(end=time.perf_counter()),
        on_epoch_end=lambda epoch, logs: seconds.append(state["end"] - state["start"]),
    )


def make_callbacks(
    config: TrainConfig,
    paths: RunPaths,
    model: tf.keras.Model,
    valid: tf.data.Dataset,
    seconds: list,
    steps: int,
    chief: bool,
) -> list:
    """The same callbacks on every worker of a cluster (several of them take part in collective reads of
    the weights), but a Weights & Biases run for the chief only."""
    loader, optimization, run = config.loader, config.optimization, config.run
    mode = checkpoints.monitor_mode(optimization.monitor)
    callbacks = [AveragedValidation()] if optimization.ema else []
    if loader.patch_size:  # first: the callbacks after it read the val_iou it adds
        callbacks.append(run_window_validation(config, model))
    callbacks += [
        checkpoints.CommittedEpochs(paths, optimization.monitor, steps),
        epoch_timer(seconds),
        validation_pictures(model, valid, paths, run.log == "tensorboard", config.model.class_names,
                            config.model.class_colors),  # fmt: skip
    ]
    if optimization.lr_schedule == "plateau":
        callbacks.append(tf.keras.callbacks.ReduceLROnPlateau(optimization.monitor, factor=0.5, patience=5, mode=mode))
    if optimization.patience:
        callbacks.append(
            tf.keras.callbacks.EarlyStopping(optimization.monitor, patience=optimization.patience, mode=mode)
        )
    if run.log == "tensorboard":
        callbacks.append(tf.keras.callbacks.TensorBoard(str(paths.tensorboard), write_graph=False, profile_batch=0))
    if run.log == "wandb" and chief:
        callbacks += wandb_callbacks(config, paths)
    return callbacks
