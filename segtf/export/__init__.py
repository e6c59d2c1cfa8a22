"""Exports of trained models: SavedModel, TFLite (float16 and INT8) and ONNX, each checked against Keras."""
