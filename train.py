"""Train a Unet on data prepared by data_preparation.py.

    python train.py --data_root DATA --work_dir WORK --device 0 1 --batch_size 32 --epochs 100 \
        --mixed_precision True --log tensorboard

Writes to WORK/tensorflow/: weights/best-weight_<backbone>.h5 (best --monitor: highest val IoU) and
weights/last-weight_<backbone>.h5, logs/history.csv, logs/tensorboard/<time>/, run_config.json,
and backup/ while a run is under way, from which --resume continues it. checkpoints.py keeps these
files whole when the run is killed; SIGTERM or Ctrl-C stops it after the current step.

With TF_CONFIG describing a cluster (or --cluster slurm under srun), the same command on every machine
trains them together with MultiWorkerMirroredStrategy; only the chief writes WORK.
"""

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shlex
import shutil
import sys
import tempfile
import time
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Optional, Sequence

import keras2  # noqa: F401

import cv2
import numpy as np
import pandas as pd
import tensorflow as tf

import checkpoints
import dataloader
from checkpoints import best_epoch, monitor_mode
from data_preparation import split_csv
from model import check_encoder, create_model
from pictures import comparison_rows, plot_history, save_picture
from sliding_window import predict_scaled, window_predictor
from utils import MIN_STEPS_PER_EPOCH, UserError, exit_on_user_error, train_args, write_text

PACKAGES = [
    "tensorflow",
    "tf-keras",  # Keras 2 on TensorFlow 2.16 and later; not installed with 2.15
    "segmentation-models",
    "tensorflow-addons",
    "albumentations",
    "numpy",
    "opencv-python-headless",
]


def cluster_resolver(cluster: str) -> Optional[tf.distribute.cluster_resolver.ClusterResolver]:
    """The machines of a multi-machine run, from TF_CONFIG or from Slurm; None for one machine."""
    if cluster == "slurm":
        if "SLURM_PROCID" not in os.environ:
            raise UserError("--cluster slurm: SLURM_PROCID is not set; start train.py with srun inside a Slurm job")
        # --device chooses each task's GPUs; the resolver's GPU counts only lay out one port per task on a node
        resolver = tf.distribute.cluster_resolver.SlurmClusterResolver(
            gpus_per_node=1024, gpus_per_task=1, auto_set_gpu=False
        )
    else:
        try:
            resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
            spec = resolver.cluster_spec().as_dict()
        except ValueError as error:
            raise UserError(f"TF_CONFIG is not a valid cluster description: {error}") from error
        if sum(len(tasks) for tasks in spec.values()) <= 1:
            return None
    spec = resolver.cluster_spec().as_dict()
    if set(spec) - {"chief", "worker"} or resolver.task_type not in spec:
        raise UserError(
            f"the cluster must list chief and worker tasks only, and this task ({resolver.task_type}) among them: "
            f"{sorted(spec)}"
        )
    return resolver


def is_chief(resolver: Optional[tf.distribute.cluster_resolver.ClusterResolver]) -> bool:
    """The task that writes the run's files: the chief, or worker 0 in a cluster without one."""
    if resolver is None:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "chief" or (not has_chief and resolver.task_id == 0)


def choose_devices(device: Optional[list], cpu_devices: int) -> bool:
    """Make exactly the chosen GPUs visible (or none); True when training on GPUs. Only configures
    devices: MultiWorkerMirroredStrategy must come before TensorFlow starts using them."""
    os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # number GPUs as nvidia-smi does, not fastest first
    gpus = tf.config.list_physical_devices("GPU")
    device = device or list(range(len(gpus))) or ["cpu"]
    if device == ["cpu"]:
        if gpus:
            tf.config.set_visible_devices([], "GPU")
        if cpu_devices > 1:
            cpu = tf.config.list_physical_devices("CPU")[0]
            tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_devices)
        return False
    for index in device:
        if index >= len(gpus):
            there = f"GPUs 0 to {len(gpus) - 1}" if gpus else "no GPU (train on the CPU with --device cpu)"
            raise UserError(f"--device {index}: no such GPU; this machine has {there}")
    chosen = [gpus[i] for i in device]
    tf.config.set_visible_devices(chosen, "GPU")
    for gpu in chosen:
        tf.config.experimental.set_memory_growth(gpu, True)
    return True


