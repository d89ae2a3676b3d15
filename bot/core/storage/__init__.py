"""Storage: Redis for live state, SQL for durable records."""
