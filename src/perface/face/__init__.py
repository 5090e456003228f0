"""Seeing faces: image I/O, detection, landmarks, alignment, identity embeddings and attribute predictors.

Imports nothing from ``metric``, ``anonymize`` or ``evaluation``. Modules are imported directly
(``from perface.face.detect import detect``), so importing one does not load the others' models.
"""
