"""The replay server's defaults that code outside the server needs too: plain constants, importing nothing.

:mod:`helpers.workbook` reads these without importing the server (a notebook's ``import helpers`` stays light).
"""

DEFAULT_UPSTREAM = "https://generativelanguage.googleapis.com"
"""Where ``--record`` forwards requests unless told otherwise: the public Gemini API endpoint."""

PLACEHOLDER_KEY = "workbook-replay-placeholder-key"
"""The API key the SDK is given where no real one is needed (replay, synthetic authoring). Not a secret."""

FINISH_TIMEOUT_S = 60.0
"""How long a recorder that is stopping waits for streams it is still recording, before it gives up on them."""

UNMATCHED_VARIABLE = "WORKBOOK_UNMATCHED"
"""The environment variable that chooses what replay does with a request no recording matches (``helpers.setup``)."""

UNMATCHED_POLICIES = ("improvise", "error")
"""What replay does with a request no recording matches: answer it with a labelled offline stand-in, or refuse it
with the 404 ``NOT_FOUND`` that names the nearest recording (``serve --unmatched``, default ``error``)."""

STAND_IN_LABEL = "[Offline stand-in: no recording matches this prompt.]"
"""The first words of every improvised answer's text, so nobody mistakes it for the model's."""

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
"""The names of this machine's loopback: what the replay server binds by default, and what no proxy may carry
(:func:`helpers.workbook.setup` adds them to ``NO_PROXY``)."""
