"""The Files and Batch APIs of the replay server, through the real SDK over real HTTP, sync and async."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import random
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from google import genai
from google.genai import errors, types

from helpers import control
from helpers.models import FLASH
from helpers.replay.app.authoring import author
from helpers.replay.app.replay_server import CassetteStore, Mode, ReplayServer
from helpers.replay.cassettes.cassette import Cassette, Exchange
from helpers.replay.pipeline.socket_server import running
from helpers.replay.services.batches_api import PENDING_S, RUNNING_S
from helpers.replay.upstream.synthetic import Script, ScriptEntry, SyntheticUpstream
from helpers.workbook import WorkbookError

from .conftest import Server, generate_exchange, start_server, write_cassette

SPEED = 2.0
"""The test server's --speed: video processing takes 1 s, a batch is pending 0.5 s then running 1 s."""
COLOUR, FRUIT, MISSING = "Name a colour.", "Name a fruit.", "Nobody recorded this prompt."
FRUIT_CONFIG = {"temperature": 0, "system_instruction": "Answer in one word.", "max_output_tokens": 20}
CLIP = "Describe the clip."
VIDEO = b"\x00\x00\x00\x18ftypmp42 not really a video"
VIDEO_URI = "https://generativelanguage.googleapis.com/v1beta/files/recordedvideo1"
KEY = "AIza" + "Sy" + "F1l3sB4tchT3stK3yN0tRea1xyz1234"  # key-shaped on purpose; built in pieces


def digest(data: bytes) -> str:
    """The API's ``sha256Hash``: base64 of the hexadecimal digest."""
    return base64.b64encode(hashlib.sha256(data).hexdigest().encode()).decode()


