"""Wobble Lab core: topology, CLI, measurements."""
