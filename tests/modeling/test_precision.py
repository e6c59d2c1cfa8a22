"""precision.py: --mixed_precision auto's choice on each kind of hardware and backbone."""

from segtf.modeling.precision import auto_precision

import pytest


@pytest.mark.parametrize(
    "capabilities, flags, backbone, precision",
    [
        ([(8, 0)], set(), "efficientnetb4", "bfloat16"),
        ([(9, 0), (8, 6)], set(), "resnet18", "bfloat16"),
        ([(7, 5)], {"amx_bf16"}, "resnet18", "float16"),  # training on the GPUs: the CPU does not count
        ([(8, 6), (7, 0)], set(), "resnet18", "float16"),  # the slowest GPU decides
        ([(6, 1)], set(), "resnet18", "float32"),
        ([], {"avx512f", "amx_bf16", "amx_tile"}, "resnet18", "bfloat16"),
        ([], {"avx512_bf16"}, "resnet34", "bfloat16"),
        ([], {"amx_bf16", "avx512_bf16"}, "efficientnetb4", "float32"),  # slower in bfloat16 on such a CPU
        ([], {"amx_bf16"}, "mobilenetv2", "float32"),
        ([], {"avx2", "avx512f"}, "resnet18", "float32"),
    ],
)
def test_auto_chooses_by_the_gpus_or_else_the_cpu_and_backbone(capabilities, flags, backbone, precision):
    assert auto_precision(capabilities, flags, backbone)[0] == precision
