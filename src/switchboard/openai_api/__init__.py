"""The OpenAI-compatible surface: ``GET /v1/models`` and ``POST /v1/chat/completions``, where
``model`` names an agent and every request is a run (ledger, limits, budgets, idempotency and
strategies unchanged). Answers are built from the ``openai`` package's own types."""
