"""The console report of a run: its first line (data, steps, devices, optimizer), what a resumed run's new --epochs
does to the learning rate, and its last words (the best epoch, the speed, where everything is)."""

from segtf.config import SavedRun, TrainConfig
from segtf.evaluation.pictures import plot_history
from segtf.modeling.losses import LOSS_TITLES
from segtf.modeling.optimizers import learning_rate_schedule
from segtf.run_paths import RunPaths
from segtf.text import counted
from segtf.training.checkpoints import best_epoch, read_history
from segtf.training.distribute import cluster_line

import numpy as np
import tensorflow as tf


def print_start(
    config: TrainConfig, strategy: tf.distribute.Strategy, chief: bool, n_train: int, n_valid: int, steps: int
) -> None:
    replicas, batch_size, optimization = strategy.num_replicas_in_sync, config.loader.batch_size, config.optimization
    if strategy.cluster_resolver is not None:
        print(cluster_line(strategy, chief))
    print(
        f"training on {counted(n_train, 'pair')}, {counted(optimization.epochs, 'epoch')} of {counted(steps, 'step')} "
        f"of {batch_size} = {replicas} device(s) x {batch_size // replicas}, {optimization.optimizer} at "
        f"{optimization.learning_rate:g} "
        f"({optimization.lr_schedule}), seed {config.loader.seed}"
        f"{f', EMA {optimization.ema:g}' if optimization.ema else ''}; validating on {n_valid}"
    )
    if batch_size > n_train:
        print(f"note: --batch_size {batch_size} is more than the {n_train} training pairs: batches repeat pairs")


def schedule_change(config: TrainConfig, resumed: SavedRun, finished: int) -> str:
    """What the learning rate does when a run goes on with other --epochs than it began with: the schedule is the
    one of the new length, at the step the run reached."""
    optimization = config.optimization
    planned, steps = resumed.config.optimization.epochs, resumed.steps_per_epoch
    change = f"--epochs {optimization.epochs} instead of {planned}: "
    if optimization.lr_schedule != "cosine":
        return change + f"the {optimization.lr_schedule} learning rate goes on as it was"
    rate = learning_rate_schedule("cosine", optimization.learning_rate, optimization.epochs * steps)(finished * steps)
    return change + (
        f"the cosine schedule now spans {counted(optimization.epochs, 'epoch')}, so the learning rate is "
        f"{float(rate):.3g} at epoch {finished + 1} (the peak is {optimization.learning_rate:g}) and decays to 0 at "
        "the last step"
    )


def print_summary(paths: RunPaths, config: TrainConfig, seconds: list, steps: int) -> None:
    """The chief's last words: the best epoch, the speed, where everything is; Weights & Biases' run closed."""
    if config.run.log == "wandb":
        import wandb

        wandb.finish()
    if config.run.log == "tensorboard":
        print(f"tensorboard: python -m tensorboard.main --logdir {paths.tensorboard.parent}")
    history = read_history(paths.history)
    monitor, batch_size = config.optimization.monitor, config.loader.batch_size
    best = best_epoch(history, monitor)
    steady = seconds[1:] or seconds  # the first epoch also traces and compiles the model
    speed = ""  # stays so when every epoch had finished before a resume
    if steady:
        per_epoch = float(np.median(steady))
        speed = f"; {per_epoch:.1f} s per epoch of training, {steps * batch_size / per_epoch:.1f} images/s"
    print(
        f"best epoch {int(best.epoch) + 1} of {len(history)} ({counted(len(history) * steps, 'step')} of "
        f"{batch_size}) by {monitor}: val IoU {best.val_iou:.4f}, val F1 {best.val_f1:.4f}"
        + (f", val_loss {best.val_loss:.4f}" if "val_loss" in best else "")  # patch training validates without
        + speed
    )
    print(f"weights: {paths.best} (best), {paths.last} (last)")
    print(f"history: {paths.history}; run config: {paths.config}")
    plot_history(paths.history, paths.curves, f"loss ({LOSS_TITLES[config.model.loss]})")
    print(f"pictures: {paths.pictures} (validation images, true and predicted masks), {paths.curves}")
