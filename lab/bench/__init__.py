"""The lab's benchmarks, one module a subsystem (`python -m lab.bench.<name>`; `make bench` runs them all)."""
