"""Anomaly detection with AnoDDPM: partial diffusion with Gaussian or simplex noise, then reconstruction."""
