"""Builders of labelled cover sets for training (``scorer dataset …``): genre folders and ``labels.csv``."""
