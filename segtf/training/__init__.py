"""A training run: its work folder, checkpoints, callbacks, devices and clusters, and the loop itself."""
