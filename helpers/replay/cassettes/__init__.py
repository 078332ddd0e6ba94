"""The cassette layer: the file format and its typed exchanges, the cassettes of a folder in memory with their
durable writes, and the one matcher. Knows cassettes, not HTTP (``docs/server.md``)."""
