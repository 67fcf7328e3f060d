"""Monitoring: training references, what replicas score, drift, calibration, acceptance."""
