"""Latency and throughput of one run's model in every export format, on this CPU, with each file's size.

    python benchmarks/deploy_benchmark.py --weights WORK --output OUT [--data_root DATA]

Exports the run's best weights as predict.py does (into OUT): the SavedModel, TFLite float32, float16 and INT8, and
ONNX. Then times one image of the run's valid split at the model's input size: the latency is the median of --runs
calls with a batch of 1, after 3 warm-up calls; images/s is the median over --runs calls of a batch of 8 where the
format takes batches (Keras, the SavedModel, ONNX), else of 1. TFLite and ONNX Runtime run at 4 threads and at 1;
TensorFlow uses its own thread pools. Prints a Markdown table for docs/benchmarks.md.
"""

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from segtf.cli.flags import positive_int  # noqa: E402
from segtf.dataset.input_scaling import to_pixels  # noqa: E402
from segtf.export import checked as deploy  # noqa: E402
from segtf.export import convert as export  # noqa: E402
from segtf.files import write_bytes  # noqa: E402
from segtf.inference.postprocessing import NO_POSTPROCESSING  # noqa: E402
from segtf.inference.predictor import load_member, weights_files  # noqa: E402

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

BATCH = 8


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", required=True, type=Path, help="a run's .h5 file or work folder")
    parser.add_argument("--output", required=True, type=Path, help="folder for the exported models")
    parser.add_argument("--data_root", type=Path, help="the run's data (default: from its run_config.json)")
    parser.add_argument("--runs", type=positive_int, default=50, help="timed calls per case (default: %(default)s)")
    parser.add_argument("--calibration_images", type=positive_int, default=200, help="(default: %(default)s)")
    return parser.parse_args()


def median_seconds(call: Callable[[], object], runs: int) -> float:
    for _ in range(3):
        call()
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 1e6


def export_all(member, weights: Path, args: argparse.Namespace) -> dict[str, Path]:
    """Every format's file in args.output, by name."""
    out = args.output
    export.export_savedmodel([member], out / "savedmodel", NO_POSTPROCESSING)
    write_bytes(out / "model_float32.tflite", export.convert_tflite(member.model, member.size, "float32"))
    export.export_tflite(member.model, member.size, out / "model_float16.tflite")
    deploy.export_tflite_int8(member, weights, args.data_root, args.calibration_images, 0.5, out / "model_int8.tflite")
    deploy.export_onnx(member, weights, args.data_root, out / "model.onnx")
    return {"SavedModel": out / "savedmodel", **{f"TFLite {p}": out / f"model_{p}.tflite" for p in ("float32",
            "float16", "int8")}, "ONNX Runtime": out / "model.onnx"}  # fmt: skip


def callers(member, files: dict[str, Path]) -> list[tuple[str, str, Callable[[np.ndarray], object]]]:
    """(format, threads, a call on a batch of model inputs) for every case timed."""
    import onnxruntime

    serve = tf.saved_model.load(str(files["SavedModel"])).signatures["serving_default"]
    cases = [
        ("Keras", "TensorFlow's", member.model.predict_on_batch),
        ("SavedModel", "TensorFlow's", lambda x: serve(images=tf.constant(to_pixels(x)))),
    ]
    for precision in ("float32", "float16", "int8"):
        for threads in (4, 1):
            interpreter = deploy.tflite_interpreter(files[f"TFLite {precision}"], threads)
            cases.append((f"TFLite {precision}", str(threads), lambda x, i=interpreter: deploy.tflite_outputs(i, x)))
    for threads in (4, 1):
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.log_severity_level = threads, 3
        session = onnxruntime.InferenceSession(str(files["ONNX Runtime"]), options, providers=["CPUExecutionProvider"])
        cases.append(("ONNX Runtime", str(threads), lambda x, s=session: s.run(None, {"image": x})))
    return cases


def main() -> None:
    args = parse_args()
    weights = weights_files([args.weights])[0]
    member = load_member(weights, {})
    files = export_all(member, weights, args)
    image = deploy.run_images(weights, args.data_root, training=False, count=1)
    batch = np.repeat(image, BATCH, axis=0)
    machine = f"{platform.machine()}, {os.cpu_count()} cores"
    print(f"\n{member.model.name} at {member.size} px ({weights}); {machine}, TensorFlow {tf.__version__}, Python "
          f"{platform.python_version()}; {args.runs} runs a case")  # fmt: skip
    print("\n| format | threads | file MB | latency ms (batch 1, median) | images/s |")
    print("| --- | --- | --- | --- | --- |")
    weights_mb = f"{size_mb(weights):.1f} (.h5)"
    for name, threads, call in callers(member, files):
        latency = median_seconds(lambda c=call: c(image), args.runs)
        batched = not name.startswith("TFLite")
        per_image = median_seconds(lambda c=call: c(batch), args.runs) / BATCH if batched else latency
        mb = weights_mb if name == "Keras" else f"{size_mb(files[name]):.1f}"
        rate = f"{1 / per_image:.0f}" + ("" if batched else " (batch 1)")
        print(f"| {name} | {threads} | {mb} | {latency * 1000:.1f} | {rate} |")


if __name__ == "__main__":
    main()
