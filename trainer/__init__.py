"""stainless trainer (see README)."""