def video_exchanges() -> list[Exchange]:
    """A recorded upload of VIDEO as files/recordedvideo1, and a recorded call that uses it."""
    file = {"name": "files/recordedvideo1", "uri": VIDEO_URI, "sha256Hash": digest(VIDEO)}
    upload = Exchange(
        {"method": "POST", "path": "upload/files", "query": {"upload_protocol": "resumable"}, "body": None},
        {"status": 200, "offset_s": 0.1, "body": {"file": file}},
        {"source": "synthetic", "date": "2026-11-22", "latency_model": "fixed, for tests", "based_on": "tests"},
    )
    call = generate_exchange(CLIP, "A short test clip.", 0.01)
    # As google-genai 3.6.1 sends a File part: inside fileData, the field names stay snake_case.
    call.request["body"]["contents"][0]["parts"].insert(
        0, {"fileData": {"file_uri": VIDEO_URI, "mime_type": "video/mp4"}}
    )
    return [upload, call]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Cassette ``fb``: COLOUR and FRUIT (with FRUIT_CONFIG) authored through the real SDK, and the video call."""
    path = tmp_path_factory.mktemp("fb")
    script = Script([ScriptEntry(COLOUR, ["Blue."]), ScriptEntry(FRUIT, ["Apple."])])

    async def make() -> None:
        await author(path, "fb", script, FLASH, COLOUR)
        await author(path, "fb", script, FLASH, FRUIT, config=FRUIT_CONFIG)

    asyncio.run(make())
    cassette = Cassette.load(path / "fb.json")
    cassette.exchanges += video_exchanges()
    cassette.save()
    return path


@pytest.fixture(scope="module")
def server(folder: Path) -> Iterator[Server]:
    srv = start_server("--port", "0", "--cassettes", str(folder), "--speed", str(SPEED))
    yield srv
    srv.stop()


def client(url: str, cassette: str = "fb") -> genai.Client:
    return genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=f"{url}/{cassette}/"))


def timestamp(rfc3339: str) -> float:
    """Seconds since the epoch of a timestamp as the API writes it (``2026-11-22T10:00:00.123456Z``)."""
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def wait_done(c: genai.Client, job: types.BatchJob, timeout_s: float = 10.0) -> types.BatchJob:
    deadline = time.monotonic() + timeout_s
    while not job.done:
        assert time.monotonic() < deadline, f"{job.name} still {job.state}"
        time.sleep(0.05)
        job = c.batches.get(name=job.name)
    return job


async def await_done(c: genai.Client, job: types.BatchJob, timeout_s: float = 10.0) -> types.BatchJob:
    deadline = time.monotonic() + timeout_s
    while not job.done:
        assert time.monotonic() < deadline, f"{job.name} still {job.state}"
        await asyncio.sleep(0.05)
        job = await c.aio.batches.get(name=job.name)
    return job


# Files --------------------------------------------------------------------------------------------------------------


def test_sync_upload_of_9_mib_round_trips_byte_for_byte(server: Server) -> None:
    data = random.Random(0).randbytes(9 * 1024 * 1024 + 3)  # two chunks for the SDK: 8 MiB, then the rest
    c = client(server.url)
    file = c.files.upload(file=io.BytesIO(data), config={"mime_type": "application/octet-stream", "display_name": "d"})
    assert file.name is not None and len(file.name) == len("files/") + 12 and file.name.startswith("files/")
    assert (file.size_bytes, file.sha256_hash, file.display_name) == (len(data), digest(data), "d")
    assert (file.state, file.source, file.download_uri) == (types.FileState.ACTIVE, types.FileSource.UPLOADED, None)
    assert file.expiration_time - file.create_time == timedelta(hours=48)
    assert file.uri == f"https://generativelanguage.googleapis.com/v1/{file.name}"
    assert c.files.get(name=file.name) == file
    assert c.files.download(file=file.name) == data


async def test_async_zero_byte_upload_round_trips(server: Server) -> None:
    c = client(server.url)
    file = await c.aio.files.upload(file=io.BytesIO(b""), config={"mime_type": "text/plain"})
    assert (file.size_bytes, file.sha256_hash, file.display_name) == (0, digest(b""), None)
    assert await c.aio.files.download(file=file.name) == b""
    await c.aio.aclose()


async def test_resumable_protocol_url_chunks_offsets_and_errors(server: Server) -> None:
    start = {
        "X-Goog-Upload-Protocol": "resumable",
        "X-Goog-Upload-Command": "start",
        "X-Goog-Upload-Header-Content-Length": "6",
        "X-Goog-Upload-Header-Content-Type": "text/plain",
    }
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{server.url}/fb/upload/v1beta/files", json={"file": {}}, headers=start) as r:
            assert r.status == 200 and r.headers["x-goog-upload-status"] == "active"
            url = r.headers["x-goog-upload-url"]
        assert url.startswith(f"{server.url}/fb/upload/v1beta/files?upload_id="), "must name this server and cassette"

        async def chunk(command: str, offset: int, data: bytes) -> aiohttp.ClientResponse:
            headers = {"X-Goog-Upload-Command": command, "X-Goog-Upload-Offset": str(offset)}
            async with s.post(url, data=data, headers=headers) as r:
                await r.read()
                return r

        first = await chunk("upload", 0, b"abc")
        assert (first.status, first.headers["x-goog-upload-status"]) == (200, "active")
        wrong = await chunk("upload, finalize", 2, b"def")
        assert (wrong.status, wrong.headers["x-goog-upload-status"]) == (400, "final")
        last = {"X-Goog-Upload-Command": "upload, finalize", "X-Goog-Upload-Offset": "3"}
        async with s.post(url, data=b"def", headers=last) as r:
            assert (r.status, r.headers["x-goog-upload-status"]) == (200, "final")
            file = (await r.json())["file"]
        assert (file["sizeBytes"], file["sha256Hash"], file["state"]) == ("6", digest(b"abcdef"), "ACTIVE")
        async with s.get(f"{server.url}/fb/v1beta/{file['name']}:download", params={"alt": "media"}) as r:
            assert await r.read() == b"abcdef"
        async with s.get(f"{server.url}/fb/v1beta/files", params={"pageToken": "nonsense"}) as r:
            assert r.status == 400 and "page token" in (await r.json())["error"]["message"]


def test_video_is_processing_then_active_and_using_it_early_is_failed_precondition(server: Server) -> None:
    c = client(server.url)
    image = c.files.upload(file=io.BytesIO(b"\x89PNG"), config={"mime_type": "image/png"})
    assert image.state == types.FileState.ACTIVE, "only video goes through PROCESSING"
    video = c.files.upload(file=io.BytesIO(VIDEO), config={"mime_type": "video/mp4"})
    assert (video.name, video.uri) == ("files/recordedvideo1", VIDEO_URI), "recorded uploads keep their recorded name"
    assert video.state == types.FileState.PROCESSING
    with pytest.raises(errors.ClientError) as caught:
        c.models.generate_content(model=FLASH, contents=[video, CLIP])
    assert (caught.value.code, caught.value.status) == (400, "FAILED_PRECONDITION")
    assert "not in an ACTIVE state" in caught.value.message
    waited = time.monotonic()
    while video.state == types.FileState.PROCESSING:
        assert time.monotonic() - waited < 5, "the video never became ACTIVE"
        time.sleep(0.05)
        video = c.files.get(name=video.name)
    assert video.update_time > video.create_time
    assert c.models.generate_content(model=FLASH, contents=[video, CLIP]).text == "A short test clip."


async def test_async_list_pages_and_delete(server: Server) -> None:
    c = client(server.url, cassette="listing")  # files are per cassette: this one holds only what we upload here
    names = [
        (await c.aio.files.upload(file=io.BytesIO(bytes([i])), config={"mime_type": "text/plain"})).name
        for i in range(3)
    ]
    first = await c.aio.files.list(config={"page_size": 2})
    assert [f.name for f in first.page] == names[:2] and first.config["page_token"]
    assert [f.name async for f in first] == names
    await c.aio.files.delete(name=names[1])
    with pytest.raises(errors.ClientError) as caught:
        await c.aio.files.get(name=names[1])
    assert (caught.value.code, caught.value.status) == (403, "PERMISSION_DENIED"), "what the real API answers"
    assert [f.name async for f in await c.aio.files.list()] == [names[0], names[2]]
    await c.aio.aclose()


def test_an_upload_deleted_and_made_again_gets_its_id_back(server: Server) -> None:
    """So calls recorded with a file's uri still match when a learner re-runs an upload cell (04_multimodal)."""
    c = client(server.url, cassette="reupload")

    def upload(**config: str) -> types.File:
        return c.files.upload(file=io.BytesIO(b"same bytes"), config={"mime_type": "text/plain", **config})

    first, second = upload(), upload()
    assert second.name != first.name, "two files at once need two ids"
    c.files.delete(name=first.name)
    again = upload()
    assert (again.name, again.uri) == (first.name, first.uri)
    assert upload(display_name="x").name not in (first.name, second.name), "the display name is part of the id"


