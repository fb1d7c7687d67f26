"""Recommendation models: one module per family, plus the hybrid that blends them."""
