"""A training run, read top-down: the precision and seed, the data, the model, fit, the summary; then the run in
its work folder (joining the cluster if there is one), and the runs of --folds.

Writes to WORK/tensorflow/ (workdir.py): weights/best-weight_<backbone>.h5 (best --monitor: highest val IoU) and
weights/last-weight_<backbone>.h5, logs/history.csv, logs/tensorboard/<time>/, run_config.json, and backup/ while a
run is under way, from which --resume continues it. checkpoints.py keeps these files whole when the run is killed;
SIGTERM or Ctrl-C stops it after the current step. In a cluster only the chief writes WORK (distribute.py)."""

import contextlib
import dataclasses
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Optional

from segtf.config import SavedRun, TrainConfig
from segtf.dataset import pipeline
from segtf.dataset.classes import class_count_of
from segtf.dataset.folds import run_splits, write_fold_csvs
from segtf.dataset.input_scaling import batch_dtype
from segtf.dataset.layout import split_csv
from segtf.errors import UserError
from segtf.evaluation.cross_validation import write_out_of_fold
from segtf.modeling.losses import CLASS_LOSSES, make_loss
from segtf.modeling.network import check_encoder, create_model, load_weights
from segtf.modeling.precision import PRECISIONS, auto_precision, cpu_flags, gpu_capabilities
from segtf.run_paths import RunPaths, work_paths
from segtf.training import budget, checkpoints
from segtf.training.callbacks import check_wandb_login, make_callbacks
from segtf.training.distribute import (
    cluster_resolver,
    is_chief,
    make_strategy,
    shared_first,
    shared_seed,
    weights_checksum,
)
from segtf.training.report import print_start, print_summary, schedule_change
from segtf.training.workdir import (
    check_work_dir,
    holding_work_dir,
    prepare_work_dir,
    run_finished,
    save_run_config,
    worker_paths,
)

import numpy as np
import tensorflow as tf

# Fewest steps an epoch by default: a small set still gets enough steps for the default --epochs, and validation,
# checkpoints, the plateau schedule and --patience keep a meaningful unit. nnU-Net uses 250 whatever the data size.
MIN_STEPS_PER_EPOCH = 250


def choose_precision(config: TrainConfig, resumed: Optional[SavedRun], strategy: tf.distribute.Strategy) -> str:
    """The precision to train in, said in one line with why: --mixed_precision, or for auto a resumed run's or the
    one these devices suit (in a cluster, the first of PRECISIONS that any worker's devices chose)."""
    suited, why = auto_precision(gpu_capabilities(), cpu_flags(), config.model.backbone)
    if strategy.cluster_resolver is not None:
        common = PRECISIONS[shared_first(strategy, PRECISIONS.index(suited), len(PRECISIONS))]
        suited, why = common, why if common == suited else f"{why}, but another worker's devices suit {common}"
    if config.loader.mixed_precision != "auto":
        chosen = config.loader.mixed_precision
        why = "as asked" + ("" if chosen == suited else f"; auto would take {suited} here: {why}")
    elif resumed:
        chosen, why = resumed.config.loader.mixed_precision, "auto: the resumed run's"
    else:
        chosen, why = suited, f"auto: {why}"
    print(f"computing in {chosen} ({why})")
    return chosen


def choose_seed(config: TrainConfig, resumed: Optional[SavedRun], strategy: tf.distribute.Strategy) -> int:
    """--seed, or the interrupted run's, or one drawn (the same on every worker) and then recorded in
    run_config.json, so that the run can be repeated."""
    seed = config.loader.seed
    if seed is None and resumed:
        seed = resumed.config.loader.seed
    if seed is None:
        seed = int(np.random.default_rng().integers(2**31))
        if strategy.cluster_resolver is not None:
            seed = shared_seed(strategy, seed)
    return seed


