"""Proxies and loopback: a proxy (a managed laptop's ``HTTP_PROXY``) carries calls for other hosts, never those for
this machine's own servers (the replay server, a lesson's app), which it cannot reach.
"""

from __future__ import annotations

import os

from .replay.wire.defaults import LOOPBACK_HOSTS

NO_PROXY_VARIABLES = ("NO_PROXY", "no_proxy")
"""Where HTTP clients read the hosts they reach without a proxy (lower case wins in Python's own reading)."""


def keep_loopback_off_proxies(*hosts: str) -> None:
    """Add this machine's loopback (``127.0.0.1``, ``localhost``, ``::1``) and ``hosts`` to ``NO_PROXY`` and
    ``no_proxy``, keeping the hosts they already list, so no HTTP client of this process or of those it starts sends a
    call for the replay server (or another local server) to a proxy. Called by :func:`helpers.setup` (introduced in
    ``00_setup``; in a classroom room with the relay's host, which is on the local network) and by
    ``python -m helpers.replay author``.

    University and company laptops set ``HTTP_PROXY``/``HTTPS_PROXY``, and the SDK's clients honour them (``httpx2``
    for sync calls, ``aiohttp`` with ``trust_env=True`` for ``client.aio``): without this, every replayed call goes
    to the proxy, which cannot reach this machine's loopback. Calls to other hosts (live mode) keep their proxy.

    A proxy set only in the system's settings (Windows, macOS), which Python uses when no proxy variable is set, is
    first written to ``http_proxy``/``https_proxy``: a ``no_proxy`` variable alone would make Python's clients
    ignore the system's proxy for every host.
    """
    import urllib.request

    if not urllib.request.getproxies_environment():
        system = urllib.request.getproxies()  # with no variable set: the system's settings, or nothing (Linux)
        for scheme in ("http", "https"):
            if system.get(scheme):
                os.environ[f"{scheme}_proxy"] = system[scheme]
    listed = (host.strip() for name in NO_PROXY_VARIABLES for host in os.environ.get(name, "").split(","))
    bypassed = ",".join(dict.fromkeys(host for host in (*listed, *LOOPBACK_HOSTS, *hosts) if host))
    for name in NO_PROXY_VARIABLES:
        os.environ[name] = bypassed
