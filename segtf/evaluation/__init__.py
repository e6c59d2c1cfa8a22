"""Scores, pictures, predicting a folder with its scores, the cross-validation report and the choice of
post-processing."""