def build_datasets(
    config: TrainConfig, strategy: tf.distribute.Strategy
) -> tuple[tf.distribute.DistributedDataset, int, tf.data.Dataset, int]:
    """(training batches, training samples, validation batches, validation samples). Each worker builds
    its own training pipeline over its own shard of the samples, in batches of --batch_size divided by
    the replicas of all workers; validation is one dataset that each worker scores a part of."""
    n_train = []
    train_split, valid_split = run_splits(config.run.folds, config.run.fold)

    def worker_batches(context: tf.distribute.InputContext) -> tf.data.Dataset:
        shard = (context.num_input_pipelines, context.input_pipeline_id)
        batch_size = context.get_per_replica_batch_size(config.loader.batch_size)
        batches, n = pipeline.training_batches(config.loader, batch_size, shard, train_split)
        n_train.append(n)
        return batches

    train = strategy.distribute_datasets_from_function(worker_batches)
    loader = config.loader
    valid, n_valid = pipeline.build_dataset(
        [split_csv(Path(loader.data_root), valid_split)], loader.image_size, loader.batch_size, training=False,
        resize_first=loader.resize_first, replicas=strategy.num_replicas_in_sync, cache_format=loader.cache_format,
        patches=pipeline.patches_of(loader), dtype=batch_dtype(loader.mixed_precision), classes=config.model.classes,
    )  # fmt: skip
    return train, n_train[0], valid, n_valid


def steps_per_epoch(config: TrainConfig, n_train: int, resumed: Optional[SavedRun]) -> int:
    """--steps_per_epoch, else a pass over the training set but at least MIN_STEPS_PER_EPOCH; a resumed run keeps
    its own, since its backup counts steps of its epochs."""
    if resumed:
        return resumed.steps_per_epoch
    floor = max(math.ceil(n_train / config.loader.batch_size), MIN_STEPS_PER_EPOCH)
    return config.optimization.steps_per_epoch or floor


def build_model(config: TrainConfig, strategy: tf.distribute.Strategy, steps: int) -> tf.keras.Model:
    """The compiled model of the configuration, its variables on the strategy's devices, from --init_weights if
    given."""
    model_config, optimization = config.model, config.optimization
    with strategy.scope():
        model = create_model(
            model_config.backbone,
            model_config.encoder_weights,
            optimizer=optimization.optimizer,
            learning_rate=optimization.learning_rate,
            weight_decay=optimization.weight_decay,
            lr_schedule=optimization.lr_schedule,
            total_steps=optimization.epochs * steps,
            bn_momentum=model_config.bn_momentum,
            jit_compile=model_config.jit_compile,
            precision=config.loader.mixed_precision,
            loss=make_loss(
                model_config.loss, model_config.tversky_alpha, model_config.tversky_beta, model_config.classes
            ),
            arch=model_config.arch,
            ema=optimization.ema,
            class_names=model_config.class_names,
        )
        if model_config.init_weights:
            load_weights(model, Path(model_config.init_weights), "--init_weights", model_config.arch,
                         model_config.backbone)  # fmt: skip
    return model


def fit(
    model: tf.keras.Model,
    train: tf.distribute.DistributedDataset,
    valid: tf.data.Dataset,
    steps: int,
    callbacks: list,
    config: TrainConfig,
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
                epochs=config.optimization.epochs,
                steps_per_epoch=steps,
                validation_data=None if config.loader.patch_size else valid,  # patches: sliding_window_validation
                callbacks=callbacks,
                verbose=1 if sys.stdout.isatty() else 2,
            )
    except (tf.errors.ResourceExhaustedError, MemoryError) as error:
        raise UserError(
            f"out of memory while training ({type(error).__name__}): lower --batch_size or --image_size"
            + ("" if config.loader.mixed_precision != "float32" else ", or train with --mixed_precision auto on a GPU")
            + "; finished epochs are kept, --resume continues"
        ) from error
    except tf.errors.OpError as error:
        if not config.model.jit_compile or isinstance(error, tf.errors.UnavailableError):
            raise
        raise UserError(
            f"--jit_compile: XLA could not compile this model on this device ({type(error).__name__}); train without it"
        ) from error


