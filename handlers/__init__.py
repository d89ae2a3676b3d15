"""The message pipeline: middleware steps, then the router."""
