"""The service layer: one module per API surface (models, files, batches, interactions, OpenAI-compatible), each
with its routes and its state (``docs/server.md``)."""
