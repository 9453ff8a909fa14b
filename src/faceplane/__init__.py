"""Faceplane: a self-hosted face-processing API server."""

__version__ = "0.1.0"

__all__ = ["__version__"]