# Batches ------------------------------------------------------------------------------------------------------------


def test_inline_batch_is_answered_from_recordings_in_request_order(server: Server) -> None:
    c = client(server.url)
    requests = [
        {"contents": FRUIT, "config": FRUIT_CONFIG, "metadata": {"key": "fruit"}},
        {"contents": MISSING, "metadata": {"key": "missing"}},
        {"contents": COLOUR, "metadata": {"key": "colour"}},
    ]
    job = c.batches.create(model=FLASH, src=requests, config={"display_name": "inline"})
    assert (job.state, job.display_name, job.model) == (types.JobState.JOB_STATE_PENDING, "inline", f"models/{FLASH}")
    assert job.name in [j.name for j in c.batches.list()]
    job = wait_done(c, job)
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED and job.end_time is not None
    fruit, missing, colour = job.dest.inlined_responses
    assert [r.metadata for r in (fruit, missing, colour)] == [{"key": "fruit"}, {"key": "missing"}, {"key": "colour"}]
    assert (fruit.response.text, colour.response.text) == ("Apple.", "Blue.")
    assert missing.response is None and missing.error.code == 404
    assert "No recording in cassette 'fb'" in missing.error.message and MISSING in missing.error.message
    c.batches.delete(name=job.name)
    with pytest.raises(errors.ClientError) as caught:
        c.batches.get(name=job.name)
    assert caught.value.code == 404


