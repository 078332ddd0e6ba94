"""The Batch API offline: batch jobs answered from the cassette's recorded ``generateContent`` exchanges.

A service (the services layer, ``docs/server.md``); introduced in ``05_batch``. Routes, after the cassette
segment (``{v}`` is ``v1``, ``v1beta``, ...)::

    POST   {v}/models/{model}:batchGenerateContent  {"batch": {"displayName"?, "inputConfig": ...}} -> the job
    GET    {v}/batches[?pageSize=&pageToken=]       -> {"operations": [...], "nextPageToken"?}
    GET    {v}/batches/{id}                         -> the job
    POST   {v}/batches/{id}:cancel                  -> {}
    DELETE {v}/batches/{id}                         -> {}
    POST   /_control/{cassette}/batches/{id}/state  {"state": "FAILED" | "EXPIRED"} -> {}  (helpers.control)

How a job behaves (shapes from google-genai 3.6.1's ``batches.py`` and real responses published on GitHub, read
2026-11-22):

- A job is a long-running operation: ``{"name": "batches/ID", "metadata": {"@type": ...GenerateContentBatch,
  "model", "displayName"?, "inputConfig"? (file input), "output"?, "createTime", "updateTime", "endTime"?,
  "batchStats", "state", "name"}, "done"?: true, "response"?: {"@type": ...GenerateContentBatchOutput, ...output},
  "error"?}``. ``batchStats`` counts are strings (int64 in proto JSON) and, like the real API's, zero counts are
  left out; so is ``done`` until it is true. The SDK reads ``metadata`` only.
- Timeline, divided by ``--speed``: ``BATCH_STATE_PENDING`` for :data:`PENDING_S`, then ``BATCH_STATE_RUNNING`` for
  :data:`RUNNING_S` (requests complete evenly through it, as ``batchStats`` shows), then ``BATCH_STATE_SUCCEEDED``:
  a lesson polling every second sees all three states and the result in about 3 s. Real jobs target 24 h.
- Cancel ends a pending or running job as ``BATCH_STATE_CANCELLED``; :func:`helpers.control.inject_batch_state` ends
  one as ``BATCH_STATE_FAILED`` or ``BATCH_STATE_EXPIRED``. ``batchStats`` freeze there; only a succeeded job has
  ``output``. Cancelling a finished job is 400 FAILED_PRECONDITION.
- Each request is answered by the cassette's recorded ``generateContent`` exchange of the same request: the same
  model and the same body, matched by the server's one matcher (:mod:`.matcher`; a JSONL line may spell fields
  ``snake_case`` and leave out ``role``, as the real API accepts, and the matcher compares normalised bodies). The
  SDK sends an inline request's body exactly as ``generate_content`` sends it, so one recording serves a call, an
  inline batch and a JSONL batch. Several recordings of one request take turns, shared with direct calls. Streamed
  recordings are not used.
- A request without a recording, a JSONL line that is not ``{"key"?, "request": {...}}`` JSON, or a request naming a
  file still ``PROCESSING`` gets a per-request error (the API's error object: ``{"code", "message", "status"}``) and
  the job still succeeds, as the real API reports per-request failures. ``batchStats`` counts it as failed.
- Inline results come back in request order, each with the request's ``metadata`` (the real backend has been
  reported to drop ``metadata`` and to reorder, python-genai issues 2008 and 1909; the documented behaviour is kept).
  File results are a generated JSONL file ``files/batch-ID``: one line per input line, in order, with the line's
  other fields (``key``) and a ``response`` or an ``error``.
- Bounds (``SECURITY.md``, "Limits"): an inline batch's request is at most :data:`MAX_INLINE_BATCH_BYTES`, the
  API's own figure, else 400 (a JSONL file takes more); its body is parsed in a worker thread
  (:data:`.api_request.OFF_LOOP_BYTES`), its requests' keys are computed and a JSONL file's lines parsed there too, and
  the requests are matched :data:`BATCH_SLICE` at a time, the event loop serving other clients between slices, so no
  batch stalls the server; a big job's reply is encoded in a worker thread. A job is let go with its results when it
  is deleted or when its results file would expire (:data:`.files_api.FILE_TTL_S`, 48 h after creation).
- In record mode none of this runs: batch calls go through the recorder like any other call. Except with
  ``serve --record --local-files-batches`` (how ``helpers.setup`` records from the synthetic upstream, which has no
  Batch API): then jobs run here as in replay, answered from the generateContent calls recorded so far, and are not
  recorded themselves.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from ..cassettes.cassette import Cassette, CassetteError, canonical_json, request_key
from ..cassettes.matcher import Matcher, unmatched_message
from ..cassettes.store import CassetteStore
from ..pipeline.api_request import (
    API,
    Mode,
    api_error_response,
    error_response,
    json_response,
    parse_json,
    raw_json_response,
)
from ..wire.framing import ApiError, camel, error_json, json_bytes
from .files_api import VERSION, FileService, paginate, rfc3339, stable_id

MAX_INLINE_BATCH_BYTES = 20_000_000
"""The largest inline batch request, bytes: the API takes inline requests "for smaller batches that keep the total
request size under 20MB" and asks for a JSONL input file beyond (ai.google.dev/gemini-api/docs/batch-api, read
2026-12-06)."""
BATCH_SLICE = 256
"""Requests of a batch matched in one pass of the event loop; other clients' requests are served between passes
(matching one takes microseconds, so a slice holds the loop well under a millisecond)."""
PENDING_S = 1.0
"""Seconds a new job stays ``BATCH_STATE_PENDING`` at ``--speed`` 1 (a teaching choice; real jobs can wait hours)."""
RUNNING_S = 2.0
"""Seconds a job stays ``BATCH_STATE_RUNNING`` at ``--speed`` 1 before it succeeds (a teaching choice)."""
TERMINAL = ("BATCH_STATE_SUCCEEDED", "BATCH_STATE_FAILED", "BATCH_STATE_CANCELLED", "BATCH_STATE_EXPIRED")
INJECTABLE = ("BATCH_STATE_FAILED", "BATCH_STATE_EXPIRED")
"""The terminal states :func:`helpers.control.inject_batch_state` can force."""
TYPE_PREFIX = "type.googleapis.com/google.ai.generativelanguage.v1main."
"""The ``@type`` prefix of batch metadata and output in real responses (the SDK does not read it)."""
REQUEST_FIELDS = frozenset(
    [
        "model",
        "contents",
        "tools",
        "toolConfig",
        "safetySettings",
        "systemInstruction",
        "generationConfig",
        "cachedContent",
    ]
)
"""The fields of a ``GenerateContentRequest`` (ai.google.dev/api/generate-content, read 2026-11-22), camelCase."""


def unknown_field(request: dict[str, Any]) -> str | None:
    """The first top-level field of ``request`` that a ``GenerateContentRequest`` lacks (``config``, the SDK's name
    for ``generation_config``, is the usual one), or ``None``."""
    return next((k for k in request if camel(k) not in REQUEST_FIELDS), None)


def generate_path(model: str) -> str:
    """The version-less path of the ``generateContent`` call a batch request stands for."""
    return f"models/{model}:generateContent"


@dataclass
class Plan:
    """One request of a batch, prepared in a worker thread: either its result already (a malformed request), or the
    ``generateContent`` call it stands for, its request key, and what its result carries besides (``metadata`` of an
    inline request, a JSONL line's other fields)."""

    result: dict[str, Any] | None = None
    model: str = ""
    body: Any = None
    key: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    after: bool = False
    """``extra`` goes after the answer's fields (an inline request's ``metadata``), not before (a line's ``key``)."""


def _plan(model: str, req: Any, extra: dict[str, Any]) -> Plan:
    if not isinstance(req, dict):
        return Plan(extra | error_json(400, f"A batch request must be a GenerateContentRequest object, got {req!r}."))
    model = str(req.get("model") or model).removeprefix("models/")
    body = {k: v for k, v in req.items() if k != "model"}  # the model is in the path
    return Plan(None, model, body, request_key("POST", generate_path(model), {}, body), extra)


def plan_inline(model: str, requests: list[Any]) -> list[Plan]:
    """The plans of an inline batch's requests (blocking: for a worker thread).

    Raises:
        ApiError: 400 for a request with a field a ``GenerateContentRequest`` lacks: the real API parses the whole
            call first, so one bad field fails it, not one request.
    """
    plans = []
    for i, item in enumerate(requests):
        request_body = item.get("request") if isinstance(item, dict) else None
        unknown = unknown_field(request_body) if isinstance(request_body, dict) else None
        if unknown:
            where = f"batch.input_config.requests.requests[{i}].request"
            raise ApiError(400, f'Invalid JSON payload received. Unknown name "{unknown}" at {where!r}.')
        plan = _plan(model, request_body, {})
        if isinstance(item, dict) and "metadata" in item:  # passed back after the answer
            if plan.result is not None:
                plan.result["metadata"] = item["metadata"]
            plan.extra, plan.after = {"metadata": item["metadata"]}, True
        plans.append(plan)
    return plans


def plan_lines(model: str, data: bytes) -> list[Plan]:
    """The plans of a JSONL input file's lines (blocking: for a worker thread)."""
    shape = 'each line is {"key": "...", "request": {a GenerateContentRequest, REST field names}}'
    plans = []
    for number, text in _lines(data):
        try:
            line = json.loads(text)
        except json.JSONDecodeError as e:
            message = f"Line {number} of the input file is not JSON ({e.msg}, column {e.colno}); {shape}."
            plans.append(Plan(error_json(400, message)))
            continue
        if not isinstance(line, dict) or not isinstance(line.get("request"), dict):
            key = {"key": line["key"]} if isinstance(line, dict) and "key" in line else {}
            message = f'Line {number} of the input file has no "request" object; {shape}.'
            plans.append(Plan(key | error_json(400, message)))
            continue
        others = {k: v for k, v in line.items() if k != "request"}
        unknown = unknown_field(line["request"])
        if unknown:
            message = f'Line {number}: Invalid JSON payload received. Unknown name "{unknown}" in "request"; {shape}.'
            plans.append(Plan(others | error_json(400, message)))
            continue
        plans.append(_plan(model, line["request"], others))
    return plans


@dataclass
class Job:
    """A batch job in the server's memory.

    Attributes:
        id: the id after ``batches/``.
        version: the API version it was created with.
        model: the model id, without ``models/``.
        display_name: as given, or ``None``.
        created: seconds since the epoch.
        results: one result per request, in order: ``{"response" | "error", "metadata"?}`` inline, or a results-file
            line (the input line's other fields and ``"response" | "error"``).
        input_file: ``files/...`` for a JSONL job, ``None`` for an inline one.
        ended: ``(state, when)`` once cancelled or ended by injection.
        expires: when the server lets the job go, seconds since the epoch.
    """

    id: str
    version: str
    model: str
    display_name: str | None
    created: float
    results: list[dict[str, Any]]
    input_file: str | None = None
    ended: tuple[str, float] | None = None
    expires: float = float("inf")

    def state(self, now: float, speed: float) -> tuple[str, float]:
        """The job's state at ``now`` and when it began, seconds since the epoch."""
        if self.ended is not None:
            return self.ended
        running, succeeded = self.created + PENDING_S / speed, self.created + (PENDING_S + RUNNING_S) / speed
        if now < running:
            return "BATCH_STATE_PENDING", self.created
        if now < succeeded:
            return "BATCH_STATE_RUNNING", running
        return "BATCH_STATE_SUCCEEDED", succeeded

    def stats(self, now: float, speed: float) -> dict[str, str]:
        """``batchStats`` at ``now`` (frozen when the job ended early), zero counts left out as the API does."""
        until = min(now, self.ended[1]) if self.ended else now
        progress = ((until - self.created) * speed - PENDING_S) / RUNNING_S
        finished = self.results[: max(0, min(len(self.results), int(len(self.results) * progress)))]
        failed = sum("error" in r for r in finished)
        counts = {
            "requestCount": len(self.results),
            "successfulRequestCount": len(finished) - failed,
            "failedRequestCount": failed,
            "pendingRequestCount": len(self.results) - len(finished),
        }
        return {name: str(n) for name, n in counts.items() if n}


class BatchService:
    """The Batch API of one replay server: its routes and jobs.

    Args:
        mode: the server's mode; when it forwards batches upstream, only the control route is served here.
        speed: the server's ``--speed`` (a job's timeline is divided by it).
        store: the cassettes whose ``generateContent`` recordings answer the requests.
        matcher: the server's matcher (recordings take turns with direct calls).
        files: the Files service (JSONL input and results files, files still processing).
    """

    def __init__(self, mode: Mode, speed: float, store: CassetteStore, matcher: Matcher, files: FileService) -> None:
        self.mode, self.speed, self.store, self.matcher, self.files = mode, speed, store, matcher, files
        self.jobs: dict[str, dict[str, Job]] = defaultdict(dict)
        self._created: Counter[str] = Counter()
        self._expiry: list[tuple[float, str, str]] = []
        """``(expires, cassette, id)`` of every job, soonest first."""

    def _expire(self) -> None:
        """Let go of jobs past their expiry, with their results."""
        now = time.time()
        while self._expiry and self._expiry[0][0] <= now:
            _expires, cassette, job_id = heapq.heappop(self._expiry)
            jobs = self.jobs.get(cassette, {})
            jobs.pop(job_id, None)
            if not jobs:
                self.jobs.pop(cassette, None)

    def install(self, app: web.Application) -> None:
        """Add the Batch routes and the control route for injected states (before any catch-all route).

        When record mode forwards batches upstream, only the control route is added (it then explains that record
        mode cannot steer batches).
        """
        app.router.add_post("/_control/{cassette}/batches/{batch:[^/:]+}/state", self.inject)
        if self.mode.forwards_files_batches:
            return
        base = "/{cassette}/" + VERSION
        app.router.add_post(base + "/models/{model:[^/:]+}:batchGenerateContent", self.create)
        app.router.add_get(base + "/batches", self.list_jobs)
        app.router.add_get(base + "/batches/{batch:[^/:]+}", self.get_job)
        app.router.add_post(base + "/batches/{batch:[^/:]+}:cancel", self.cancel)
        app.router.add_delete(base + "/batches/{batch:[^/:]+}", self.delete_job)

    async def resource(self, cassette: str, job: Job) -> dict[str, Any]:
        """The job as the API reports it now; a succeeded JSONL job's results file is written on first sight (in a
        worker thread)."""
        now, speed = time.time(), self.speed
        state, since = job.state(now, speed)
        metadata: dict[str, Any] = {"@type": TYPE_PREFIX + "GenerateContentBatch", "model": f"models/{job.model}"}
        if job.display_name:
            metadata["displayName"] = job.display_name
        if job.input_file:
            metadata["inputConfig"] = {"fileName": job.input_file}
        output = await self._output(cassette, job) if state == "BATCH_STATE_SUCCEEDED" else None
        if output:
            metadata["output"] = output
        metadata.update(createTime=rfc3339(job.created), updateTime=rfc3339(since))
        if state in TERMINAL:
            metadata["endTime"] = rfc3339(since)
        metadata.update(batchStats=job.stats(now, speed), state=state, name=f"batches/{job.id}")
        operation: dict[str, Any] = {"name": f"batches/{job.id}", "metadata": metadata}
        if state in TERMINAL:
            operation["done"] = True
        if output:
            operation["response"] = {"@type": TYPE_PREFIX + "GenerateContentBatchOutput", **output}
        if state == "BATCH_STATE_FAILED":
            operation |= error_json(500, "Injected by helpers.control.inject_batch_state().", "INTERNAL")
        return operation

    async def _output(self, cassette: str, job: Job) -> dict[str, Any]:
        if job.input_file is None:
            return {"inlinedResponses": {"inlinedResponses": job.results}}
        file_id = f"batch-{job.id}"
        if file_id not in self.files.held(cassette):
            data = await asyncio.to_thread(_jsonl, job.results)
            if file_id not in self.files.held(cassette):  # another request may have made it meanwhile
                self.files.add(cassette, file_id, data, "application/jsonl", version=job.version, generated=True)
        return {"responsesFile": f"files/{file_id}"}

    async def _reply(self, body: dict[str, Any], results: int) -> web.Response:
        """A JSON reply of ``body``, encoded in a worker thread when it holds many results."""
        if results <= BATCH_SLICE:
            return json_response(body)
        return raw_json_response(await asyncio.to_thread(json_bytes, body))

    def _job(self, request: web.Request) -> tuple[str, Job]:
        """The cassette and job a request names.

        Raises:
            LookupError: no such job; the message says so in the API's words.
        """
        cassette, batch = request.match_info["cassette"], request.match_info["batch"]
        self._expire()
        job = self.jobs.get(cassette, {}).get(batch)  # .get: no entry made for a cassette named in passing
        if job is None:
            raise LookupError(
                f"Batch batches/{batch} was not found in cassette '{cassette}'. (Replay: batch jobs live in this "
                "server's memory from their creation until the server stops or they are deleted.)"
            )
        return cassette, job

    # Routes -------------------------------------------------------------------------------------------------------

    async def create(self, request: web.Request) -> web.Response:
        """``POST {v}/models/{model}:batchGenerateContent``: answer every request now, report the job as pending."""
        api = request[API]
        cassette, version, model = api.cassette, api.version, request.match_info["model"]
        try:
            recorded = self.store.get(cassette)
        except CassetteError as e:
            return error_response(400, str(e), "FAILED_PRECONDITION")
        body = api.body
        try:
            batch = body["batch"]
            config = batch["inputConfig"]
            if not isinstance(config, dict):
                raise TypeError
        except (KeyError, TypeError):
            return error_response(
                400,
                'Invalid batch: the body must be {"batch": {"displayName": ..., "inputConfig": {"requests": '
                '{"requests": [...]}} or {"fileName": "files/..."}}} (what client.batches.create() sends).',
            )
        if "fileName" in config:
            try:
                stored = self.files.lookup(cassette, str(config["fileName"]))
            except ApiError as e:
                return api_error_response(e)
            plans = await asyncio.to_thread(plan_lines, model, stored.data)
            input_file = f"files/{stored.id}"
        else:
            requests = (config.get("requests") or {}).get("requests")
            if not isinstance(requests, list) or not requests:
                return error_response(400, "A batch needs at least one request in inputConfig.requests.requests.")
            if len(api.raw_body) > MAX_INLINE_BATCH_BYTES:
                return error_response(
                    400,
                    f"Invalid value at 'batch.inputConfig.requests': an inline batch request is {len(api.raw_body)} "
                    f"bytes, over the API's limit of {MAX_INLINE_BATCH_BYTES} (20 MB). Put the requests in a JSONL "
                    "file (client.files.upload) and pass its name as src.",
                )
            try:
                plans = await asyncio.to_thread(plan_inline, model, requests)
            except ApiError as e:
                return api_error_response(e)
            input_file = None
        results = await self._answer_all(recorded, plans)
        self._created[cassette] += 1
        key = await asyncio.to_thread(canonical_json, body) if len(plans) > BATCH_SLICE else canonical_json(body)
        job_id = stable_id(36, cassette, str(self._created[cassette]), key)
        now = time.time()
        expires = now + self.files.limits.file_ttl_s
        job = Job(job_id, version, model, batch.get("displayName"), now, results, input_file, expires=expires)
        self._expire()
        self.jobs[cassette][job_id] = job
        heapq.heappush(self._expiry, (expires, cassette, job_id))
        return await self._reply(await self.resource(cassette, job), len(results))

    async def get_job(self, request: web.Request) -> web.Response:
        """``GET {v}/batches/{id}``: the job now."""
        try:
            cassette, job = self._job(request)
        except LookupError as e:
            return error_response(404, str(e), "NOT_FOUND")
        return await self._reply(await self.resource(cassette, job), len(job.results))

    async def list_jobs(self, request: web.Request) -> web.Response:
        """``GET {v}/batches``: the cassette's jobs, oldest first, as ``operations`` (what the SDK reads)."""
        cassette = request[API].cassette
        self._expire()
        try:
            page, token = paginate(list(self.jobs.get(cassette, {}).values()), dict(request.query))
        except ApiError as e:
            return api_error_response(e)
        body: dict[str, Any] = {"operations": [await self.resource(cassette, job) for job in page]} if page else {}
        if token:
            body["nextPageToken"] = token
        return await self._reply(body, sum(len(job.results) for job in page))

    async def cancel(self, request: web.Request) -> web.Response:
        """``POST {v}/batches/{id}:cancel``: a pending or running job ends ``BATCH_STATE_CANCELLED``; answers ``{}``."""
        return self._end(request, "BATCH_STATE_CANCELLED") or json_response({})

    async def delete_job(self, request: web.Request) -> web.Response:
        """``DELETE {v}/batches/{id}``: forget the job (its results file stays); answers ``{}``."""
        try:
            cassette, job = self._job(request)
        except LookupError as e:
            return error_response(404, str(e), "NOT_FOUND")
        del self.jobs[cassette][job.id]
        return json_response({})

    async def inject(self, request: web.Request) -> web.Response:
        """``POST /_control/{cassette}/batches/{id}/state`` with ``{"state": "FAILED" | "EXPIRED"}``: end the job so."""
        if self.mode.forwards_files_batches:
            return error_response(
                400, "This server records from the real API, whose batch jobs cannot be steered; replay to inject."
            )
        try:
            state = parse_json(await request.read() or b"{}").get("state")
        except (ApiError, AttributeError):
            state = None
        wanted = f"BATCH_STATE_{str(state).upper().removeprefix('BATCH_STATE_').removeprefix('JOB_STATE_')}"
        if wanted not in INJECTABLE:
            return error_response(
                400, f'"state" must be "FAILED" or "EXPIRED" (BATCH_STATE_* and JOB_STATE_* work too), got {state!r}.'
            )
        return self._end(request, wanted) or json_response({})

    def _end(self, request: web.Request, state: str) -> web.Response | None:
        """End the named job now in ``state``; an error response if it does not exist or has already ended."""
        try:
            _, job = self._job(request)
        except LookupError as e:
            return error_response(404, str(e), "NOT_FOUND")
        now = time.time()
        current, _ = job.state(now, self.speed)
        if current in TERMINAL:
            return error_response(
                400, f"Batch batches/{job.id} has already ended in state {current}.", "FAILED_PRECONDITION"
            )
        job.ended = (state, now)
        return None

    # Answering requests from recordings ---------------------------------------------------------------------------

    async def _answer_all(self, cassette: Cassette, plans: list[Plan]) -> list[dict[str, Any]]:
        """The result of each plan, in order: matched :data:`BATCH_SLICE` at a time (other requests are served between
        slices); the "no recording" messages, which compare a request with the whole cassette, are written in a worker
        thread, once per distinct request."""
        results: list[dict[str, Any]] = []
        unmatched: dict[str, list[int]] = defaultdict(list)
        for start in range(0, len(plans), BATCH_SLICE):
            if start:
                await asyncio.sleep(0)
            for plan in plans[start : start + BATCH_SLICE]:
                result = plan.result if plan.result is not None else self._answer(cassette, plan)
                if result is None:
                    unmatched[plan.key].append(len(results))
                    result = {}
                results.append(result)
        if unmatched:
            firsts = {key: plans[indexes[0]] for key, indexes in unmatched.items()}
            messages = await asyncio.to_thread(
                lambda: {
                    key: unmatched_message(cassette, "POST", generate_path(plan.model), {}, plan.body)
                    for key, plan in firsts.items()
                }
            )
            for key, indexes in unmatched.items():
                for i in indexes:
                    results[i] = error_json(404, messages[key], "NOT_FOUND")
        return [
            result if plan.result is not None else result | plan.extra if plan.after else plan.extra | result
            for plan, result in zip(plans, results, strict=True)
        ]

    def _answer(self, cassette: Cassette, plan: Plan) -> dict[str, Any] | None:
        """``{"response": ...}`` or ``{"error": ...}`` for one request of a batch; ``None`` when nothing recorded
        answers it."""
        refusal = self.files.precondition_error(cassette.name, plan.body)
        if refusal is not None:
            return refusal
        exchange = self.matcher.next(cassette, plan.key)
        if exchange is None or "chunks" in exchange.response:
            return None
        response = exchange.response
        body = response["body"]
        if response["status"] == 200:
            return {"response": body}
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            return {"error": body["error"]}
        return error_json(response["status"], f"The recorded call failed with HTTP {response['status']}.")


def _jsonl(results: list[dict[str, Any]]) -> bytes:
    """A results file's bytes: one JSON line per result."""
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in results).encode()


def _lines(data: bytes) -> list[tuple[int, str]]:
    """The non-blank lines of a JSONL file with their 1-based numbers (bytes that are not UTF-8 become U+FFFD)."""
    text = data.decode("utf-8", "replace")
    return [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
