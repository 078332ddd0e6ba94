"""What the benchmarks share: a result row, a replay server started as the notebooks start it, request bodies, stats.

Used by ``bench/run.py`` and its measurement modules (``replay_bench.py``, ``rate_limits.py``).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from google import genai
from google.genai import types

from helpers.models import FLASH as MODEL
from helpers.replay.cassettes.cassette import Cassette, Exchange
from helpers.replay.wire.defaults import PLACEHOLDER_KEY
from helpers.workbook import ServerProcess

RAW = "raw aiohttp"
SDK = "SDK client.aio"
JSON_HEADERS = {"Content-Type": "application/json"}
PROVENANCE = {"source": "synthetic", "date": "2026-11-22", "latency_model": "fixed, for benchmarks", "based_on": "-"}


@dataclass(frozen=True)
class Row:
    """One line of the results table.

    Attributes:
        benchmark: what was measured, and how many (e.g. ``"replay fidelity, 100 concurrent streams"``).
        result: the figures, units included.
        target: the target from issue 6, or ``"-"`` when none was set.
        met: whether this run met the target (``None`` without one).
        client: which client made the requests (:data:`RAW`, :data:`SDK` or ``"-"``).
    """

    benchmark: str
    result: str
    target: str = "-"
    met: bool | None = None
    client: str = "-"


def body(prompt: str) -> dict[str, Any]:
    """The JSON body ``generate_content(model=..., contents=prompt)`` sends."""
    return {"contents": [{"parts": [{"text": prompt}], "role": "user"}]}


def payload(prompt: str) -> bytes:
    """:func:`body` serialised, for a raw client to send as is."""
    return json.dumps(body(prompt)).encode()


def response(text: str, response_id: str = "bench", *, final: bool = True) -> dict[str, Any]:
    """A ``GenerateContentResponse`` (or stream chunk) holding ``text``, tagged with ``response_id``."""
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if final:
        candidate["finishReason"] = "STOP"
    usage = {"promptTokenCount": 4, "candidatesTokenCount": 8, "totalTokenCount": 12}
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": MODEL, "responseId": response_id}


def generate_exchange(prompt: str, offset_s: float) -> Exchange:
    """A ``generateContent`` exchange answered ``offset_s`` seconds after the request."""
    return Exchange(
        {"method": "POST", "path": f"models/{MODEL}:generateContent", "query": {}, "body": body(prompt)},
        {"status": 200, "offset_s": offset_s, "body": response("done")},
        PROVENANCE,
    )


def stream_exchange(prompt: str, offsets_s: Sequence[float], response_id: str = "bench") -> Exchange:
    """A ``streamGenerateContent`` exchange with one chunk at each of ``offsets_s``, every chunk tagged
    ``response_id`` so a client can tell which recording answered it."""
    chunks = [
        {"offset_s": offset, "data": response(f"chunk {i} ", response_id, final=i == len(offsets_s) - 1)}
        for i, offset in enumerate(offsets_s)
    ]
    return Exchange(
        {
            "method": "POST",
            "path": f"models/{MODEL}:streamGenerateContent",
            "query": {"alt": "sse"},
            "body": body(prompt),
        },
        {"status": 200, "chunks": chunks},
        PROVENANCE,
    )


def write(folder: Path, name: str, exchanges: list[Exchange]) -> None:
    """Save cassette ``name`` in ``folder``."""
    Cassette(name, folder / f"{name}.json", exchanges, "benchmark cassette").save()


@contextlib.contextmanager
def replay_server(folder: Path, *args: str) -> Iterator[str]:
    """``python -m helpers.replay serve --port 0 --cassettes folder ARGS`` as ``helpers.setup`` starts it (a
    :class:`~helpers.workbook.ServerProcess`); yields its ``http://HOST:PORT`` and stops it afterwards.

    Raises:
        helpers.workbook.WorkbookError: the server did not start.
    """
    server = ServerProcess(["serve", "--port", "0", "--cassettes", str(folder), *args])
    try:
        yield server.url
    finally:
        server.stop()
        if server.proc.returncode != 0:
            print(f"warning: the replay server exited with {server.proc.returncode}; see {server.log}", file=sys.stderr)


def sdk_client(url: str, cassette: str, retry: types.HttpRetryOptions | None = None) -> genai.Client:
    """A ``genai.Client`` whose base URL is ``url/cassette/``, as a notebook's would be after ``helpers.setup``."""
    options = types.HttpOptions(base_url=f"{url}/{cassette}/", retry_options=retry)
    return genai.Client(api_key=PLACEHOLDER_KEY, http_options=options)


def percentiles_ms(samples_s: Sequence[float]) -> tuple[float, float, float]:
    """``(p50, p95, max)`` of ``samples_s``, in milliseconds."""
    values = np.asarray(samples_s) * 1000
    return float(np.percentile(values, 50)), float(np.percentile(values, 95)), float(values.max())


def ms(value: float) -> str:
    """``0.00123`` s -> ``"1.2 ms"``."""
    return f"{value * 1000:.1f} ms"
