"""Evaluation of trained models against datasets, shared by every system."""