async def test_async_jsonl_batch_is_answered_from_recordings_joined_by_key(server: Server) -> None:
    c = client(server.url)
    fruit = {  # REST field names as a JSONL file spells them: snake_case, no roles, an int temperature
        "contents": [{"parts": [{"text": FRUIT}]}],
        "system_instruction": {"parts": [{"text": "Answer in one word."}]},
        "generation_config": {"temperature": 0, "max_output_tokens": 20},
    }
    lines = [
        {"key": "fruit", "request": fruit},
        {"key": "colour", "request": {"contents": [{"parts": [{"text": COLOUR}], "role": "user"}]}},
        {"key": "missing", "request": {"contents": [{"parts": [{"text": MISSING}]}]}},
        # The trap between the two formats: `config` is the SDK's name; a JSONL line needs `generation_config`.
        {"key": "trap", "request": {"contents": [{"parts": [{"text": COLOUR}]}], "config": {"temperature": 0}}},
    ]
    jsonl = "".join(json.dumps(line) + "\n" for line in lines) + "{not json\n"
    source = await c.aio.files.upload(file=io.BytesIO(jsonl.encode()), config={"mime_type": "application/jsonl"})
    job = await await_done(c, await c.aio.batches.create(model=FLASH, src=source.name))
    assert job.state == types.JobState.JOB_STATE_SUCCEEDED and job.dest.file_name.startswith("files/batch-")
    results = [json.loads(line) for line in (await c.aio.files.download(file=job.dest.file_name)).splitlines()]
    keys = [r.get("key") for r in results]
    assert keys == ["fruit", "colour", "missing", "trap", None], "one line per input line, in order"
    by_key = {r.get("key"): r for r in results}
    assert by_key["fruit"]["response"]["candidates"][0]["content"]["parts"][0]["text"] == "Apple."
    assert by_key["colour"]["response"]["candidates"][0]["content"]["parts"][0]["text"] == "Blue."
    assert by_key["missing"]["error"]["status"] == "NOT_FOUND" and "response" not in by_key["missing"]
    assert by_key["trap"]["error"]["code"] == 400 and 'Unknown name "config"' in by_key["trap"]["error"]["message"]
    assert by_key[None]["error"]["code"] == 400 and "Line 5" in by_key[None]["error"]["message"]
    output = await c.aio.files.get(name=job.dest.file_name)
    assert output.source == types.FileSource.GENERATED and output.download_uri
    await c.aio.aclose()


async def test_job_resource_timeline_and_batch_stats_on_the_wire(server: Server) -> None:
    requests = [{"request": {"contents": [{"parts": [{"text": p}], "role": "user"}]}} for p in (COLOUR, MISSING)]
    body = {"batch": {"inputConfig": {"requests": {"requests": requests}}}}
    async with aiohttp.ClientSession() as s:
        trap = {"batch": {"inputConfig": {"requests": {"requests": [{"request": {"contents": [], "config": {}}}]}}}}
        async with s.post(f"{server.url}/fb/v1beta/models/{FLASH}:batchGenerateContent", json=trap) as r:
            assert r.status == 400 and 'Unknown name "config"' in (await r.json())["error"]["message"]
        created = time.monotonic()
        async with s.post(f"{server.url}/fb/v1beta/models/{FLASH}:batchGenerateContent", json=body) as r:
            job = await r.json()
        meta = job["metadata"]
        assert meta["@type"].endswith("GenerateContentBatch") and meta["name"] == job["name"]
        assert (meta["state"], "done" in job) == ("BATCH_STATE_PENDING", False)
        assert meta["batchStats"] == {"requestCount": "2", "pendingRequestCount": "2"}, "int64 as strings, no zeros"
        seen = []
        while meta["state"] != "BATCH_STATE_SUCCEEDED":
            assert time.monotonic() - created < 10
            await asyncio.sleep(0.02)
            async with s.get(f"{server.url}/fb/v1beta/{job['name']}") as r:
                job = await r.json()
            meta = job["metadata"]
            seen.append(meta["state"])
        elapsed = time.monotonic() - created
    assert "BATCH_STATE_RUNNING" in seen
    # By the job's own timeline (the server's clock): it ended exactly when the timeline says. The client saw it end
    # no sooner (its clock started before the job was created); how much later is the machine's business.
    expected = (PENDING_S + RUNNING_S) / SPEED
    lasted = timestamp(meta["endTime"]) - timestamp(meta["createTime"])
    assert abs(lasted - expected) < 1e-5, (lasted, expected)
    assert elapsed >= expected - 0.001, f"expected {expected:.2f} s at speed {SPEED}, saw it end after {elapsed:.2f} s"
    assert meta["batchStats"] == {"requestCount": "2", "successfulRequestCount": "1", "failedRequestCount": "1"}
    assert job["done"] is True and "endTime" in meta
    assert job["response"]["@type"].endswith("GenerateContentBatchOutput")
    assert job["response"]["inlinedResponses"] == meta["output"]["inlinedResponses"]


def test_cancel_gives_cancelled_and_a_finished_job_cannot_be_cancelled(server: Server) -> None:
    c = client(server.url)
    job = c.batches.create(model=FLASH, src=[{"contents": COLOUR}])
    c.batches.cancel(name=job.name)
    job = c.batches.get(name=job.name)
    assert (job.state, job.dest) == (types.JobState.JOB_STATE_CANCELLED, None)
    with pytest.raises(errors.ClientError) as caught:
        c.batches.cancel(name=job.name)
    assert (caught.value.code, caught.value.status) == (400, "FAILED_PRECONDITION")


