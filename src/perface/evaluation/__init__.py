"""Measuring both: triplet accuracy and the Sec. 4.5 attribute-group tables (``measures``), the evaluation
protocols on the shared data (``protocols``), and anonymity against recognizers (``anonymity``).

The top wing below the CLI: it may import any other wing, and none imports it.
"""