def resolved(config: TrainConfig, resumed: Optional[SavedRun], strategy: tf.distribute.Strategy) -> TrainConfig:
    """The configuration with its precision and seed chosen for these devices (auto, or none given)."""
    loader = dataclasses.replace(
        config.loader,
        mixed_precision=choose_precision(config, resumed, strategy),
        seed=choose_seed(config, resumed, strategy),
    )
    return dataclasses.replace(config, loader=loader)


def train_model(
    config: TrainConfig,
    paths: RunPaths,
    strategy: tf.distribute.Strategy,
    resumed: Optional[SavedRun],
    chief: bool,
    deadline: Optional[float],
) -> None:
    """Data, model, fit and summary, on the strategy's devices; with --time_budget, a new run's epochs fitted to
    end by deadline (time.monotonic())."""
    replicas = strategy.num_replicas_in_sync
    if config.loader.batch_size % replicas:
        raise UserError(f"--batch_size {config.loader.batch_size} does not split evenly over {replicas} devices")
    config = resolved(config, resumed, strategy)
    tf.keras.utils.set_random_seed(config.loader.seed)
    train_batches, n_train, valid_batches, n_valid = build_datasets(config, strategy)
    steps = steps_per_epoch(config, n_train, resumed)
    if deadline is not None and not resumed:
        config = within_budget(config, strategy, train_batches, valid_batches, steps, deadline)
        steps = config.optimization.steps_per_epoch
    model = build_model(config, strategy, steps)
    save_run_config(paths, config, strategy, {"train": n_train, "valid": n_valid}, steps)
    print_start(config, strategy, chief, n_train, n_valid, steps)
    if chief and resumed and resumed.config.optimization.epochs != config.optimization.epochs:
        print(schedule_change(config, resumed, len(checkpoints.read_history(paths.history))))
    seconds = []
    callbacks = make_callbacks(config, paths, model, valid_batches, seconds, steps, chief)
    resolver = strategy.cluster_resolver
    fit(model, train_batches, valid_batches, steps, callbacks, config, in_cluster=resolver is not None)
    if resolver is not None:
        print(f"{resolver.task_type} {resolver.task_id} finished; weights checksum {weights_checksum(model)}")
    if chief:
        print_summary(paths, config, seconds, steps)
        if config.run.folds:
            write_out_of_fold(paths, config)


def within_budget(
    config: TrainConfig,
    strategy: tf.distribute.Strategy,
    train: tf.distribute.DistributedDataset,
    valid: tf.data.Dataset,
    floor_steps: int,
    deadline: float,
) -> TrainConfig:
    """The configuration with the epochs and steps that end the run by deadline, at the speed of a throwaway
    model; the seed set again after it, so that the run's own model starts as it would without."""
    speed = budget.measure_speed(lambda: build_model(config, strategy, floor_steps), config, train, valid)
    tf.keras.utils.set_random_seed(config.loader.seed)
    fitted = budget.fit_to_budget(config, speed, deadline - time.monotonic(), floor_steps)
    print(budget.describe(fitted, speed, deadline))
    return fitted


