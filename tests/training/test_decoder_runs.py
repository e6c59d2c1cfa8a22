"""Our decoders (--arch unetplusplus, deeplabv3plus) in a run: training, prediction by windows, the SavedModel and
ONNX exports. A file of their own, so that pytest's workers run them beside segmentation_models' decoders'."""

from segtf.modeling.network import OWN_DECODERS

import pytest
from helpers import train_predict_and_export


@pytest.mark.parametrize("arch", list(OWN_DECODERS))
def test_our_decoders_train_predict_by_windows_and_export(arch, synthetic_data, tmp_path):
    train_predict_and_export(arch, synthetic_data, tmp_path, onnx=True)
