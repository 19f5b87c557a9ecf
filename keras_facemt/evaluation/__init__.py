"""Evaluation runs and their reports."""
