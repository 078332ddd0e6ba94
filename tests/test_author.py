"""Authoring synthetic exchanges: the CLI, the chunking and config rules of the synthetic upstream, provenance."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from google import genai
from google.genai import types
from nbclient.exceptions import CellExecutionError

from helpers.models import FLASH, PROFILES
from helpers.replay.app.authoring import execute_notebook, keep_takes
from helpers.replay.cassettes.cassette import Cassette
from helpers.replay.upstream.synthetic import chunk_text, estimate_tokens, merge_chunks, synthesize

from .conftest import generate_exchange, start_server, write_cassette

TEXT = (
    "Sunlight scatters off the molecules of the air. Blue light, with its shorter wavelength, scatters far more "
    "than red, so the sky looks blue from every direction. At sunset the light crosses more air, the blue is "
    "scattered away, and reds and oranges remain."
)


def test_author_cli_records_labelled_streams_with_the_given_profile(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "helpers.replay", "author", "demo", "--prompt", "Why is the sky blue?",
         "--text", TEXT, "--stream", "--repeat", "3", "--ttft-s", "0.05", "--tokens-per-s", "1000",
         "--cassettes", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "authored 3 synthetic exchange(s) into demo\n"
    exchanges = Cassette.load(tmp_path / "demo.json").exchanges
    assert len(exchanges) == 3
    for exchange in exchanges:
        assert exchange.provenance["source"] == "synthetic"
        assert "median 0.05 s" in exchange.provenance["latency_model"]
        assert "given on the command line" in exchange.provenance["based_on"]
        chunks = exchange.response["chunks"]
        assert "".join(c["data"]["candidates"][0]["content"]["parts"][0]["text"] for c in chunks) == TEXT
        offsets = [c["offset_s"] for c in chunks]
        assert offsets == sorted(offsets) and 0.01 < offsets[0] < 0.5
        assert chunks[-1]["data"]["candidates"][0]["finishReason"] == "STOP"
        assert chunks[-1]["data"]["usageMetadata"]["candidatesTokenCount"] == estimate_tokens(TEXT)
        assert "candidatesTokenCount" not in chunks[0]["data"]["usageMetadata"]

    server = start_server("--port", "0", "--cassettes", str(tmp_path))
    try:
        client = genai.Client(api_key="k", http_options=types.HttpOptions(base_url=f"{server.url}/demo/"))
        stream = client.models.generate_content_stream(model=FLASH, contents="Why is the sky blue?")
        assert "".join(chunk.text for chunk in stream) == TEXT
    finally:
        server.stop()


def test_author_cli_rejects_an_unknown_model(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "helpers.replay", "author", "demo", "--prompt", "p", "--text", "t",
         "--model", "gemini-9", "--cassettes", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and "invalid choice: 'gemini-9'" in result.stderr
    assert not (tmp_path / "demo.json").exists()


def test_chunks_join_back_and_start_short() -> None:
    pieces = chunk_text(TEXT)
    assert "".join(pieces) == TEXT
    assert pieces[0] == "Sunlight scatters off "
    assert all(len(p) <= 160 for p in pieces[1:])
    assert chunk_text("") == [""]


def test_max_output_tokens_truncates_and_stop_sequences_cut() -> None:
    rng = random.Random(0)
    capped = synthesize(FLASH, TEXT, {"maxOutputTokens": 5}, 7, PROFILES[FLASH], rng)
    final = capped[-1][1]["candidates"][0]
    assert final["finishReason"] == "MAX_TOKENS"
    assert merge_chunks([d for _, d in capped])["candidates"][0]["content"]["parts"][0]["text"] == TEXT[:20]
    stopped = synthesize(FLASH, TEXT, {"stopSequences": ["Blue"]}, 7, PROFILES[FLASH], rng)
    merged = merge_chunks([d for _, d in stopped])
    assert merged["candidates"][0]["content"]["parts"][0]["text"] == TEXT[: TEXT.index("Blue")]
    assert merged["candidates"][0]["finishReason"] == "STOP"
    assert merged["usageMetadata"]["totalTokenCount"] == 7 + estimate_tokens(TEXT[: TEXT.index("Blue")])


def test_timing_follows_the_profile() -> None:
    profile = PROFILES[FLASH]
    ttfts = sorted(synthesize(FLASH, TEXT, {}, 7, profile, random.Random(i))[0][0] for i in range(200))
    median = ttfts[100]
    assert 0.8 * profile.ttft_s < median < 1.2 * profile.ttft_s
    timeline = synthesize(FLASH, TEXT, {}, 7, profile, random.Random(1))
    generation_s = timeline[-1][0] - timeline[0][0]
    tokens_after_first = estimate_tokens(TEXT) - estimate_tokens(chunk_text(TEXT)[0])
    assert 0.7 < (tokens_after_first / generation_s) / profile.tokens_per_s < 1.4


def test_execute_notebook_runs_past_a_cell_tagged_to_raise_and_saves_it_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "nb.ipynb"
    raising = nbformat.v4.new_code_cell("raise RuntimeError('on purpose')", metadata={"tags": ["raises-exception"]})
    nbformat.write(nbformat.v4.new_notebook(cells=[raising, nbformat.v4.new_code_cell("print('after')")]), path)
    execute_notebook(path, {}, save=True, then="print('not saved')")
    raised, after = nbformat.read(path, as_version=4).cells
    assert raised.outputs[0].ename == "RuntimeError" and raised.metadata.tags == ["raises-exception"]
    assert after.outputs[0].text == "after\n"

    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("raise RuntimeError('unmarked')")]), path)
    with pytest.raises(CellExecutionError, match="unmarked"):
        execute_notebook(path, {}, save=False)


def test_keep_takes_keeps_the_first_recordings_of_each_request(tmp_path: Path) -> None:
    takes = [generate_exchange(prompt, f"{prompt} {i}", 0.1) for i in range(3) for prompt in ("a", "b")]
    write_cassette(tmp_path, "t", [*takes, generate_exchange("c", "only", 0.1)])
    assert keep_takes(tmp_path / "t.json", 2) == 2
    texts = [
        e.response["body"]["candidates"][0]["content"]["parts"][0]["text"]
        for e in Cassette.load(tmp_path / "t.json").exchanges
    ]
    assert texts == ["a 0", "b 0", "a 1", "b 1", "only"]
    with pytest.raises(ValueError, match="at least 1"):
        keep_takes(tmp_path / "t.json", 0)
