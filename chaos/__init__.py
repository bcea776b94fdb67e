"""Fault injection: controller, backends, leases."""
