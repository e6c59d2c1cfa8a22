"""The network train.py trains: a segmentation_models Unet, FPN or Linknet on any of its backbones, with a float32
sigmoid (one class) or softmax (several) head.

    python model.py --arch unet --backbone resnet18 --classes 3 --image_size 256 [--summary]

prints its parameter counts, input and output. The network itself is segtf/modeling/network.py.
"""

import segtf.quiet_start  # noqa: F401  (TensorFlow without its start-up logging)
from segtf.cli.model_summary import main

if __name__ == "__main__":
    main()
