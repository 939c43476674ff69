"""Benchmarks of ocpi-parties at production scale, against the hand-written SQL; see `benchmarks.run`."""
