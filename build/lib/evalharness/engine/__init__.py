"""The one evaluation loop: the per-image stage trie (walk.py), deduplicated inference
(infer.py), the chunk loop (loop.py), the tables from the parts (tables.py), calibration
tensors, the worker pool, the GPU monitor and the library versions of a run."""