def make_strategy(
    device: Optional[list],
    cpu_devices: int,
    resolver: Optional[tf.distribute.cluster_resolver.ClusterResolver] = None,
) -> tf.distribute.Strategy:
    """A strategy over the chosen devices: MultiWorkerMirroredStrategy in a cluster (it waits there until
    every worker has started), MirroredStrategy over several devices of one machine."""
    on_gpus = choose_devices(device, cpu_devices)
    if resolver is not None:
        if cpu_devices > 1:
            raise UserError("--cpu_devices above 1 works on one machine only, not in a cluster")
        collectives = tf.distribute.experimental.CommunicationImplementation
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=collectives.NCCL if on_gpus else collectives.RING
        )
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver, communication_options=options)
    names = [d.name for d in tf.config.list_logical_devices("GPU" if on_gpus else "CPU")]
    if len(names) == 1:  # the default strategy, on the one device left visible; BackupAndRestore needs it
        return tf.distribute.get_strategy()
    return tf.distribute.MirroredStrategy(names)


def work_paths(work_dir: Path, backbone: str) -> dict:
    root = work_dir / "tensorflow"
    return {
        "root": root,
        "best": root / "weights" / f"best-weight_{backbone}.h5",
        "last": root / "weights" / f"last-weight_{backbone}.h5",
        "history": root / "logs" / "history.csv",
        "pictures": root / "logs" / "validation_pictures.png",
        "curves": root / "logs" / "training_curves.png",
        "tensorboard": root / "logs" / "tensorboard" / datetime.now().strftime("%Y%m%d-%H%M%S"),
        "backup": root / "backup",
        "pending": root / "pending",
        "config": root / "run_config.json",
    }


def check_work_dir(paths: dict, args: argparse.Namespace) -> Optional[dict]:
    """Never lose a run: resume one that was interrupted, or replace one only when asked. Returns the
    run config of the run that --resume continues."""
    if not args.resume:
        if paths["config"].exists() and not args.overwrite:
            raise UserError(
                f"{paths['root']} holds an earlier run: --resume continues it if it was interrupted, "
                "--overwrite replaces it, or choose another --work_dir"
            )
        return None
    if not paths["config"].exists():
        raise UserError(f"nothing to resume in {paths['root']}: no run there")
    finished = len(checkpoints.read_history(paths["history"]))
    if checkpoints.saved_position(paths["backup"]) is None and finished:
        raise UserError(
            f"nothing to resume in {paths['root']}: its run finished after {finished} epochs (a finished run "
            "leaves no backup); --overwrite replaces it"
        )
    config = json.loads(paths["config"].read_text())
    saved = config["args"]
    # a run from before a setting existed took its default
    changed = [
        k
        for k in ("backbone", "image_size", "mixed_precision", "patch_size", "scale")
        if saved.get(k, getattr(args, k)) != getattr(args, k)
    ]
    if changed:
        raise UserError(f"--resume with other {', '.join(changed)} than the run in {paths['root']}: {saved}")
    return config


def prepare_work_dir(paths: dict, resume: bool) -> None:
    """Drop the backup, pending files and history of a run that is being replaced, so that nothing of
    it is resumed into this one, and make the folders for weights and logs."""
    try:
        if not resume:
            shutil.rmtree(paths["backup"], ignore_errors=True)
            shutil.rmtree(paths["pending"], ignore_errors=True)
            paths["history"].unlink(missing_ok=True)
        for folder in ("best", "history"):
            paths[folder].parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserError(f"--work_dir: cannot write into {paths['root']}: {error.strerror or error}") from error


def worker_paths(paths: dict, task_id: int) -> dict:
    """A worker other than the chief writes what the chief writes, but into a temporary folder of its
    own, removed at the end. Only the backup is the chief's: every worker restores from it. The chief's
    history is copied in, so that every worker makes the same choices (such as saving best weights,
    in which all workers take part)."""
    temp = Path(tempfile.mkdtemp(prefix=f"train-worker{task_id}-"))
    moved = {key: temp / path.relative_to(paths["root"]) for key, path in paths.items() if key != "backup"}
    for folder in ("best", "history"):
        moved[folder].parent.mkdir(parents=True, exist_ok=True)
    if paths["history"].exists():
        shutil.copyfile(paths["history"], moved["history"])
    return {**moved, "backup": paths["backup"]}


