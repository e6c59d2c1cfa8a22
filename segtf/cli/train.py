"""train.py's flags, checked, and its main(): a stop by signal or a lost worker said in one line with the
command that resumes the run."""

import argparse
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Collection, Optional, Sequence

from segtf.cli.flags import (
    OPTIMIZER_DEFAULTS,
    QUIET_START,
    above_zero,
    add_bool,
    add_data_root,
    add_loader_args,
    add_tta,
    check_loader_args,
    config_part,
    defaults_by_optimizer,
    device_list,
    fraction_below_one,
    non_negative_float,
    optimizer_settings,
    positive_int,
    share,
)
from segtf.config import ModelConfig, OptimizationConfig, RunConfig, SavedRun, TrainConfig, read_run_config
from segtf.dataset.classes import class_count_of, read_class_table
from segtf.dataset.fingerprint import read_fingerprint
from segtf.errors import exit_on_user_error
from segtf.modeling.losses import LOSSES
from segtf.modeling.network import ARCHITECTURES
from segtf.training import checkpoints
from segtf.training.distribute import devices_of
from segtf.training.plan import PLANNED, make_plan
from segtf.training.run import MIN_STEPS_PER_EPOCH, train_runs

import tensorflow as tf


def add_device_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("devices: where the run trains")
    group.add_argument(
        "--device",
        type=device_list,
        nargs="+",
        help="GPU indices to train on, as nvidia-smi numbers them (several: MirroredStrategy over them), "
        "or cpu (default: every visible GPU, or the CPU where there is none)",
    )
    group.add_argument(
        "--cpu_devices",
        type=positive_int,
        default=RunConfig.cpu_devices,
        metavar="N",
        help="with --device cpu: split the CPU into N logical devices and train on them with MirroredStrategy, "
        "to check multi-device training without GPUs (default: %(default)s)",
    )
    group.add_argument(
        "--cluster",
        default=RunConfig.cluster,
        choices=["tf_config", "slurm"],
        help="how the machines of a multi-machine run find each other: tf_config reads the TF_CONFIG environment "
        "variable (one machine when it is not set), slurm the variables srun sets; each machine then trains on "
        "its --device with MultiWorkerMirroredStrategy (default: %(default)s)",
    )


def add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--classes",
        type=positive_int,
        metavar="K",
        help="classes including the background, as data_preparation.py --classes prepared DATA: 1, a sigmoid for "
        "binary masks; 2 or more, a softmax over them (default: DATA's, from DATA/csv_file/classes.json)",
    )
    group.add_argument(
        "--arch",
        default=ModelConfig.arch,
        choices=list(ARCHITECTURES),
        help="decoder: segmentation_models' unet (skip connections at every scale), fpn (a feature pyramid, "
        "predicting at 1/4 scale) or linknet (a light Unet that adds instead of concatenating), or this project's "
        "unetplusplus (nested, densely connected skips) or deeplabv3plus (atrous pyramid pooling of the deepest "
        "features, a stride-4 skip) (default: %(default)s)",
    )
    group.add_argument(
        "--backbone",
        default=ModelConfig.backbone,
        help="encoder: any segmentation_models backbone, e.g. efficientnetb0-b7, resnet18-152, mobilenetv2 "
        "(default: %(default)s, or as --plan chooses)",
    )
    group.add_argument(
        "--encoder_weights",
        default=ModelConfig.encoder_weights,
        metavar="imagenet|none|PATH",
        help="encoder start: imagenet (downloaded, needs internet), none (from scratch), or a local .h5 file of "
        "the encoder's weights (default: %(default)s)",
    )
    group.add_argument(
        "--init_weights",
        metavar="H5",
        help="start from these weights of another run (best-weight_*.h5 or last-weight_*.h5 of the same --arch and "
        "--backbone), to fine-tune on new data; the optimizer starts afresh (default: --encoder_weights only)",
    )
    group.add_argument(
        "--bn_momentum",
        type=fraction_below_one,
        default=ModelConfig.bn_momentum,
        help="momentum of every BatchNormalization layer's moving statistics; Keras' 0.99 lags far behind the "
        "weights on small datasets, 0.9 (PyTorch's default) serves small and large ones (default: %(default)s)",
    )
    group.add_argument(
        "--loss",
        default=ModelConfig.loss,
        choices=LOSSES,
        help="dice_focal: Dice + focal; dice_bce: Dice + cross-entropy (nnU-Net's); bce; focal; lovasz: the Lovasz "
        "hinge, a surrogate of the IoU; tversky: weighs misses by --tversky_beta and false alarms by --tversky_alpha, "
        "for thin or small structures where recall matters (default: %(default)s)",
    )
    group.add_argument(
        "--tversky_alpha",
        type=share,
        default=ModelConfig.tversky_alpha,
        help="with --loss tversky (0 to 1; default: %(default)s)",
    )
    group.add_argument(
        "--tversky_beta",
        type=share,
        default=ModelConfig.tversky_beta,
        help="with --loss tversky (0 to 1; default: %(default)s)",
    )
    add_bool(
        group,
        "--jit_compile",
        ModelConfig.jit_compile,
        "compile the training step with XLA (meant for GPUs; on the CPU it failed to compile an efficientnetb0 Unet)",
    )


