"""Array-level core of hamkit's deduplication: perceptual hashes, duplicate search and groups.

* :mod:`hamkit.dedup.hashing`: 64-bit perceptual hashes (:func:`~hamkit.dedup.hashing.phash`,
  :func:`~hamkit.dedup.hashing.dhash`) of greyscale batches and Hamming distances.
* :mod:`hamkit.dedup.search`: every pair above a cosine similarity / within a Hamming distance,
  blockwise (never an N x N matrix), optionally with faiss.
* :mod:`hamkit.dedup.groups`: duplicate groups from pairs (connected components with their
  weakest link, or representative-based) and which item of each group to keep.

These modules take numpy arrays and do no image file I/O; importing them does not import torch.
"""

from __future__ import annotations
