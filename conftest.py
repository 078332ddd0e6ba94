"""Every pytest run, tests and notebooks alike: replay refuses a request no recording matches.

``helpers.setup`` improvises a labelled stand-in for such a request by default (a learner trying their own prompt);
under test it must fail instead, so that a test or a notebook checked by nbval cannot pass on a stand-in. Set here,
at the repository's root, so it holds for ``pytest tests/...`` and ``pytest notebooks/...`` alike, and notebook
kernels that nbval and nbclient start inherit it. A test that wants a stand-in asks for one
(``helpers.setup(..., unmatched="improvise")``).
"""

import os

from helpers.replay.wire.defaults import UNMATCHED_VARIABLE

os.environ[UNMATCHED_VARIABLE] = "error"
