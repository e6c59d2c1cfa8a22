"""The compute precision of training: float16 (Keras' mixed_float16, with loss scaling), bfloat16 (mixed_bfloat16,
which has float32's range and needs none) or float32, and what --mixed_precision auto chooses on this hardware. The
weights, the head, the loss and the metrics are float32 in every case."""

import contextlib
from pathlib import Path
from typing import Iterator

import tensorflow as tf

# From what the least hardware runs well to what the most does: a cluster trains in the first one any worker chose
PRECISIONS = ("float32", "float16", "bfloat16")
POLICIES = {"float32": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}
CPU_BF16_FLAGS = {"amx_bf16", "avx512_bf16"}  # /proc/cpuinfo's names of AMX's and AVX512's bfloat16 instructions
# Measured on such a CPU: resnet18 1.36 times as fast in bfloat16, efficientnetb0 0.93, efficientnetb4 0.74
DEPTHWISE_BACKBONES = ("efficientnet", "mobilenet")


def cpu_flags() -> set[str]:
    """The instruction-set flags of this machine's CPU (Linux), or none where /proc/cpuinfo cannot tell."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return set()
    return next((set(line.split(":", 1)[1].split()) for line in lines if line.startswith("flags")), set())


def gpu_capabilities() -> list[tuple[int, int]]:
    """The compute capability of each GPU this process trains on (the visible ones)."""
    details = [tf.config.experimental.get_device_details(gpu) for gpu in tf.config.get_visible_devices("GPU")]
    return [tuple(d.get("compute_capability", (0, 0))) for d in details]


def auto_precision(capabilities: list[tuple[int, int]], flags: set[str], backbone: str) -> tuple[str, str]:
    """(precision, why) for GPUs of these compute capabilities, or with none, a CPU with these flags: bfloat16 on
    GPUs of 8.0 or more, float16 on 7.x, float32 on older ones; on a CPU with AMX or AVX512-BF16 bfloat16 but for
    backbones of depthwise convolutions, which train slower in it there (docs/benchmarks.md), else float32."""
    if capabilities:
        major, minor = min(capabilities)
        gpus = f"GPUs of compute capability {major}.{minor}"
        if major >= 8:
            return "bfloat16", f"{gpus}, which compute in bfloat16 at float16's speed without loss scaling"
        if major == 7:
            return "float16", f"{gpus}, whose tensor cores compute in float16"
        return "float32", f"{gpus}, below 7.0: mixed precision would be slower"
    found = " and ".join(sorted(flags & CPU_BF16_FLAGS))
    if not found:
        return "float32", "a CPU without AMX or AVX512-BF16, where mixed precision is slower"
    if backbone.startswith(DEPTHWISE_BACKBONES):
        return "float32", f"a CPU with {found}, but {backbone}'s depthwise convolutions train slower in bfloat16 there"
    return "bfloat16", f"a CPU with {found}"


@contextlib.contextmanager
def precision_policy(precision: str) -> Iterator[None]:
    """Layers built inside compute in precision with float32 weights; Keras reads the policy from a global when a
    layer is built, which is set here and restored after, so that it is never left behind for other code to
    depend on."""
    previous = tf.keras.mixed_precision.global_policy()
    tf.keras.mixed_precision.set_global_policy(POLICIES[precision])
    try:
        yield
    finally:
        tf.keras.mixed_precision.set_global_policy(previous)
