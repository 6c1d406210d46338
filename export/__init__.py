"""stainless export (see README)."""
