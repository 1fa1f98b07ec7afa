"""Sparse autoencoders around the pure maths in sptui.science.sae: the on-disk format (SAELens's), the
activation sources they train on, and reading finished `sae` runs."""
