"""Look at what training sees: one training batch's shapes, dtypes and value ranges, and a grid of augmented samples.

    python dataloader.py --data_root DATA [--augment any_orientation] [--output imgs/augmentations.png]

Takes train.py's loader flags. The pipeline itself is segtf/dataset/pipeline.py: images and masks resized once into
DATA/cache/, decoded by TensorFlow's ops and augmented by albumentations in parallel, many samples at a time.
"""

import segtf.quiet_start  # noqa: F401  (TensorFlow without its start-up logging)
from segtf.cli.show_batch import main

if __name__ == "__main__":
    main()