async def test_injected_failed_and_expired_are_final(server: Server) -> None:
    c = client(server.url)
    failing = await c.aio.batches.create(model=FLASH, src=[{"contents": COLOUR}])
    expiring = await c.aio.batches.create(model=FLASH, src=[{"contents": COLOUR}])
    steer = {"cassette": "fb", "server_url": server.url}
    await asyncio.to_thread(control.inject_batch_state, failing.name, "FAILED", **steer)
    await asyncio.to_thread(control.inject_batch_state, expiring.name, types.JobState.JOB_STATE_EXPIRED, **steer)
    await asyncio.sleep(1.0 / SPEED * 3)  # past the time both would have succeeded
    failing, expiring = [await c.aio.batches.get(name=job.name) for job in (failing, expiring)]
    assert (failing.state, failing.dest) == (types.JobState.JOB_STATE_FAILED, None)
    assert (expiring.state, expiring.dest) == (types.JobState.JOB_STATE_EXPIRED, None)
    with pytest.raises(WorkbookError, match="already ended"):
        await asyncio.to_thread(control.inject_batch_state, failing.name, "EXPIRED", **steer)
    with pytest.raises(WorkbookError, match='"state" must be "FAILED" or "EXPIRED"'):
        await asyncio.to_thread(control.inject_batch_state, failing.name, "RUNNING", **steer)
    await c.aio.aclose()


# Record mode --------------------------------------------------------------------------------------------------------


async def test_record_mode_proxies_and_records_metadata_never_bytes_or_key(tmp_path: Path) -> None:
    upstream_dir, recorded_dir = tmp_path / "upstream", tmp_path / "recorded"
    write_cassette(upstream_dir, "up", [generate_exchange(COLOUR, "Blue.", 0.01)])
    data = random.Random(1).randbytes(9 * 1024 * 1024)
    store = CassetteStore(recorded_dir)
    # The stand-in upstream is a replay server (its own upload URLs name its own port); the recorder sits in front.
    async with (
        running(ReplayServer(CassetteStore(upstream_dir), speed=10).app()) as upstream,
        running(ReplayServer(store, mode=Mode.RECORD, upstream=f"{upstream}/up").app()) as url,
    ):
        headers = {
            "X-Goog-Upload-Protocol": "resumable",
            "X-Goog-Upload-Command": "start",
            "X-Goog-Upload-Header-Content-Length": "1",
            "X-Goog-Upload-Header-Content-Type": "text/plain",
            "x-goog-api-key": KEY,
        }
        async with aiohttp.ClientSession() as s, s.post(f"{url}/rec/upload/v1/files", headers=headers) as r:
            assert r.headers["x-goog-upload-url"].startswith(f"{url}/rec/upload/v1/files?upload_id=")
        c = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=f"{url}/rec/"))
        file = await c.aio.files.upload(file=io.BytesIO(data), config={"mime_type": "image/png"})
        assert await c.aio.files.download(file=file.name) == data
        assert (await c.aio.files.get(name=file.name)).sha256_hash == digest(data)
        job = await await_done(c, await c.aio.batches.create(model=FLASH, src=[{"contents": COLOUR}]))
        assert job.dest.inlined_responses[0].response.text == "Blue."
        await c.aio.aclose()

    text = (recorded_dir / "rec.json").read_text()
    assert KEY not in text and len(text) < 50_000, "no key and no file bytes in the cassette"
    exchanges = Cassette.load(recorded_dir / "rec.json").exchanges
    paths = [(e.request["method"], e.request["path"]) for e in exchanges]
    assert paths[:5] == [
        ("POST", "upload/files"),  # the raw start above
        ("POST", "upload/files"),  # the SDK's start, with the file's metadata
        ("POST", "upload/files"),  # the finished upload: the File
        ("GET", f"files/{file.name.removeprefix('files/')}:download"),
        ("GET", file.name),
    ]
    assert exchanges[1].request["body"] == {"file": {"mime_type": "image/png", "size_bytes": len(data)}}
    assert exchanges[2].response["body"]["file"]["name"] == file.name
    assert exchanges[2].provenance["sdk"] == f"google-genai {genai.__version__}"
    assert exchanges[3].response["body"] is None
    assert ("POST", f"models/{FLASH}:batchGenerateContent") in paths and ("GET", job.name) in paths

    # Replayed, the same upload takes the recorded name, so recorded calls naming its uri still match.
    async with running(ReplayServer(CassetteStore(recorded_dir)).app()) as url:
        c = genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=f"{url}/rec/"))
        again = await c.aio.files.upload(file=io.BytesIO(data), config={"mime_type": "image/png"})
        await c.aio.aclose()
    assert (again.name, again.uri) == (file.name, file.uri)