def add_optimizer_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("steps and optimizer")
    group.add_argument(
        "--epochs",
        type=positive_int,
        help=f"total epochs of the run (default: {OptimizationConfig.epochs}, or as --time_budget fits them; a "
        "resumed run: its own)",
    )
    group.add_argument(
        "--time_budget",
        type=positive_minutes,
        metavar="MINUTES",
        help="end the run within this many minutes of wall-clock time, validation and saving included: the speed "
        "of a step is measured first, then the epochs and their steps are fitted to the time and the learning-rate "
        "schedule to them; with --folds, the budget of all the folds together (default: off)",
    )
    group.add_argument(
        "--steps_per_epoch",
        type=positive_int,
        metavar="N",
        help=f"training steps between two validations (default: one pass over the training set, "
        f"but at least {MIN_STEPS_PER_EPOCH}; with --time_budget, as many as fill the time)",
    )
    group.add_argument(
        "--optimizer",
        default=OptimizationConfig.optimizer,
        choices=list(OPTIMIZER_DEFAULTS),
        help="adamw and adam (Keras), radam (RectifiedAdam, the original blog repository's optimizer, in this "
        "project's own implementation: optimizers.py), or sgd with Nesterov momentum 0.99 (default: %(default)s)",
    )
    group.add_argument(
        "--learning_rate",
        type=non_negative_float,
        help=f"peak learning rate (default: {defaults_by_optimizer('learning_rate')})",
    )
    group.add_argument(
        "--weight_decay",
        type=non_negative_float,
        help="decoupled weight decay: each step shrinks every weight by learning_rate x this; 0 turns it off "
        f"(default: {defaults_by_optimizer('weight_decay')})",
    )
    group.add_argument(
        "--lr_schedule",
        default=OptimizationConfig.lr_schedule,
        choices=["constant", "cosine", "plateau"],
        help="cosine: a linear warm-up over the first 5%% of the steps, then a cosine decay to 0 at the last; "
        "plateau: halve the learning rate when --monitor has not improved for 5 epochs (default: %(default)s)",
    )
    group.add_argument(
        "--ema",
        type=fraction_below_one,
        default=OptimizationConfig.ema,
        metavar="DECAY",
        help="keep an exponential moving average of the weights, each step average = DECAY x average + (1 - DECAY) x "
        "weights, and validate, save and export it; it averages about the last 1 / (1 - DECAY) steps, so choose "
        "DECAY with that well below the run's steps (0.99: 100 steps; 0.999: 1,000) (default: 0, off)",
    )
    group.add_argument(
        "--monitor",
        default=OptimizationConfig.monitor,
        choices=["val_iou", "val_loss"],
        help="what chooses the best weights, the plateau schedule and --patience: the validation set's IoU "
        "(from its pixels, highest) or the validation loss (lowest) (default: %(default)s)",
    )
    group.add_argument(
        "--patience",
        type=positive_int,
        metavar="N",
        help="stop when --monitor has not improved for N epochs (default: off)",
    )


