"""Decoders of this project's own, in plain Keras layers that build on tf-keras (Keras 2) and on Keras 3 alike: each
takes an encoder's feature maps at strides 2, 4, 8, 16 and 32 (encoders.encoder_features) and returns logits at the
input's size. Nothing here imports segmentation_models, which does not run on Keras 3."""
