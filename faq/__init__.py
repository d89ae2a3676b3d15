"""The knowledge base: short answers with sources, and retrieval over them."""
