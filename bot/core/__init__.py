"""Foundation: messages, errors, conversation, config, logs, outbox, storage, the turn. Imports nothing above it."""
