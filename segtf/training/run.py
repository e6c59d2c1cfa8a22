"""A training run, read top-down: the precision and seed, the data, the model, fit, the summary; then the run in
its work folder (joining the cluster if there is one), and the runs of --folds.

Writes to WORK/tensorflow/ (workdir.py): weights/best-weight_<backbone>.h5 (best --monitor: highest val IoU) and
weights/last-weight_<backbone>.h5, logs/history.csv, logs/tensorboard/<time>/, run_config.json, and backup/ while a
run is under way, from which --resume continues it. checkpoints.py keeps these files whole when the run is killed;
SIGTERM or Ctrl-C stops it after the current step. In a cluster only the chief writes WORK (distribute.py)."""

import argparse
import contextlib
import math
import shutil
import sys
from pathlib import Path
from typing import Optional

from segtf.dataset import pipeline
from segtf.dataset.folds import run_splits, write_fold_csvs
from segtf.dataset.input_scaling import batch_dtype
from segtf.dataset.layout import split_csv
from segtf.dataset.loader_config import LoaderConfig
from segtf.errors import UserError
from segtf.evaluation.cross_validation import write_out_of_fold
from segtf.evaluation.pictures import plot_history
from segtf.modeling.losses import CLASS_LOSSES, make_loss
from segtf.modeling.network import check_encoder, create_model
from segtf.modeling.optimizers import learning_rate_schedule
from segtf.modeling.precision import PRECISIONS, auto_precision, cpu_flags, gpu_capabilities, saved_precision
from segtf.training import checkpoints
from segtf.training.callbacks import check_wandb_login, make_callbacks
from segtf.training.checkpoints import best_epoch
from segtf.training.distribute import (
    cluster_line,
    cluster_resolver,
    is_chief,
    make_strategy,
    shared_first,
    shared_seed,
    weights_checksum,
)
from segtf.training.workdir import (
    RunPaths,
    check_work_dir,
    holding_work_dir,
    prepare_work_dir,
    run_finished,
    save_run_config,
    work_paths,
    worker_paths,
)

import numpy as np
import pandas as pd
import tensorflow as tf

# Fewest steps an epoch by default: a small set still gets enough steps for the default --epochs, and validation,
# checkpoints, the plateau schedule and --patience keep a meaningful unit. nnU-Net uses 250 whatever the data size.
MIN_STEPS_PER_EPOCH = 250


def choose_precision(args: argparse.Namespace, resumed: Optional[dict], strategy: tf.distribute.Strategy) -> str:
    """The precision to train in, said in one line with why: --mixed_precision, or for auto a resumed run's or the
    one these devices suit (in a cluster, the first of PRECISIONS that any worker's devices chose)."""
    suited, why = auto_precision(gpu_capabilities(), cpu_flags(), args.backbone)
    if strategy.cluster_resolver is not None:
        common = PRECISIONS[shared_first(strategy, PRECISIONS.index(suited), len(PRECISIONS))]
        suited, why = common, why if common == suited else f"{why}, but another worker's devices suit {common}"
    if args.mixed_precision != "auto":
        chosen = args.mixed_precision
        why = "as asked" + ("" if chosen == suited else f"; auto would take {suited} here: {why}")
    elif resumed:
        chosen, why = saved_precision(resumed["args"].get("mixed_precision", True)), "auto: the resumed run's"
    else:
        chosen, why = suited, f"auto: {why}"
    print(f"computing in {chosen} ({why})")
    return chosen


def set_seed(args: argparse.Namespace, resumed: Optional[dict], strategy: tf.distribute.Strategy) -> None:
    """--seed, or the interrupted run's, or one drawn (the same on every worker) and then recorded in
    run_config.json, so that the run can be repeated."""
    if args.seed is None and resumed:
        args.seed = resumed["args"].get("seed")
    if args.seed is None:
        args.seed = int(np.random.default_rng().integers(2**31))
        if strategy.cluster_resolver is not None:
            args.seed = shared_seed(strategy, args.seed)
    tf.keras.utils.set_random_seed(args.seed)


