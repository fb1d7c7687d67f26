"""RecoMind: a self-hostable recommendation system for short-video platforms."""

__version__ = "0.1.0"
