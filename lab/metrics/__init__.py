"""Measurements computed from raw observations (pure functions)."""
