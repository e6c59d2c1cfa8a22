"""utils.py: what this machine offers a run, for a bug report or a speed figure: Python, the packages that decide a
run's results, the CPU and its flags that matter, the GPUs and what --mixed_precision auto would choose."""

import argparse
import platform
import sys
from pathlib import Path
from typing import Optional, Sequence

from segtf.config import ModelConfig
from segtf.errors import exit_on_user_error
from segtf.modeling.precision import CPU_BF16_FLAGS, auto_precision, cpu_flags, gpu_capabilities
from segtf.training.workdir import installed_versions

import tensorflow as tf


def cpu_name() -> str:
    """The CPU's model name (Linux), or the platform's word for it."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or "unknown"
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "unknown")


def environment_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Print this machine's set-up as train.py sees it: Python and package versions, CPU, GPUs, and "
        "the precision --mixed_precision auto would choose. Put it beside any speed figure or bug report."
    )
    parser.add_argument(
        "--backbone",
        default=ModelConfig.backbone,
        help="the backbone whose automatic precision to show (default: %(default)s)",
    )
    return parser.parse_args(argv)


def print_environment(args: argparse.Namespace) -> None:
    print(f"Python {platform.python_version()} ({sys.executable}) on {platform.platform()}")
    print("packages: " + ", ".join(f"{name} {version or '-'}" for name, version in installed_versions().items()))
    flags = cpu_flags()
    bf16 = " and ".join(sorted(flags & CPU_BF16_FLAGS)) or "neither AMX nor AVX512-BF16"
    print(f"CPU: {cpu_name()}, {len(tf.config.list_physical_devices('CPU'))} device(s) to TensorFlow, {bf16}")
    capabilities = gpu_capabilities()
    gpus = ", ".join(f"compute capability {major}.{minor}" for major, minor in capabilities) or "none visible"
    print(f"GPUs: {gpus}")
    precision, why = auto_precision(capabilities, flags, args.backbone)
    print(f"--mixed_precision auto with --backbone {args.backbone}: {precision} ({why})")


def main(argv: Optional[Sequence[str]] = None) -> None:
    with exit_on_user_error():
        print_environment(environment_args(argv))