async def test_record_mode_does_not_keep_the_400_of_a_file_still_processing(tmp_path: Path) -> None:
    """Replay derives that 400 from its own files; kept, it would answer the same call made once the file is ACTIVE."""
    upstream_dir, recorded_dir = tmp_path / "upstream", tmp_path / "recorded"
    write_cassette(upstream_dir, "up", video_exchanges())
    store = CassetteStore(recorded_dir)
    async with (
        running(ReplayServer(CassetteStore(upstream_dir), speed=10).app()) as upstream,
        running(ReplayServer(store, mode=Mode.RECORD, upstream=f"{upstream}/up").app()) as url,
    ):
        c = genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=f"{url}/rec/"))
        video = await c.aio.files.upload(file=io.BytesIO(VIDEO), config={"mime_type": "video/mp4"})
        with pytest.raises(errors.ClientError) as caught:
            await c.aio.models.generate_content(model=FLASH, contents=[video, CLIP])
        assert caught.value.status == "FAILED_PRECONDITION"
        while video.state == types.FileState.PROCESSING:
            await asyncio.sleep(0.05)
            video = await c.aio.files.get(name=video.name)
        assert (await c.aio.models.generate_content(model=FLASH, contents=[video, CLIP])).text == "A short test clip."
        await c.aio.aclose()
    calls = [e for e in Cassette.load(recorded_dir / "rec.json").exchanges if e.request["path"].startswith("models/")]
    assert [e.response["status"] for e in calls] == [200]


async def test_record_mode_without_upstream_says_so(tmp_path: Path) -> None:
    store = CassetteStore(tmp_path)
    async with running(ReplayServer(store, mode=Mode.RECORD, upstream="http://127.0.0.1:9").app()) as url:
        c = genai.Client(api_key=KEY, http_options=types.HttpOptions(base_url=f"{url}/rec/"))
        with pytest.raises(errors.ServerError) as caught:
            await c.aio.files.upload(file=io.BytesIO(b"x"), config={"mime_type": "text/plain"})
        await c.aio.aclose()
    assert caught.value.code == 502 and "could not reach the upstream http://127.0.0.1:9" in caught.value.message


async def test_record_mode_with_local_files_batches_answers_batches_from_what_it_just_recorded(tmp_path: Path) -> None:
    # How helpers.setup records from the synthetic upstream, which has neither a Files nor a Batch API.
    store = CassetteStore(tmp_path)
    script = Script([ScriptEntry(COLOUR, ["Blue."])])
    async with running(SyntheticUpstream(script).app()) as upstream:
        server = ReplayServer(store, speed=SPEED, mode=Mode.RECORD_LOCAL, upstream=upstream)
        async with running(server.app()) as url:
            c = genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=f"{url}/rec/"))
            assert (await c.aio.models.generate_content(model=FLASH, contents=COLOUR)).text == "Blue."
            line = {"key": "colour", "request": {"contents": [{"parts": [{"text": COLOUR}]}]}}
            source = await c.aio.files.upload(
                file=io.BytesIO(json.dumps(line).encode()), config={"mime_type": "application/jsonl"}
            )
            job = await await_done(c, await c.aio.batches.create(model=FLASH, src=source.name))
            results = (await c.aio.files.download(file=job.dest.file_name)).decode()
            assert json.loads(results)["response"]["candidates"][0]["content"]["parts"][0]["text"] == "Blue."
            doomed = await c.aio.batches.create(model=FLASH, src=[{"contents": COLOUR}])
            steer = {"cassette": "rec", "server_url": url}
            await asyncio.to_thread(control.inject_batch_state, doomed.name, "EXPIRED", **steer)
            assert (await c.aio.batches.get(name=doomed.name)).state == types.JobState.JOB_STATE_EXPIRED
            await c.aio.aclose()
    paths = [e.request["path"] for e in Cassette.load(tmp_path / "rec.json").exchanges]
    assert paths == [f"models/{FLASH}:generateContent"], "only the model call is recorded"
