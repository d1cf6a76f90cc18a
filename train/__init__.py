"""Workstation side of edgefer: data, architectures, training, evaluation, baselines (Keras)."""