def build_datasets(
    args: argparse.Namespace, strategy: tf.distribute.Strategy
) -> tuple[tf.distribute.DistributedDataset, int, tf.data.Dataset, int]:
    """(training batches, training samples, validation batches, validation samples). Each worker builds
    its own training pipeline over its own shard of the samples, in batches of --batch_size divided by
    the replicas of all workers; validation is one dataset that each worker scores a part of."""
    n_train = []
    train_split, valid_split = run_splits(args.folds, args.fold)

    def worker_batches(context: tf.distribute.InputContext) -> tf.data.Dataset:
        shard = (context.num_input_pipelines, context.input_pipeline_id)
        batch_size = context.get_per_replica_batch_size(args.batch_size)
        batches, n = pipeline.training_batches(LoaderConfig.from_values(vars(args)), batch_size, shard, train_split)
        n_train.append(n)
        return batches

    train = strategy.distribute_datasets_from_function(worker_batches)
    valid, n_valid = pipeline.build_dataset(
        [split_csv(Path(args.data_root), valid_split)], args.image_size, args.batch_size, training=False,
        resize_first=args.resize_first, replicas=strategy.num_replicas_in_sync,
        cache_format=args.cache_format, patches=LoaderConfig.from_values(vars(args)).patches,
        dtype=batch_dtype(args.mixed_precision), classes=args.classes,
    )  # fmt: skip
    return train, n_train[0], valid, n_valid


def steps_per_epoch(args: argparse.Namespace, n_train: int, resumed: Optional[dict]) -> int:
    """--steps_per_epoch, else a pass over the training set but at least MIN_STEPS_PER_EPOCH; a resumed run keeps
    its own, since its backup counts steps of its epochs."""
    if resumed:
        return resumed["steps_per_epoch"]
    return args.steps_per_epoch or max(math.ceil(n_train / args.batch_size), MIN_STEPS_PER_EPOCH)


def build_model(args: argparse.Namespace, strategy: tf.distribute.Strategy, steps: int) -> tf.keras.Model:
    """The compiled model of the flags, its variables on the strategy's devices, from --init_weights if given."""
    with strategy.scope():
        model = create_model(
            args.backbone,
            args.encoder_weights,
            optimizer=args.optimizer,
            learning_rate=args.learning_rate,
            weight_decay=args.weight_decay,
            lr_schedule=args.lr_schedule,
            total_steps=args.epochs * steps,
            bn_momentum=args.bn_momentum,
            jit_compile=args.jit_compile,
            precision=args.mixed_precision,
            loss=make_loss(args.loss, args.tversky_alpha, args.tversky_beta, args.classes),
            arch=args.arch,
            ema=args.ema,
            class_names=args.class_names,
        )
        if args.init_weights:
            try:
                model.load_weights(args.init_weights)
            except (ValueError, OSError) as error:
                first_line = str(error).strip().splitlines()[0]
                raise UserError(
                    f"--init_weights {args.init_weights} does not fit a {args.arch} on {args.backbone}: {first_line}"
                ) from error
    return model


def print_start(
    args: argparse.Namespace, strategy: tf.distribute.Strategy, chief: bool, n_train: int, n_valid: int, steps: int
) -> None:
    replicas = strategy.num_replicas_in_sync
    if strategy.cluster_resolver is not None:
        print(cluster_line(strategy, chief))
    print(
        f"training on {n_train} pairs, {args.epochs} epochs of {steps} steps of {args.batch_size} = {replicas} "
        f"device(s) x {args.batch_size // replicas}, {args.optimizer} at {args.learning_rate:g} ({args.lr_schedule}), "
        f"seed {args.seed}{f', EMA {args.ema:g}' if args.ema else ''}; validating on {n_valid}"
    )
    if args.batch_size > n_train:
        print(f"note: --batch_size {args.batch_size} is more than the {n_train} training pairs: batches repeat pairs")


def fit(
    model: tf.keras.Model,
    train: tf.distribute.DistributedDataset,
    valid: tf.data.Dataset,
    steps: int,
    callbacks: list,
    args: argparse.Namespace,
    in_cluster: bool,
) -> None:
    """model.fit, stopping cleanly on SIGTERM or Ctrl-C on one machine, with a failure of XLA said in
    one line. In a cluster a signal stops the process at once: a clean stop backs up the weights, which
    every worker must do at the same step, and a signal reaches each worker at a step of its own."""
    committer = next(c for c in callbacks if isinstance(c, checkpoints.CommittedEpochs))
    try:
        with contextlib.nullcontext() if in_cluster else committer.handling_signals():
            model.fit(
                train,
                epochs=args.epochs,
                steps_per_epoch=steps,
                validation_data=None if args.patch_size else valid,  # patches: sliding_window_validation
                callbacks=callbacks,
                verbose=1 if sys.stdout.isatty() else 2,
            )
    except (tf.errors.ResourceExhaustedError, MemoryError) as error:
        raise UserError(
            f"out of memory while training ({type(error).__name__}): lower --batch_size or --image_size"
            + ("" if args.mixed_precision != "float32" else ", or train with --mixed_precision auto on a GPU")
            + "; finished epochs are kept, --resume continues"
        ) from error
    except tf.errors.OpError as error:
        if not args.jit_compile or isinstance(error, tf.errors.UnavailableError):
            raise
        raise UserError(
            f"--jit_compile: XLA could not compile this model on this device ({type(error).__name__}); train without it"
        ) from error


