"""predict.py's flags and what they ask for: training curves, the cross-validation report, the models of --weights
with their post-processing, exports, and predictions."""

import argparse
from pathlib import Path
from typing import Optional, Sequence

from segtf.cli.flags import QUIET_START, add_tta, fraction_below_one, image_size, positive_int, scale_factor
from segtf.errors import UserError, exit_on_user_error
from segtf.evaluation.cross_validation import POSTPROCESSING_FILE, cross_validation_report, read_fold_config
from segtf.evaluation.pictures import plot_history
from segtf.evaluation.prediction import folder_inputs, predict_and_score, split_inputs
from segtf.export.checked import export_onnx, export_tflite_int8
from segtf.export.convert import export_savedmodel, export_tflite
from segtf.inference.postprocessing import NO_POSTPROCESSING, read_postprocessing
from segtf.inference.predictor import Member, input_side, load_member, trained_config, weights_files
from segtf.inference.sliding_window import DEFAULT_OVERLAP
from segtf.modeling.losses import LOSS_TITLES
from segtf.text import counted


def add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("the models and how they predict")
    group.add_argument(
        "--weights",
        nargs="+",
        type=Path,
        metavar="W",
        help="an .h5 file written by train.py, or a work folder (its best weights, or those of each of its folds); "
        "several: the ensemble, which averages their probabilities",
    )
    group.add_argument(
        "--image_size", type=image_size, help="model input side in pixels (default: from run_config.json beside W)"
    )
    group.add_argument("--backbone", help="the model's backbone (default: from run_config.json beside W)")
    group.add_argument(
        "--batch_size", type=positive_int, default=8, help="images, or windows, per batch (default: %(default)s)"
    )
    group.add_argument(
        "--patch_size",
        type=image_size,
        metavar="P",
        help="predict each image at its own resolution by P x P pixel windows (a multiple of 32) blended with "
        "Gaussian weights (default: the patch_size in run_config.json beside W; without one, off: each image is "
        "resized to image_size)",
    )
    group.add_argument(
        "--scale",
        type=scale_factor,
        help="with a patch size: rescale each image by this factor before the windows, and the prediction back "
        "(default: the scale in run_config.json beside W, else 1)",
    )
    group.add_argument(
        "--overlap",
        type=fraction_below_one,
        default=DEFAULT_OVERLAP,
        metavar="F",
        help="with a patch size: the share of a window's side that the next window overlaps, at least 0 and "
        "below 1 (default: %(default)s)",
    )
    add_tta(group, "")
    group.add_argument(
        "--postprocessing",
        default="auto",
        metavar="auto|none|JSON",
        help=f"how probabilities become masks: auto takes {POSTPROCESSING_FILE} of a work folder in --weights "
        "(written by --cv), none only the threshold (or the most probable class), or a file (default: %(default)s)",
    )
    group.add_argument(
        "--threshold",
        type=float,
        help="probability above which a pixel is mask (default: the post-processing's, else 0.5)",
    )


def add_task_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("what to do")
    group.add_argument("--input", metavar="PATH", help="an image, or a folder searched recursively")
    group.add_argument("--output", required=True, metavar="OUT", help="folder for everything this writes")
    group.add_argument(
        "--masks", metavar="DIR", help="true masks for --input, paired by relative path and name stem: score them"
    )
    group.add_argument(
        "--data_root",
        metavar="DATA",
        help="score a prepared split of DATA instead of --input; with --cv, the folds' DATA (default: theirs)",
    )
    group.add_argument(
        "--split", default="valid", choices=["train", "valid"], help="with --data_root (default: %(default)s)"
    )
    group.add_argument(
        "--comparison",
        metavar="PNG",
        help="when scoring: picture of photos with true and predicted masks (default: OUT/comparison.png)",
    )
    group.add_argument(
        "--export",
        nargs="+",
        default=[],
        choices=["savedmodel", "tflite", "tflite_int8", "onnx"],
        help="savedmodel: OUT/savedmodel (uint8 images of any size in; probabilities at that size and the "
        "post-processed mask out; of an ensemble too). The others hold one model of image_size (or a patch run's "
        "window): tflite, OUT/model_float16.tflite (a float [0, 1] image in); tflite_int8, OUT/model_int8.tflite, "
        "full-integer (uint8 image in, uint8 probabilities out), calibrated on the run's training images and checked "
        "on its valid images (the run's data, or --data_root's); onnx, OUT/model.onnx (float [0, 1] images in; "
        "Python 3.10 to 3.13), checked with ONNX Runtime",
    )
    group.add_argument(
        "--calibration_images",
        type=positive_int,
        default=200,
        metavar="N",
        help="with --export tflite_int8: augmented training images to calibrate on (default: %(default)s)",
    )
    group.add_argument(
        "--cv",
        metavar="WORK",
        type=Path,
        help="the cross-validation report of WORK's folds (train.py --folds) into OUT, and the post-processing "
        f"chosen on their out-of-fold predictions into WORK/{POSTPROCESSING_FILE}",
    )
    group.add_argument(
        "--history", metavar="CSV", help="plot a run's history.csv (loss, IoU, F1) into OUT/training_curves.png"
    )


