"""ifan."""
