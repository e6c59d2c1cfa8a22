"""Use trained models: masks for new images, scores against true masks, exports, the cross-validation report,
pictures.

    python predict.py --weights WORK/tensorflow/weights/best-weight_efficientnetb4.h5 --input photos/ --output OUT
    python predict.py --weights W --data_root DATA --split valid --output OUT     # also scores
    python predict.py --weights W --input photos/ --masks true_masks/ --output OUT  # also scores
    python predict.py --weights W --input photos/ --patch_size 384 --tta flip --output OUT  # full resolution
    python predict.py --weights W --export savedmodel tflite tflite_int8 onnx --output OUT
    python predict.py --cv WORK --output OUT                                      # after train.py --folds N
    python predict.py --weights WORK --data_root DATA --output OUT                # the ensemble of WORK's folds
    python predict.py --history WORK/tensorflow/logs/history.csv --output OUT      # training curves

Masks go to OUT/masks/ (PNG, 0 and 255, at each image's size; of a run of several classes, the class indices),
overlays to OUT/overlays/, scores to OUT/metrics.csv. Nothing in OUT is deleted.
"""

import segtf.quiet_start  # noqa: F401  (TensorFlow without its start-up logging)
from segtf.cli.predict import main

if __name__ == "__main__":
    main()
