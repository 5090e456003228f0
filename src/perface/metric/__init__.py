"""Learning perceptual similarity: the PerFace model, its losses, cached features, training, and the
paper's step-1 group statistic (upper 95% bound of distances to a group).

Builds on ``face``, ``backbones`` and ``datasets``; imports nothing from ``anonymize`` or ``evaluation``.
"""