def run_training(config: TrainConfig, paths: RunPaths, deadline: Optional[float]) -> None:
    """Check everything cheap first, ready the work folder, join the cluster if there is one, and train.
    In a cluster the chief readies the work folder before the others can go on, since making the
    strategy waits for every worker."""
    resolver = cluster_resolver(config.run.cluster)
    chief = is_chief(resolver)
    resumed = check_work_dir(paths, config)
    check_encoder(config.model.backbone, config.model.encoder_weights)
    data_root = Path(config.loader.data_root)
    pipeline.check_not_empty(data_root, config.run.folds)
    for split in run_splits(config.run.folds, config.run.fold):  # the cheap checks of the data, before anything slow
        pipeline.read_samples(split_csv(data_root, split))
    if config.run.log == "wandb" and chief:
        check_wandb_login()
    if chief:
        prepare_work_dir(paths, resumed is not None)
        if resumed:
            finished = checkpoints.recover(paths, resumed.steps_per_epoch)
            print(f"resuming {paths.root} after {finished} finished epochs" if finished else
                  "no epoch had finished: starting over")  # fmt: skip
    if resolver is not None and config.loader.patch_size:  # each worker would validate on its own and choose otherwise
        raise UserError("--patch_size trains on one machine only for now, not in a cluster")
    if resolver is not None and config.optimization.time_budget:  # each worker would measure a speed of its own
        raise UserError("--time_budget trains on one machine only for now, not in a cluster")
    strategy = make_strategy(config.run.device, config.run.cpu_devices, resolver)
    if not chief:
        paths = worker_paths(paths, resolver.task_id)
    try:
        train_model(config, paths, strategy, resumed, chief, deadline)
    finally:
        if not chief:
            shutil.rmtree(paths.root, ignore_errors=True)


def fold_runs(config: TrainConfig) -> list[tuple[TrainConfig, RunPaths]]:
    """The runs that --folds and --fold ask for, each with its configuration and paths (WORK/fold_<K>/), after the
    folds' CSVs are written; without --folds, the one run in WORK."""
    run = config.run
    if not run.folds:
        return [(config, work_paths(Path(run.work_dir), config.model.backbone))]
    write_fold_csvs(Path(config.loader.data_root), run.folds)
    runs = []
    for fold in range(run.folds) if run.fold == "all" else [run.fold]:
        paths = work_paths(Path(run.work_dir) / f"fold_{fold}", config.model.backbone)
        # with --resume, a fold not begun starts
        fold_run = dataclasses.replace(run, fold=fold, resume=run.resume and paths.config.exists())
        fold_config = dataclasses.replace(config, run=fold_run)
        if not fold_run.resume:  # every fold's folder checked before any trains
            check_work_dir(paths, fold_config)
        runs.append((fold_config, paths))
    return runs


def check_classes(config: TrainConfig) -> None:
    """UserError when --classes disagrees with the data's classes, or --loss is of one class only."""
    model_config = config.model
    count = class_count_of(model_config.class_names)
    if model_config.classes != count:
        raise UserError(
            f"--classes {model_config.classes}, but {config.loader.data_root} was prepared for {count}: "
            f"data_preparation.py --classes {model_config.classes} prepares it again"
        )
    if count == 1:
        return
    if model_config.loss not in CLASS_LOSSES:
        raise UserError(f"--loss {model_config.loss} is for one class; with several classes: {', '.join(CLASS_LOSSES)}")


def train_runs(config: TrainConfig, started: Optional[float] = None) -> None:
    """Each run of fold_runs in turn, its folder held by the chief alone (one run a folder). With --resume, a
    fold that is done is skipped, and one that finished training but not its out-of-fold predictions writes them.
    With --time_budget, counted from started (time.monotonic(); default: now), each run gets an equal share of
    what is left when it begins."""
    check_classes(config)
    chief = is_chief(cluster_resolver(config.run.cluster))
    budget_minutes = config.optimization.time_budget
    end = (started or time.monotonic()) + budget_minutes * 60 if budget_minutes else None
    runs = fold_runs(config)
    for number, (fold_config, paths) in enumerate(runs):
        deadline = None if end is None else time.monotonic() + (end - time.monotonic()) / (len(runs) - number)
        with holding_work_dir(paths.root) if chief else contextlib.nullcontext():
            train_run(fold_config, paths, deadline)


def train_run(config: TrainConfig, paths: RunPaths, deadline: Optional[float]) -> None:
    run = config.run
    if run.resume and paths.out_of_fold.is_dir():
        print(f"fold {run.fold} is done: {paths.out_of_fold}")
    elif run.resume and run.folds and run_finished(paths):
        write_out_of_fold(paths, config)
    else:
        if run.folds:
            print(f"fold {run.fold} of {run.folds}, into {paths.root}")
        run_training(config, paths, deadline)
