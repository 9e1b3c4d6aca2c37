"""Checks that run pipelines and models directly, not through a sweep: stage-by-stage parity
of two pipelines (parity.py), decoders pair by pair (parity_decoders.py), exports against
the model with tolerances (verify.py). Each returns a dataclass; commands/ prints it."""
