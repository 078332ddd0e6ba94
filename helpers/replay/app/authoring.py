"""Author synthetic exchanges: the real SDK calls the recorder, which records a synthetic upstream's answers."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from google import genai
from google.genai import types

from ...models import LatencyProfile
from ..cassettes.cassette import Cassette, Exchange, default_dir
from ..pipeline.socket_server import running
from ..upstream.synthetic import Script, SyntheticUpstream
from ..wire.defaults import PLACEHOLDER_KEY, UNMATCHED_VARIABLE
from .replay_server import CassetteStore, Mode, ReplayServer


async def author(
    folder: Path,
    cassette: str,
    script: Script,
    model: str,
    prompt: str,
    *,
    stream: bool = False,
    repeat: int = 1,
    config: dict[str, Any] | None = None,
    profile: LatencyProfile | None = None,
) -> list[Exchange]:
    """Record ``repeat`` synthetic exchanges of one SDK call into ``folder/cassette.json`` and return them.

    The calls run concurrently, each timed by the recorder as the synthetic upstream streams it, so authoring 30
    runs takes about as long as one. ``profile`` replaces the model's latency profile (``helpers.models.PROFILES``).

    Raises:
        google.genai.errors.APIError: the synthetic upstream refused the call (e.g. an unknown model).
    """
    store = CassetteStore(folder)
    upstream = SyntheticUpstream(script)
    if profile is not None:
        upstream.profiles[model] = profile
    async with running(upstream.app()) as upstream_url:
        server = ReplayServer(store, mode=Mode.RECORD, upstream=upstream_url)
        async with running(server.app()) as url:
            client = genai.Client(
                api_key=PLACEHOLDER_KEY,
                http_options=types.HttpOptions(base_url=f"{url}/{cassette}/"),
            )
            cfg = types.GenerateContentConfig.model_validate(config) if config else None

            async def once() -> None:
                if stream:
                    async for _ in await client.aio.models.generate_content_stream(
                        model=model, contents=prompt, config=cfg
                    ):
                        pass
                else:
                    await client.aio.models.generate_content(model=model, contents=prompt, config=cfg)

            await asyncio.gather(*(once() for _ in range(repeat)))
            await client.aio.aclose()
    # The recorder appends, after dropping earlier recordings of this exact request: ours are the last ones.
    return Cassette.load(store.path(cassette)).exchanges[-repeat:]


NOT_RECORDED_TAG = "not-recorded"
"""The tag of a cell that sends, on purpose, a request the lesson never records (``00_setup``'s own prompt, which
replay answers with a labelled stand-in): the record run leaves it out, as the synthetic upstream has no answer."""


def execute_notebook(
    path: Path, env: dict[str, str], *, save: bool, then: str = "", leave_out: str | None = None
) -> None:
    """Run a notebook top to bottom in a fresh kernel with ``env`` added to the environment; ``save`` keeps outputs.

    ``then`` is code run in the same kernel after the last cell (never saved into the notebook); cells tagged
    ``leave_out`` are not run (only without ``save``). A cell tagged ``raises-exception`` (how JupyterLab's Run All,
    nbclient and nbval learn that a lesson raises on purpose) may raise here too.

    Raises:
        nbclient.exceptions.CellExecutionError: a cell failed (its error and traceback are in the message).
    """
    import nbclient
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    if leave_out is not None and not save:
        notebook.cells = [c for c in notebook.cells if leave_out not in c.metadata.get("tags", [])]
    extra = nbformat.v4.new_code_cell(then) if then else None
    if extra is not None:
        notebook.cells.append(extra)
    saved = dict(os.environ)
    os.environ.update(env)
    for name in ("WORKBOOK_ROOM", "WORKBOOK_SEAT"):
        os.environ.pop(name, None)  # a lesson is authored on this machine, never in a classroom room
    progress = tempfile.TemporaryDirectory(prefix="workbook-progress-")
    os.environ["WORKBOOK_DATA_DIR"] = progress.name  # a fresh learner's progress: "0 of N"; the real one untouched
    try:
        nbclient.NotebookClient(
            notebook,
            timeout=900,
            kernel_name="python3",
            record_timing=False,
            resources={"metadata": {"path": str(path.parent)}},
        ).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        progress.cleanup()
    if extra is not None:
        notebook.cells.remove(extra)
    if save:
        for cell in notebook.cells:
            if cell.cell_type == "code":
                cell.outputs = _joined_streams(cell.outputs)
        nbformat.write(notebook, path)


def _joined_streams(outputs: list[Any]) -> list[Any]:
    """``outputs`` with each run of consecutive stream outputs to the same stream joined into one, as a kernel
    that flushed once would have sent them: a print split by a flush mid-line must not change the saved shape."""
    joined: list[Any] = []
    for output in outputs:
        last = joined[-1] if joined else None
        if (
            output.output_type == "stream"
            and last is not None
            and (last.output_type, last.name) == ("stream", output.name)
        ):
            last.text += output.text
            continue
        joined.append(output)
    return joined


def keep_takes(path: Path, takes: int) -> int:
    """Keep the first ``takes`` recordings of each distinct request in the cassette at ``path``; drop the others.

    Replay cycles through the recordings of a request, so fewer takes replay just as well. Used by
    :func:`author_notebook` when a lesson's script sets ``"takes"``.

    Returns:
        How many exchanges were dropped.

    Raises:
        ValueError: ``takes`` is below 1.
        helpers.replay.cassettes.cassette.CassetteError: the cassette is missing or corrupt.
    """
    if takes < 1:
        raise ValueError(f"takes must be at least 1, got {takes}")
    cassette = Cassette.load(path)
    seen: Counter[str] = Counter()
    kept = []
    for exchange in cassette.exchanges:
        seen[exchange.key] += 1
        if seen[exchange.key] <= takes:
            kept.append(exchange)
    dropped = len(cassette.exchanges) - len(kept)
    cassette.exchanges = kept
    cassette.save()
    return dropped


def author_notebook(notebook: Path, *, fresh: bool = True) -> Path:
    """Re-author a lesson's synthetic cassette, then re-run the lesson on it and save its outputs.

    Runs ``notebook`` in record mode against the synthetic upstream (its script is ``notebooks/scripts/NAME.json``),
    so every request a cell sends is recorded exactly as the SDK sends it, then, in the same kernel, every exercise
    check's reference solution (``helpers.exercises.exNAME.PROBLEMS``), so the checks' own requests are recorded
    too; cells tagged :data:`NOT_RECORDED_TAG` are left out. When the script sets ``"takes": N``, only the first N
    recordings of each identical request are kept (:func:`keep_takes`). Then it runs the notebook again in replay
    mode and writes the outputs, as nbval will check them (strict: a request no recording matches fails, as under
    nbval, rather than being improvised).

    Args:
        notebook: path to ``notebooks/NN_name.ipynb``.
        fresh: start from an empty cassette (the default), rather than refreshing the one there.

    Returns:
        The cassette's path.
    """
    cassette = default_dir() / f"{notebook.stem}.json"
    if fresh:
        cassette.unlink(missing_ok=True)
    exercises = f"helpers.exercises.ex{notebook.stem}"
    then = ""
    if importlib.util.find_spec(exercises) is not None:
        then = f"import {exercises}\nfor problem in {exercises}.PROBLEMS:\n    problem.check_reference()"
    record = {"WORKBOOK_MODE": "record", "WORKBOOK_UPSTREAM": "synthetic"}
    execute_notebook(notebook, record, save=False, then=then, leave_out=NOT_RECORDED_TAG)
    script = cassette.parent.parent / "scripts" / f"{notebook.stem}.json"
    takes = json.loads(script.read_text(encoding="utf-8")).get("takes") if script.exists() else None
    if takes is not None:
        keep_takes(cassette, takes)
    execute_notebook(notebook, {"WORKBOOK_MODE": "replay", UNMATCHED_VARIABLE: "error"}, save=True)
    return cassette
