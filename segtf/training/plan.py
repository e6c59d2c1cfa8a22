"""The plan: the settings a user did not give, chosen from the data's fingerprint, the devices and the encoder's
start, each with its reason (nnU-Net's experiment planning, in a few rules written down in docs/plan.md). A flag
on the command line always wins; --plan none keeps the plain defaults of segtf/config.py."""

import dataclasses
import math
from typing import Any, Collection, Mapping, Optional

from segtf.config import LoaderConfig, ModelConfig
from segtf.dataset.fingerprint import Fingerprint

# The settings the plan chooses when they are not given; --time_budget chooses the epochs and their steps
PLANNED = ("image_size", "patch_size", "scale", "batch_size", "backbone")
THINNEST = 4.0  # px: the structures' median width at the model input stays at least this
PATCH_SIZE = 256  # px: nnU-Net's order of size for 2D patches; the retinal vessels reached F1 0.77-0.79 with it
# px: whole images are squashed to at most this side. At equal time (5 minutes, one core) the nails' photos at 256
# scored 0.382 against 0.182 at 384, the plain size, and against 0.302 to 0.354 for 256-px patches (3 seeds)
WHOLE_SIZE = 256
CPU_BATCH_SIZE = 8  # a step of 8 at 256 px takes about a second on 2 cores: epochs stay short enough to validate often
SCRATCH_BACKBONE = "resnet18"  # from scratch it beat efficientnetb0 on vessels, membranes and the nails, 2-3x as fast


@dataclasses.dataclass(frozen=True)
class Plan:
    """The planned settings by their flags' names, and one line a choice saying why."""

    settings: Mapping[str, Any]
    reasons: tuple[str, ...]


def multiple_of_32(side: float) -> int:
    return max(32, 32 * math.ceil(side / 32))


def input_geometry(fingerprint: Optional[Fingerprint], given: Collection[str]) -> tuple[dict, str]:
    """Whole images at their own size, or squashed to WHOLE_SIZE, when the thinnest class's structures stay THINNEST
    pixels wide (median) there; else patches of PATCH_SIZE at the scale that keeps them so, never above 1 (no image
    is enlarged). The measurements behind it: docs/experiments.md, "The plan against hand-chosen settings"."""
    plain = LoaderConfig.image_size
    if "patch_size" in given or "image_size" in given:
        return {}, ""
    if fingerprint is None:
        return {}, (f"whole images at {plain} px: the data has no fingerprint.json yet (data_preparation.py "
                    "writes it: run it again to plan from the data)")  # fmt: skip
    side = max(fingerprint.image_height.median, fingerprint.image_width.median)
    size = min(WHOLE_SIZE, multiple_of_32(side))
    widths = {name: c.width.median for name, c in fingerprint.classes.items()}
    if not widths:
        return {"image_size": size}, f"whole images at {size} px: the training masks hold no foreground"
    name, width = min(widths.items(), key=lambda item: item[1])
    squashed = width * min(1.0, size / side)
    kept = f"{name} structures {width:.1f} px wide (median) are {squashed:.1f} px at {size}"
    if squashed >= THINNEST or size >= side:
        return {"image_size": size}, f"whole images at {size} px: {kept} (images {side:.0f} px, median)"
    scale = min(1.0, THINNEST / width)
    return (
        {"patch_size": PATCH_SIZE, "scale": round(scale, 3)},
        f"patches of {PATCH_SIZE} px at scale {scale:.3g}: {kept}, {width * scale:.1f} px at this scale "
        f"(images {side:.0f} px, median)",
    )


def batch_size(on_gpu: bool, replicas: int) -> tuple[dict, str]:
    """On a CPU, CPU_BATCH_SIZE split evenly over its logical devices; on GPUs, the plain default for now."""
    if on_gpu:
        return {}, f"batch of {LoaderConfig.batch_size}: the plain default on GPUs (their memory is not measured yet)"
    size = replicas * math.ceil(CPU_BATCH_SIZE / replicas)
    return {"batch_size": size}, f"batch of {size}: a CPU"


def backbone(encoder_weights: str) -> tuple[dict, str]:
    """With ImageNet weights or a weights file, the plain default; from scratch, SCRATCH_BACKBONE."""
    if encoder_weights != "none":
        return {}, f"backbone {ModelConfig.backbone}: the plain default, with --encoder_weights {encoder_weights}"
    return {"backbone": SCRATCH_BACKBONE}, (
        f"backbone {SCRATCH_BACKBONE}: from scratch it learned better and 2-3 times as fast as efficientnetb0 "
        "(docs/plan.md)"
    )


def make_plan(
    fingerprint: Optional[Fingerprint], values: Mapping[str, Any], given: Collection[str], on_gpu: bool
) -> Plan:
    """The plan for the settings of PLANNED that are not in given (the flags on the command line). values: every
    setting, given or default; on_gpu: whether the run trains on GPUs."""
    settings, reasons = {}, []
    choices = [input_geometry(fingerprint, given)]
    if "batch_size" not in given:
        choices.append(batch_size(on_gpu, 1 if on_gpu else values["cpu_devices"]))
    if "backbone" not in given:
        choices.append(backbone(values["encoder_weights"]))
    for chosen, reason in choices:
        settings.update(chosen)
        if reason:
            reasons.append(reason)
    return Plan(settings, tuple(reasons))
