"""The wire layer, the lowest: Gemini's REST format as bytes (error bodies, JSON replies, SSE framing), the server's
defaults, and the API keys it was sent. No HTTP library, nothing above it (``docs/server.md``)."""