def installed_versions() -> dict:
    """The version of each package that decides a run's results; None for one not installed (such as
    opencv-python-headless where opencv-python stands in for it)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return versions


def save_run_config(
    paths: dict, args: argparse.Namespace, strategy: tf.distribute.Strategy, samples: dict, steps_per_epoch: int
) -> None:
    config = {
        "args": vars(args),
        "replicas": strategy.num_replicas_in_sync,
        "samples": samples,
        "steps_per_epoch": steps_per_epoch,
        "python": platform.python_version(),
        "versions": installed_versions(),
        "started": datetime.now().isoformat(timespec="seconds"),
    }
    write_text(paths["config"], json.dumps(config, indent=2) + "\n")


def validation_pictures(
    model: tf.keras.Model, valid: tf.data.Dataset, paths: dict, tensorboard: bool, count: int = 4
) -> tf.keras.callbacks.Callback:
    """Each epoch, draw `count` validation images with their true and predicted masks, side by side,
    into WORK/tensorflow/logs/validation_pictures.png and, with tensorboard, into its logs."""
    images, masks = next(iter(valid.unbatch().batch(count)))
    images = images.numpy().astype(np.float32)
    photos = (images * 255).round().astype(np.uint8)
    true = masks.numpy()[..., 0] > 0.5
    writer = tf.summary.create_file_writer(str(paths["tensorboard"] / "validation_pictures")) if tensorboard else None

    def draw(epoch: int, logs: dict) -> None:
        predicted = model.predict(images, verbose=0)[..., 0] > 0.5
        rows = comparison_rows(zip(photos, true, predicted), side=photos.shape[1])
        save_picture(paths["pictures"], np.vstack(rows))
        if writer:
            with writer.as_default():
                tf.summary.image("photo | true mask | predicted mask", rows, step=epoch, max_outputs=count)

    return tf.keras.callbacks.LambdaCallback(on_epoch_end=draw)


def sliding_window_validation(
    model: tf.keras.Model, table: pd.DataFrame, patches: dataloader.Patches, batch_size: int, tta: Optional[str]
) -> tf.keras.callbacks.Callback:
    """Each epoch, val_iou and val_f1 of the whole validation images, predicted as predict.py does with a patch
    size (sliding windows on the image rescaled by patches.scale) and scored at each image's own resolution,
    from the pixels of the whole set."""
    predict_batch = window_predictor(model)

    def validate(epoch: int, logs: dict) -> None:
        counts = np.zeros(3)  # true positives, false positives, false negatives
        for image_path, mask_path in zip(table.image, table["mask"]):
            photo = cv2.cvtColor(cv2.imread(image_path), cv2.COLOR_BGR2RGB)
            truth = cv2.imread(mask_path, cv2.IMREAD_GRAYSCALE) > 127
            probabilities = predict_scaled(predict_batch, photo, patches.scale, patches.size, 0.5, batch_size, tta)
            predicted = probabilities > 0.5
            counts += [(predicted & truth).sum(), (predicted & ~truth).sum(), (~predicted & truth).sum()]
        true_positives, false_positives, false_negatives = counts
        union = true_positives + false_positives + false_negatives  # 0 for 0 as Keras' BinaryIoU
        logs["val_iou"] = true_positives / union if union else 0.0
        logs["val_f1"] = 2 * true_positives / (union + true_positives) if union else 0.0

    return tf.keras.callbacks.LambdaCallback(on_epoch_end=validate)


def check_wandb_login() -> None:
    """An online wandb run without a login would stop at a prompt, or fail after the data is loaded."""
    from wandb.apis import InternalApi

    if os.environ.get("WANDB_MODE", "online") not in ("offline", "dryrun", "disabled") and not InternalApi().api_key:
        raise UserError("--log wandb: not logged in to Weights & Biases; run `wandb login`, or set WANDB_MODE=offline")


def wandb_callbacks(args: argparse.Namespace, paths: dict) -> list:
    import wandb
    from wandb.integration.keras import WandbMetricsLogger

    wandb.init(project=args.wandb_project, config=vars(args), dir=str(paths["history"].parent))
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
    args: argparse.Namespace,
    paths: dict,
    model: tf.keras.Model,
    valid: tf.data.Dataset,
    seconds: list,
    steps: int,
    chief: bool,
) -> list:
    """The same callbacks on every worker of a cluster (several of them take part in collective reads of
    the weights), but a Weights & Biases run for the chief only."""
    mode = monitor_mode(args.monitor)
    callbacks = []
    if args.patch_size:  # first: the callbacks after it read the val_iou it adds
        table = dataloader.read_samples(split_csv(Path(args.data_root), "valid"))
        tta = None if args.tta == "none" else args.tta
        callbacks.append(sliding_window_validation(model, table, dataloader.patches_of(args), args.batch_size, tta))
    callbacks += [
        checkpoints.CommittedEpochs(paths, args.monitor, steps),
        epoch_timer(seconds),
        validation_pictures(model, valid, paths, tensorboard=args.log == "tensorboard"),
    ]
    if args.lr_schedule == "plateau":
        callbacks.append(tf.keras.callbacks.ReduceLROnPlateau(args.monitor, factor=0.5, patience=5, mode=mode))
    if args.patience:
        callbacks.append(tf.keras.callbacks.EarlyStopping(args.monitor, patience=args.patience, mode=mode))
    if args.log == "tensorboard":
        callbacks.append(tf.keras.callbacks.TensorBoard(str(paths["tensorboard"]), write_graph=False, profile_batch=0))
    if args.log == "wandb" and chief:
        callbacks += wandb_callbacks(args, paths)
    return callbacks


def print_summary(paths: dict, args: argparse.Namespace, seconds: list, steps: int) -> None:
    history = pd.read_csv(paths["history"])
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
    print(f"weights: {paths['best']} (best), {paths['last']} (last)")
    print(f"history: {paths['history']}; run config: {paths['config']}")
    plot_history(paths["history"], paths["curves"])
    print(f"pictures: {paths['pictures']} (validation images, true and predicted masks), {paths['curves']}")


def build_datasets(
    args: argparse.Namespace, strategy: tf.distribute.Strategy
) -> tuple[tf.distribute.DistributedDataset, int, tf.data.Dataset, int]:
    """(training batches, training samples, validation batches, validation samples). Each worker builds
    its own training pipeline over its own shard of the samples, in batches of --batch_size divided by
    the replicas of all workers; validation is one dataset that each worker scores a part of."""
    n_train = []

    def worker_batches(context: tf.distribute.InputContext) -> tf.data.Dataset:
        shard = (context.num_input_pipelines, context.input_pipeline_id)
        batches, n = dataloader.training_batches(args, context.get_per_replica_batch_size(args.batch_size), shard)
        n_train.append(n)
        return batches

    train = strategy.distribute_datasets_from_function(worker_batches)
    valid, n_valid = dataloader.build_dataset(
        [split_csv(Path(args.data_root), "valid")], args.image_size, args.batch_size, training=False,
        resize_first=args.resize_first, replicas=strategy.num_replicas_in_sync,
        cache_format=args.cache_format, patches=dataloader.patches_of(args),
    )  # fmt: skip
    return train, n_train[0], valid, n_valid


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
            + ("" if args.mixed_precision else ", or train with --mixed_precision True on a GPU")
            + "; finished epochs are kept, --resume continues"
        ) from error
    except tf.errors.OpError as error:
        if not args.jit_compile or isinstance(error, tf.errors.UnavailableError):
            raise
        raise UserError(
            f"--jit_compile: XLA could not compile this model on this device ({type(error).__name__}); train without it"
        ) from error


def shared_seed(strategy: tf.distribute.Strategy, seed: int) -> int:
    """One seed for all the workers of a cluster: the sum of the seeds they drew."""

    @tf.function  # run eagerly, a collective warns of its overhead
    def add_up() -> tf.Tensor:
        drawn = strategy.run(lambda: tf.constant(float(seed), tf.float64))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, drawn, axis=None)

    return int(add_up().numpy()) % 2**31


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


def cluster_line(strategy: tf.distribute.Strategy, chief: bool) -> str:
    """'2 workers x 4 devices = 8 replicas; this is worker 1, the chief is worker 0', or '' on one machine."""
    resolver = strategy.cluster_resolver
    if resolver is None:
        return ""
    spec = resolver.cluster_spec().as_dict()
    workers = sum(len(tasks) for tasks in spec.values())
    replicas = strategy.num_replicas_in_sync
    the_chief = "chief 0" if "chief" in spec else "worker 0"
    this = f"{resolver.task_type} {resolver.task_id}"
    return f"cluster of {workers} workers x {replicas // workers} device(s) = {replicas} replicas; this is {this}" + (
        ", the chief: it writes the run's files" if chief else f"; {the_chief} is the chief and writes the files"
    )


def weights_checksum(model: tf.keras.Model) -> str:
    """A digest of the weights: the same on every worker of a cluster that trained in step."""
    digest = hashlib.sha256()
    for array in model.get_weights():  # on every worker: reading the BatchNorm statistics is collective
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def train_model(
    args: argparse.Namespace, paths: dict, strategy: tf.distribute.Strategy, resumed: Optional[dict], chief: bool
) -> None:
    """Build the data and the model on the strategy's devices, train, and summarise."""
    replicas = strategy.num_replicas_in_sync
    if args.batch_size % replicas:
        raise UserError(f"--batch_size {args.batch_size} does not split evenly over {replicas} devices")
    if args.mixed_precision:
        tf.keras.mixed_precision.set_global_policy("mixed_float16")
        if not tf.config.list_logical_devices("GPU"):
            print(
                "warning: mixed precision on the CPU is slow; --mixed_precision False is faster there", file=sys.stderr
            )
    set_seed(args, resumed, strategy)
    train_batches, n_train, valid_batches, n_valid = build_datasets(args, strategy)
    if resumed:  # the backup counts steps of the interrupted run's epochs
        steps = resumed["steps_per_epoch"]
    else:
        steps = args.steps_per_epoch or max(dataloader.steps_per_epoch(n_train, args.batch_size), MIN_STEPS_PER_EPOCH)
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
        )
    save_run_config(paths, args, strategy, {"train": n_train, "valid": n_valid}, steps)
    in_cluster = strategy.cluster_resolver is not None
    if in_cluster:
        print(cluster_line(strategy, chief))
    print(
        f"training on {n_train} pairs, {args.epochs} epochs of {steps} steps of {args.batch_size} = {replicas} "
        f"device(s) x {args.batch_size // replicas}, {args.optimizer} at {args.learning_rate:g} ({args.lr_schedule}), "
        f"seed {args.seed}; validating on {n_valid}"
    )
    if args.batch_size > n_train:
        print(f"note: --batch_size {args.batch_size} is more than the {n_train} training pairs: batches repeat pairs")

    seconds = []
    callbacks = make_callbacks(args, paths, model, valid_batches, seconds, steps, chief)
    fit(model, train_batches, valid_batches, steps, callbacks, args, in_cluster)
    if in_cluster:
        print(f"{strategy.cluster_resolver.task_type} {strategy.cluster_resolver.task_id} finished; weights checksum "
              f"{weights_checksum(model)}")  # fmt: skip
    if not chief:
        return
    if args.log == "wandb":
        import wandb

        wandb.finish()
    if args.log == "tensorboard":
        print(f"tensorboard: python -m tensorboard.main --logdir {paths['tensorboard'].parent}")
    print_summary(paths, args, seconds, steps)