def add_run_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("the run: logs, validation, resuming")
    group.add_argument(
        "--log",
        default=RunConfig.log,
        choices=["none", "tensorboard", "wandb"],
        help="where to log metrics: tensorboard writes WORK/tensorflow/logs/tensorboard/<time>/ with "
        "validation pictures, wandb honours WANDB_MODE=offline (default: %(default)s)",
    )
    group.add_argument(
        "--wandb_project", default=RunConfig.wandb_project, help="Weights & Biases project (default: %(default)s)"
    )
    add_tta(group, "with --patch_size, in validation: ")
    add_bool(group, "--resume", RunConfig.resume, "continue the interrupted run in WORK at the epoch where it stopped")
    add_bool(group, "--overwrite", RunConfig.overwrite, "replace an earlier run in WORK instead of stopping")


def add_fold_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("cross-validation: folds of the training pairs (valid.csv stays untouched)")
    group.add_argument(
        "--folds",
        type=positive_int,
        metavar="N",
        help="split the training pairs into N folds (DATA/csv_file/folds<N>.csv) and train one model a fold, "
        "validated on its fold, into WORK/fold_<K>/; then predict.py --cv WORK reports (default: off)",
    )
    group.add_argument(
        "--fold",
        type=fold_choice,
        default=RunConfig.fold,
        metavar="K|all",
        help="with --folds: train fold K (0 to N-1), or every fold one after the other; several folds at once: "
        "one command a fold, each on its own --device (default: %(default)s)",
    )


def train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Train a Unet on data prepared by data_preparation.py; weights, history and logs go to "
        "WORK/tensorflow/.",
        epilog=QUIET_START,
    )
    add_data_root(parser)
    parser.add_argument(
        "--work_dir", default=RunConfig.work_dir, metavar="WORK", help="output folder (default: %(default)s)"
    )
    parser.add_argument(
        "--plan",
        default=RunConfig.plan,
        choices=["auto", "none"],
        help=f"auto: the settings not given ({', '.join('--' + name for name in PLANNED)}) are chosen from the "
        "data's fingerprint (data_preparation.py writes it), the devices and --encoder_weights, each choice printed "
        "with its reason (docs/plan.md); none: their plain defaults (default: %(default)s)",
    )
    add_loader_args(parser)
    for add in (add_device_args, add_model_args, add_optimizer_args, add_run_args, add_fold_args):
        add(parser)
    return parser


def given_flags(argv: Optional[Sequence[str]] = None) -> frozenset[str]:
    """The settings the command line names, whatever their values: the plan leaves them as they are."""
    parser, absent = train_parser(), object()  # not a string: argparse would convert a string default by its type
    parser.set_defaults(**{name: absent for name in vars(parser.parse_args(argv))})
    return frozenset(name for name, value in vars(parser.parse_args(argv)).items() if value is not absent)


