"""Google Colab: knowing that this kernel runs there, and reading the API key from Colab Secrets.

Introduced in ``00_setup`` (how to get the workbook into Colab: ``docs/colab.md``). :func:`helpers.setup` calls
:func:`running_in_colab` and, in live and record mode when no key is in the environment, :func:`key_from_secrets`.
Nothing is configured: Colab is recognised from the runtime itself. Replay needs none of this and runs in Colab as on
a laptop.
"""

from __future__ import annotations

import sys

SECRET_NAMES = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
"""The Colab Secrets read, in this order; the key is put in the environment variable of the same name, where the
``google-genai`` SDK finds it."""
SECRETS_PANEL = "Secrets (the key icon in Colab's left sidebar)"
KEY_PAGE = "https://aistudio.google.com/apikey"


class ColabKeyError(Exception):
    """No usable key in Colab Secrets; the message is one line saying what to do there (never the key)."""


def running_in_colab() -> bool:
    """Whether this kernel is a Google Colab runtime.

    Colab's kernel is ``google.colab``'s own (``google.colab._kernel``), so ``google.colab`` is imported before any
    cell runs. Being merely importable is not enough: the ``google-colab`` package installed outside Colab would make
    ``userdata.get`` wait for an answer from a Colab page that does not exist.
    """
    return "google.colab" in sys.modules


def key_from_secrets() -> tuple[str, str]:
    """Read the API key from Colab Secrets (``google.colab.userdata.get``), trying :data:`SECRET_NAMES` in order.

    Colab asks the learner once whether this notebook may read a secret; a secret it may not read is skipped.

    Returns:
        ``(name, key)``: the secret's name (``"GEMINI_API_KEY"`` or ``"GOOGLE_API_KEY"``) and its value. The caller
        puts it in the environment; nothing here prints, logs or stores it.

    Raises:
        ColabKeyError: no secret of either name, an empty one, or none this notebook may read; the message says in
            one line how to add one or grant access.
    """
    # Only Colab (or a test's stand-in) has it.
    from google.colab import userdata  # type: ignore[import-not-found, import-untyped]

    # Colab's userdata raises these two; anything else (a timeout, a frontend error) is reported, never a traceback.
    not_found = getattr(userdata, "SecretNotFoundError", ())
    no_access = getattr(userdata, "NotebookAccessError", ())
    denied, empty = [], []
    for name in SECRET_NAMES:
        try:
            key = userdata.get(name)
        except not_found:
            continue
        except no_access:
            denied.append(name)
            continue
        except Exception as e:  # e.g. userdata.TimeoutException in some Colab releases
            raise ColabKeyError(
                f"Colab Secrets did not answer for {name} ({type(e).__name__}); re-run this cell, and if it fails "
                f"again, restart the session (Runtime menu)."
            ) from None
        if isinstance(key, str) and key.strip():
            return name, key.strip()
        empty.append(name)
    if denied:
        raise ColabKeyError(
            f"this notebook may not read the secret {denied[0]}: in {SECRETS_PANEL}, turn on its 'Notebook access' "
            "switch, then re-run this cell."
        )
    if empty:
        raise ColabKeyError(
            f"the secret {empty[0]} is empty: in {SECRETS_PANEL}, paste your key from {KEY_PAGE} as its value, then "
            "re-run this cell."
        )
    raise ColabKeyError(
        f"in {SECRETS_PANEL}, add a secret named GEMINI_API_KEY with your key from {KEY_PAGE} as its value and turn on "
        "its 'Notebook access', then re-run this cell (never paste the key into a cell)."
    )
