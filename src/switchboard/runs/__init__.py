"""Runs: every chat turn as a durable resource — a row with a state machine, its events, one
active run per conversation, idempotent creation."""
