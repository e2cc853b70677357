"""Encoders of the architectures."""