def print_summary(paths: RunPaths, args: argparse.Namespace, seconds: list, steps: int) -> None:
    """The chief's last words: the best epoch, the speed, where everything is; Weights & Biases' run closed."""
    if args.log == "wandb":
        import wandb

        wandb.finish()
    if args.log == "tensorboard":
        print(f"tensorboard: python -m tensorboard.main --logdir {paths.tensorboard.parent}")
    history = pd.read_csv(paths.history)
    best = best_epoch(history, args.monitor)
    steady = seconds[1:] or seconds  # the first epoch also traces and compiles the model
    speed = ""  # stays so when every epoch had finished before a resume
    if steady:
        per_epoch = float(np.median(steady))
        speed = f"; {per_epoch:.1f} s per epoch of training, {steps * args.batch_size / per_epoch:.1f} images/s"
    print(
        f"best epoch {int(best.epoch) + 1} of {len(history)} ({len(history) * steps} steps of {args.batch_size}) by "
        f"{args.monitor}: val IoU {best.val_iou:.4f}, val F1 {best.val_f1:.4f}"
        + (f", val_loss {best.val_loss:.4f}" if "val_loss" in best else "")  # patch training validates without
        + speed
    )
    print(f"weights: {paths.best} (best), {paths.last} (last)")
    print(f"history: {paths.history}; run config: {paths.config}")
    plot_history(paths.history, paths.curves)
    print(f"pictures: {paths.pictures} (validation images, true and predicted masks), {paths.curves}")


def train_model(
    args: argparse.Namespace, paths: RunPaths, strategy: tf.distribute.Strategy, resumed: Optional[dict], chief: bool
) -> None:
    """Data, model, fit and summary, on the strategy's devices."""
    replicas = strategy.num_replicas_in_sync
    if args.batch_size % replicas:
        raise UserError(f"--batch_size {args.batch_size} does not split evenly over {replicas} devices")
    args.mixed_precision = choose_precision(args, resumed, strategy)
    set_seed(args, resumed, strategy)
    train_batches, n_train, valid_batches, n_valid = build_datasets(args, strategy)
    steps = steps_per_epoch(args, n_train, resumed)
    model = build_model(args, strategy, steps)
    save_run_config(paths, args, strategy, {"train": n_train, "valid": n_valid}, steps)
    print_start(args, strategy, chief, n_train, n_valid, steps)
    if chief and resumed and resumed["args"]["epochs"] != args.epochs:
        print(schedule_change(args, resumed, len(checkpoints.read_history(paths.history))))
    seconds = []
    callbacks = make_callbacks(args, paths, model, valid_batches, seconds, steps, chief)
    resolver = strategy.cluster_resolver
    fit(model, train_batches, valid_batches, steps, callbacks, args, in_cluster=resolver is not None)
    if resolver is not None:
        print(f"{resolver.task_type} {resolver.task_id} finished; weights checksum {weights_checksum(model)}")
    if chief:
        print_summary(paths, args, seconds, steps)
        if args.folds:
            write_out_of_fold(paths, args)


def schedule_change(args: argparse.Namespace, resumed: dict, finished: int) -> str:
    """What the learning rate does when a run goes on with other --epochs than it began with: the schedule is the
    one of the new length, at the step the run reached."""
    planned, steps = resumed["args"]["epochs"], resumed["steps_per_epoch"]
    change = f"--epochs {args.epochs} instead of {planned}: "
    if args.lr_schedule != "cosine":
        return change + f"the {args.lr_schedule} learning rate goes on as it was"
    rate = learning_rate_schedule("cosine", args.learning_rate, args.epochs * steps)(finished * steps)
    return change + (
        f"the cosine schedule now spans {args.epochs} epochs, so the learning rate is {float(rate):.3g} at epoch "
        f"{finished + 1} (the peak is {args.learning_rate:g}) and decays to 0 at the last step"
    )


