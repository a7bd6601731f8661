"""Webhooks: events written to a durable outbox in the job store, then signed and sent."""
