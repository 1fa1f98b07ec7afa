"""sptui: a terminal workbench for superposition experiments in mechanistic interpretability."""

__version__ = "0.1.0"