def run_training(args: argparse.Namespace, paths: RunPaths) -> None:
    """Check everything cheap first, ready the work folder, join the cluster if there is one, and train.
    In a cluster the chief readies the work folder before the others can go on, since making the
    strategy waits for every worker."""
    resolver = cluster_resolver(args.cluster)
    chief = is_chief(resolver)
    resumed = check_work_dir(paths, args)
    check_encoder(args.backbone, args.encoder_weights)
    valid = split_csv(Path(args.data_root), "valid")
    if not args.folds and valid.exists() and pd.read_csv(valid).empty:
        raise UserError(f"{valid} lists no pairs (--valid_fraction 0?): cross-validate with --folds N instead")
    for split in run_splits(args.folds, args.fold):  # the cheap checks of the data, before anything slow
        pipeline.read_samples(split_csv(Path(args.data_root), split))
    if args.log == "wandb" and chief:
        check_wandb_login()
    if chief:
        prepare_work_dir(paths, resumed is not None)
        if resumed:
            finished = checkpoints.recover(paths, resumed["steps_per_epoch"])
            print(f"resuming {paths.root} after {finished} finished epochs" if finished else
                  "no epoch had finished: starting over")  # fmt: skip
    if resolver is not None and args.patch_size:  # each worker would validate on its own, and could choose otherwise
        raise UserError("--patch_size trains on one machine only for now, not in a cluster")
    strategy = make_strategy(args.device, args.cpu_devices, resolver)
    if not chief:
        paths = worker_paths(paths, resolver.task_id)
    try:
        train_model(args, paths, strategy, resumed, chief)
    finally:
        if not chief:
            shutil.rmtree(paths.root, ignore_errors=True)


def fold_runs(args: argparse.Namespace) -> list[tuple[argparse.Namespace, RunPaths]]:
    """The runs that --folds and --fold ask for, each with its flags and paths (WORK/fold_<K>/), after the
    folds' CSVs are written; without --folds, the one run in WORK."""
    if not args.folds:
        return [(args, work_paths(Path(args.work_dir), args.backbone))]
    write_fold_csvs(Path(args.data_root), args.folds)
    runs = []
    for fold in range(args.folds) if args.fold == "all" else [args.fold]:
        paths = work_paths(Path(args.work_dir) / f"fold_{fold}", args.backbone)
        # with --resume, a fold not begun starts
        fold_args = argparse.Namespace(**{**vars(args), "fold": fold, "resume": args.resume and paths.config.exists()})
        if not fold_args.resume:  # every fold's folder checked before any trains
            check_work_dir(paths, fold_args)
        runs.append((fold_args, paths))
    return runs


def check_classes(args: argparse.Namespace) -> None:
    """UserError when --classes disagrees with the data's classes, or --loss is of one class only."""
    count = len(args.class_names) if args.class_names else 1
    if args.classes != count:
        raise UserError(
            f"--classes {args.classes}, but {args.data_root} was prepared for {count}: "
            f"data_preparation.py --classes {args.classes} prepares it again"
        )
    if count == 1:
        return
    if args.loss not in CLASS_LOSSES:
        raise UserError(f"--loss {args.loss} is for one class; with several classes: {', '.join(CLASS_LOSSES)}")


def train_runs(args: argparse.Namespace) -> None:
    """Each run of fold_runs in turn, its folder held by the chief alone (one run a folder). With --resume, a
    fold that is done is skipped, and one that finished training but not its out-of-fold predictions writes them."""
    check_classes(args)
    chief = is_chief(cluster_resolver(args.cluster))
    for run_args, paths in fold_runs(args):
        with holding_work_dir(paths.root) if chief else contextlib.nullcontext():
            train_run(run_args, paths)


def train_run(run_args: argparse.Namespace, paths: RunPaths) -> None:
    if run_args.resume and paths.out_of_fold.is_dir():
        print(f"fold {run_args.fold} is done: {paths.out_of_fold}")
    elif run_args.resume and run_args.folds and run_finished(paths):
        write_out_of_fold(paths, run_args)
    else:
        if run_args.folds:
            print(f"fold {run_args.fold} of {run_args.folds}, into {paths.root}")
        run_training(run_args, paths)
