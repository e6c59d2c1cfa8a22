"""The model: the network, its losses, metrics, optimizers, weight averages and precision."""
