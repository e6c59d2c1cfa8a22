"""Prediction with trained models: loading them (one or an ensemble), sliding windows and post-processing."""
