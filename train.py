"""Train a Unet on data prepared by data_preparation.py.

    python train.py --data_root DATA --work_dir WORK --device 0 1 --batch_size 32 --epochs 100 \
        --mixed_precision True --log tensorboard

Writes to WORK/tensorflow/: weights/best-weight_<backbone>.h5 (best --monitor: highest val IoU) and
weights/last-weight_<backbone>.h5, logs/history.csv, logs/tensorboard/<time>/, run_config.json, and backup/ while a
run is under way, from which --resume continues it. SIGTERM or Ctrl-C stops it after the current step; a kill loses at
most the epoch under way. With TF_CONFIG describing a cluster (or --cluster slurm under srun), the same command on
every machine trains them together with MultiWorkerMirroredStrategy; only the chief writes WORK.

The flags are segtf/cli/train.py; the run, read top-down, segtf/training/run.py.
"""

import segtf.quiet_start  # noqa: F401  (TensorFlow without its start-up logging)
from segtf.cli.train import main

if __name__ == "__main__":
    main()
