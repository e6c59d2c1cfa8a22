"""This machine's set-up as train.py sees it, to put beside a speed figure or a bug report.

    python utils.py [--backbone resnet18]

prints the Python and package versions, the CPU and its bfloat16 flags, the GPUs' compute capabilities, and the
precision --mixed_precision auto would choose. The code is segtf/cli/environment.py.
"""

import segtf.quiet_start  # noqa: F401  (TensorFlow without its start-up logging)
from segtf.cli.environment import main

if __name__ == "__main__":
    main()
