"""Versioned model artefacts: immutable version folders, the current pointer, and the retrain gate."""