def predict_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Masks for new images, scores against true masks, model export, the cross-validation report "
        "and training curves. Writes into OUT without deleting anything there.",
        epilog=QUIET_START,
    )
    add_model_args(parser)
    add_task_args(parser)
    args = parser.parse_args(argv)
    if not (args.input or args.data_root or args.export or args.history or args.cv):
        parser.error("nothing to do: give --input, --data_root, --export, --cv or --history")
    if (args.input or (args.data_root and not args.cv) or args.export) and not args.weights:
        parser.error("--input, --data_root and --export need --weights")
    if args.cv and (args.weights or args.input or args.export):
        parser.error("--cv reports on the out-of-fold predictions of WORK: give it without --weights")
    if args.input and args.data_root:
        parser.error("give --input (with --masks to score) or --data_root, not both")
    if args.threshold is not None and not 0 < args.threshold < 1:
        parser.error("--threshold must be between 0 and 1")
    if args.masks and not args.input:
        parser.error("--masks scores the images of --input: give both")
    return args


def postprocessing_settings(args: argparse.Namespace, names: Optional[list[str]]) -> dict:
    """The post-processing of --postprocessing, with --threshold over its threshold; UserError when it was chosen for
    other classes than the models' (names, or None for one class)."""
    if args.postprocessing == "none":
        files = []
    elif args.postprocessing == "auto":
        files = [w / POSTPROCESSING_FILE for w in args.weights if (w / POSTPROCESSING_FILE).is_file()]
    else:
        files = [Path(args.postprocessing)]
    if len(files) > 1:
        raise UserError(f"--weights: several work folders with a {POSTPROCESSING_FILE}: choose with --postprocessing")
    settings = dict(NO_POSTPROCESSING)
    if files:
        settings = read_postprocessing(files[0], names)
        print(f"post-processing of {files[0]}")
    if args.threshold is not None:
        settings["threshold"] = args.threshold
    return settings


def load_members(args: argparse.Namespace) -> list[Member]:
    """The models of --weights, which must all have the same classes. Several classes take no --threshold, an
    ensemble no export of one model: UserError."""
    keys = ("backbone", "image_size", "patch_size", "scale", "overlap", "batch_size")
    files = weights_files(args.weights)
    single = [kind for kind in args.export if kind != "savedmodel"]
    if len(files) > 1 and single:
        raise UserError(f"--export {' '.join(single)} holds one model: export an ensemble as savedmodel")
    if len(files) > 1:
        print(f"ensemble of {counted(len(files), 'model')}: " + ", ".join(str(f) for f in files))
    members = [load_member(f, {k: getattr(args, k) for k in keys}) for f in files]
    names = members[0].class_names
    if any(m.class_names != names for m in members):
        raise UserError("--weights: the models have different classes, so they cannot make one ensemble")
    if names and args.threshold is not None:
        raise UserError(f"--threshold is for one class; these models have {len(names)}, and take the most probable")
    return members


def export_models(members: Sequence[Member], settings: dict, args: argparse.Namespace, out: Path) -> None:
    """The exports --export asks for into out (all but savedmodel of one model: load_members refuses an ensemble). A
    patch run's TFLite and ONNX models take its window, which the app slides."""
    if "savedmodel" in args.export:
        export_savedmodel(members, out / "savedmodel", settings)
    single = [kind for kind in args.export if kind != "savedmodel"]
    if not single:
        return
    member, weights, data_root = members[0], weights_files(args.weights)[0], args.data_root and Path(args.data_root)
    if "tflite" in single:
        export_tflite(member.model, input_side(member), out / "model_float16.tflite")
    if "tflite_int8" in single:
        threshold = settings["threshold"] if not member.class_names else 0.5
        export_tflite_int8(member, weights, data_root, args.calibration_images, threshold, out / "model_int8.tflite")
    if "onnx" in single:
        export_onnx(member, weights, data_root, out / "model.onnx")


def use_model(args: argparse.Namespace) -> None:
    """Training curves, the cross-validation report, exports and predictions, as the flags ask."""
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    if args.history:
        if not Path(args.history).is_file():
            raise UserError(f"--history {args.history}: no such file")
        trained = trained_config(Path(args.history))  # run_config.json a folder up, when the run wrote it
        loss = f"loss ({LOSS_TITLES[trained.model.loss]})" if trained else "loss"
        plot_history(Path(args.history), out / "training_curves.png", loss)
        print(f"training curves in {out / 'training_curves.png'}")
    if args.cv:
        cross_validation_report(args.cv, Path(args.data_root or read_fold_config(args.cv).loader.data_root), out)
    if not args.weights:
        return
    members = load_members(args)
    settings = postprocessing_settings(args, members[0].class_names)
    export_models(members, settings, args, out)
    if args.input or args.data_root:
        inputs = (
            split_inputs(Path(args.data_root), args.split)
            if args.data_root
            else folder_inputs(Path(args.input), args.masks and Path(args.masks), out)
        )
        comparison = Path(args.comparison or out / "comparison.png")
        predict_and_score(members, settings, inputs, out, args.batch_size, args.tta, comparison)


def main(argv: Optional[Sequence[str]] = None) -> None:
    with exit_on_user_error():
        use_model(predict_args(argv))


if __name__ == "__main__":
    main()
