"""Understanding: intents and entities from short colloquial Chinese."""
