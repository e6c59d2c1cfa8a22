"""Data: reading images and masks, classes, preparation into PNGs and CSVs, folds, the caches, augmentation and the
tf.data pipeline."""
