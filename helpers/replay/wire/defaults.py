"""The replay server's defaults that code outside the server needs too: plain constants, importing nothing.

:mod:`helpers.workbook` reads these without importing the server (a notebook's ``import helpers`` stays light).
"""

DEFAULT_UPSTREAM = "https://generativelanguage.googleapis.com"
"""Where ``--record`` forwards requests unless told otherwise: the public Gemini API endpoint."""

PLACEHOLDER_KEY = "workbook-replay-placeholder-key"
"""The API key the SDK is given where no real one is needed (replay, synthetic authoring). Not a secret."""

TOKEN_HEADER = "x-workbook-token"
"""The request header that carries a replay server's token."""

TOKEN_SEPARATOR = "."
"""Between a key and a replay server's token in a credential ``KEY.TOKEN`` (``helpers.setup`` hands the SDK one,
the server's guard checks it): neither an API key nor a token (``secrets.token_urlsafe``) holds a dot, and every
client sends one unchanged in a header, a query or a bearer token."""

TOKEN_VARIABLE = "WORKBOOK_SERVER_TOKEN"
"""An environment variable that gives ``serve --require-token`` its token (``helpers.setup`` sets it for its
servers, so that a replacement server keeps the token its clients were given). The environment, unlike the command
line, is readable only by its own user."""

UPSTREAM_TOKEN_VARIABLE = "WORKBOOK_UPSTREAM_TOKEN"
"""An environment variable that gives a recording ``serve`` the token of its upstream: ``helpers.setup``'s synthetic
stand-in (``synth --require-token``) answers only calls that carry it, sent in the ``x-workbook-token`` header."""

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