def run_training(args: argparse.Namespace, paths: dict) -> None:
    """Check everything cheap first, ready the work folder, join the cluster if there is one, and train.
    In a cluster the chief readies the work folder before the others can go on, since making the
    strategy waits for every worker."""
    resolver = cluster_resolver(args.cluster)
    chief = is_chief(resolver)
    resumed = check_work_dir(paths, args)
    check_encoder(args.backbone, args.encoder_weights)
    for split in ("train", "valid"):  # the cheap checks of the data, before anything slow
        dataloader.read_samples(split_csv(Path(args.data_root), split))
    if args.log == "wandb" and chief:
        check_wandb_login()
    if chief:
        prepare_work_dir(paths, resumed is not None)
        if resumed:
            finished = checkpoints.recover(paths, resumed["steps_per_epoch"])
            print(f"resuming {paths['root']} after {finished} finished epochs" if finished else
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
            shutil.rmtree(paths["root"], ignore_errors=True)


def resume_command() -> str:
    argv = [a for a in sys.argv if a not in ("--resume", "--overwrite")]
    return " ".join(shlex.quote(a) for a in ["python", *argv, "--resume"])


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = train_args(argv)
    paths = work_paths(Path(args.work_dir), args.backbone)
    try:
        with exit_on_user_error():
            run_training(args, paths)
    except checkpoints.StopRequested as stop:
        print(f"{stop}; continue with: {resume_command()}", file=sys.stderr)
        sys.exit(128 + stop.signum)
    except KeyboardInterrupt:
        print(f"interrupted; continue with: {resume_command()}", file=sys.stderr)
        sys.exit(130)
    except tf.errors.UnavailableError:
        print(
            "error: lost contact with another worker of the cluster, which stopped or cannot be reached; the "
            f"chief's finished epochs are kept: start every worker again with: {resume_command()}",
            file=sys.stderr,
        )
        sys.exit(2)


if __name__ == "__main__":
    main()
