"""stainless edge (see README)."""