def train_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = train_parser()
    args = parser.parse_args(argv)
    if args.time_budget and args.epochs:
        parser.error("--epochs and --time_budget exclude each other: the budget sets the epochs")
    check_loader_args(parser, args)
    if args.device and "cpu" in args.device and len(args.device) > 1:
        parser.error("--device takes GPU indices or cpu, not both")
    if args.device and len(set(args.device)) < len(args.device):
        parser.error("--device lists a GPU twice")
    if args.cpu_devices > 1 and args.device != ["cpu"]:
        parser.error("--cpu_devices above 1 needs --device cpu")
    if args.resume and args.overwrite:
        parser.error("--resume and --overwrite exclude each other")
    if args.learning_rate == 0:
        parser.error("--learning_rate must be above 0")
    if args.tta != "none" and not args.patch_size:
        parser.error("--tta flip applies to the sliding-window validation of --patch_size")
    if args.patch_size and args.monitor == "val_loss":
        parser.error("--patch_size validates whole images by sliding windows, which give no loss: --monitor val_iou")
    if args.init_weights and not Path(args.init_weights).is_file():
        parser.error(f"--init_weights {args.init_weights}: no such file")
    if args.folds == 1:
        parser.error("--folds must be at least 2")
    if args.fold != "all" and not args.folds:
        parser.error("--fold needs --folds")
    if args.folds and args.fold != "all" and args.fold >= args.folds:
        parser.error(f"--fold must be from 0 to {args.folds - 1} with --folds {args.folds}, or all")
    return args


def train_config(args: argparse.Namespace, given: Optional[Collection[str]] = None) -> TrainConfig:
    """The configuration of the flags, with the optimizer's defaults and the data's classes where they are not
    given; given: the flags on the command line, the plan choosing the others (None: no plan)."""
    learning_rate, weight_decay = optimizer_settings(args.optimizer, args.learning_rate, args.weight_decay)
    table = read_class_table(Path(args.data_root))  # the data's, which check_classes holds --classes to
    class_names = list(table.names) if table else None
    values = {
        **vars(args),
        "epochs": args.epochs or OptimizationConfig.epochs,
        "learning_rate": learning_rate,
        "weight_decay": weight_decay,
        "class_names": class_names,
        "class_colors": [list(c) for c in table.colors] if table and table.colors else None,
        "ignore_color": list(table.ignore_color) if table and table.ignore_color else None,
        "classes": args.classes or class_count_of(class_names),
        "plan_reasons": (),
    }
    if given is not None:
        values = planned(values, given)
    return TrainConfig(**{name: config_part(part, values) for name, part in TrainConfig.part_types().items()})


def fold_choice(value: str):
    """--fold: a fold number from 0, or all."""
    if value != "all" and not value.isdigit():
        raise argparse.ArgumentTypeError(f"must be a fold number from 0, or all, got {value}")
    return value if value == "all" else int(value)


def resume_command() -> str:
    argv = [a for a in sys.argv if a not in ("--resume", "--overwrite")]
    return " ".join(shlex.quote(a) for a in ["python", *argv, "--resume"])


def saved_run(work_dir: Path) -> Optional[SavedRun]:
    """The run in work_dir, or its first fold's; None when there is none."""
    found = sorted(work_dir.glob("tensorflow/run_config.json")) + sorted(
        work_dir.glob("fold_*/tensorflow/run_config.json")
    )
    return read_run_config(found[0]) if found else None


def planned(values: dict, given: Collection[str]) -> dict:
    """values with the settings that the command line does not give taken from the run that --resume continues,
    or else from the plan of the data (--plan auto), whose reasons are printed."""
    resumed = saved_run(Path(values["work_dir"])) if values["resume"] else None
    if resumed:  # its plan, its length and its budget
        kept = set(PLANNED) | {"epochs", "steps_per_epoch", "time_budget", "plan", "plan_reasons"}
        return {**values, **{k: v for k, v in resumed.config.flat().items() if k in kept and k not in given}}
    if values["plan"] == "none":
        return values
    on_gpus = devices_of(values["device"]) != ["cpu"]
    plan = make_plan(read_fingerprint(Path(values["data_root"])), values, given, on_gpus)
    for reason in plan.reasons:
        print(f"plan: {reason}")
    return {**values, **plan.settings, "plan_reasons": plan.reasons}


def positive_minutes(value: str) -> float:
    """--time_budget: minutes above 0."""
    return above_zero(value, math.inf, "a finite number of minutes above 0")


def main(argv: Optional[Sequence[str]] = None) -> None:
    started = time.monotonic()
    args = train_args(argv)
    try:
        with exit_on_user_error():
            train_runs(train_config(args, given_flags(argv)), started)
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
