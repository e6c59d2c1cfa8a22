"""Each --arch on a few encoders: its parameters, beside segmentation_models.pytorch's for the same model where a
Python with it is given, and its speed on this machine (training and prediction, images a second).

    python benchmarks/decoders_benchmark.py --smp_python /tmp/smpvenv/bin/python

Parameters count everything the model saves, batch-norm statistics included (Keras counts them; smp's count adds its
running means and variances, its buffers). Speed: float32 on the CPU, --size px, --batch images a batch, random
images; --steps timed steps after 3 untimed ones, the median step. Architectures are timed in turn in one run;
compare them within a run only.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import segtf.quiet_start  # noqa: E402, F401

# isort: split
from segtf.modeling.network import ARCHITECTURES, create_model  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402
from deploy_benchmark import median_seconds  # noqa: E402

# our backbone name: smp's encoder of the same network
SMP_ENCODERS = {"resnet18": "resnet18", "resnet34": "resnet34", "efficientnetb0": "efficientnet-b0",
                "mobilenetv2": "mobilenet_v2"}  # fmt: skip
SMP_MODELS = {"unet": "Unet", "fpn": "FPN", "linknet": "Linknet", "unetplusplus": "UnetPlusPlus",
              "deeplabv3plus": "DeepLabV3Plus"}  # fmt: skip
SMP_COUNT = """
import json, sys
import segmentation_models_pytorch as smp
counts = {}
for arch, model_name, encoder in json.loads(sys.argv[1]):
    try:
        model = getattr(smp, model_name)(encoder, encoder_weights=None, classes=1)
    except Exception as error:  # e.g. DenseNet is not dilated for DeepLabV3+
        counts[f"{arch} {encoder}"] = None
        continue
    buffers = sum(b.numel() for name, b in model.named_buffers() if "running" in name)
    counts[f"{arch} {encoder}"] = sum(p.numel() for p in model.parameters()) + buffers
print(json.dumps({"version": smp.__version__, "counts": counts}))
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", nargs="+", default=["unet", "unetplusplus", "deeplabv3plus"], choices=ARCHITECTURES,
                        help="as train.py --arch (default: %(default)s)")  # fmt: skip
    parser.add_argument("--backbones", nargs="+", default=["resnet34", "resnet18", "efficientnetb0", "mobilenetv2"],
                        help="counted (default: %(default)s)")  # fmt: skip
    parser.add_argument("--speed_backbones", nargs="*", default=["resnet18"], help="timed (default: %(default)s)")
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=8, help="images a timed step (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=15, help="timed steps (default: %(default)s)")
    parser.add_argument("--smp_python", help="a Python with segmentation_models_pytorch, for its counts")
    return parser.parse_args()


def smp_counts(python: str, pairs: list[tuple[str, str]]) -> tuple[str, dict]:
    """smp's version and its count for each (arch, our backbone) it has."""
    jobs = [(arch, SMP_MODELS[arch], SMP_ENCODERS[backbone]) for arch, backbone in pairs if backbone in SMP_ENCODERS]
    result = subprocess.run([python, "-c", SMP_COUNT, json.dumps(jobs)], capture_output=True, text=True, check=True)
    found = json.loads(result.stdout.strip().splitlines()[-1])
    counts = {(arch, backbone): found["counts"].get(f"{arch} {SMP_ENCODERS.get(backbone)}") for arch, backbone in pairs}
    return found["version"], counts


def speed(model: tf.keras.Model, args: argparse.Namespace) -> tuple[float, float]:
    """Training and prediction images a second at args.size, args.batch."""
    rng = np.random.default_rng(0)
    images = tf.constant(rng.random((args.batch, args.size, args.size, 3), np.float32))
    masks = tf.constant((rng.random((args.batch, args.size, args.size, 1)) > 0.5).astype(np.float32))
    predict = tf.function(lambda x: model(x, training=False))
    train = median_seconds(lambda: model.train_on_batch(images, masks), args.steps)
    infer = median_seconds(lambda: predict(images).numpy(), args.steps)
    return args.batch / train, args.batch / infer


def main() -> None:
    args = parse_args()
    pairs = [(arch, backbone) for backbone in args.backbones for arch in args.archs]
    version, reference = smp_counts(args.smp_python, pairs) if args.smp_python else ("", {})
    rows = []
    for arch, backbone in pairs:
        model = create_model(backbone, "none", arch=arch)
        row = {"arch": arch, "backbone": backbone, "parameters": model.count_params()}
        if reference.get((arch, backbone)):
            row[f"smp {version}"] = reference[arch, backbone]
            row["ours - smp"] = row["parameters"] - reference[arch, backbone]
        if backbone in args.speed_backbones:
            row["train images/s"], row["predict images/s"] = (round(v, 1) for v in speed(model, args))
        rows.append(row)
        print(json.dumps(row), flush=True)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "")
    print(f"\n{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, TensorFlow {tf.__version__}; "
          f"speed at {args.size} px, batch {args.batch}, float32")  # fmt: skip
    print(pd.DataFrame(rows).fillna("").to_string(index=False))


if __name__ == "__main__":
    main()
