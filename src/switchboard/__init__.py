"""Switchboard: a multi-tenant LLM agent server with an exact, crash-safe cost ledger."""

__version__ = "0.1.0"
