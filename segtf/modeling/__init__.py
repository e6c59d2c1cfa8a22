"""The model: the network (segmentation_models' encoders, its decoders or ours), its losses, metrics, optimizers,
weight averages and precision."""
