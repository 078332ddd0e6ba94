"""The replay server: Gemini's REST protocol served from cassettes, with recorded timing, over real HTTP.

Run it with ``python -m helpers.replay serve``; notebooks start it for you through :func:`helpers.setup`.
Each subpackage is one layer (:data:`LAYERS`); ``docs/server.md`` shows the tree and follows one request through it.
"""

LAYERS = ("wire", "cassettes", "pipeline", "backends", "services", "upstream", "app")
"""The server's layers, lowest first, each a subpackage: a module imports from its own folder and the ones before it,
never a later one (``tests/test_layers.py`` checks). ``__main__.py``, the command line, stands above them all."""
