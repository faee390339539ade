"""Metrics and evaluation harnesses."""
