"""The data layer: metadata readers, image and mask discovery, the torch dataset, the decode
cache, leakage-free splits and dataset plots.

Submodules are imported on demand; ``hamkit.data`` itself imports nothing heavy.
"""
