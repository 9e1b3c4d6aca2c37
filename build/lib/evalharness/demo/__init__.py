"""The offline demo: generated images with known labels and boxes (synth.py, demo.py,
demo_det.py) and the small models trained on a separate generated split (train_demo.py,
train_det.py). Byte-identical on regeneration (fixed seeds)."""
