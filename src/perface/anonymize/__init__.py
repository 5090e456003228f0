"""The application: donor galleries, the paper's two-step donor selection, the face swap, the anonymizer
that fails closed, and its run report.

Builds on ``face`` and ``metric``; imports nothing from ``evaluation``.
"""
