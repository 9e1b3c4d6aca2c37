"""Datasets: samples (id, path, target), class names and a content hash (dataset.py); the
loaders per annotation format (loaders/); the generated demo sets."""
