"""The sample images (committed files match what make_shapes draws) and the local file server's delays."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image, ImageChops

from helpers.paths import NOTEBOOKS_DIR
from helpers.samples import SHAPES, FileServer, Shape, draw, make_shapes

SHAPES_DIR = NOTEBOOKS_DIR / "data" / "shapes"


def test_committed_shapes_are_what_make_shapes_draws(tmp_path: Path) -> None:
    made = make_shapes(tmp_path)
    assert [p.name for p in made] == [s.name for s in SHAPES]
    for shape, path in zip(SHAPES, made, strict=True):
        committed = Image.open(SHAPES_DIR / shape.name).convert("RGB")
        assert committed.size == (shape.size_px, shape.size_px)
        # Pixels, not bytes: another zlib may compress the same picture differently.
        assert ImageChops.difference(committed, Image.open(path).convert("RGB")).getbbox() is None, shape.name
        assert path.stat().st_size < 2000


def test_every_kind_draws_its_colour_in_the_middle_and_an_unknown_kind_is_refused() -> None:
    for shape in SHAPES:
        image = draw(shape)
        centre = image.getpixel((shape.size_px // 2, shape.size_px // 2))
        assert centre == (
            (255, 255, 255) if shape.kind == "ring" else Image.new("RGB", (1, 1), shape.color).getpixel((0, 0))
        )
    with pytest.raises(ValueError, match="unknown shape kind 'hexagon'"):
        draw(Shape("x.png", "hexagon", "red", 10))


def fetch(url: str) -> tuple[bytes, float]:
    start = time.perf_counter()
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read(), time.perf_counter() - start


def test_file_server_serves_the_folder_after_its_delay_concurrently_and_quietly(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "small.bin").write_bytes(b"x" * 1_000)
    (tmp_path / "large.bin").write_bytes(b"y" * 10_000)
    with FileServer(tmp_path, latency_s=0.05, bytes_per_s=50_000) as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert server.delay_s(10_000) == pytest.approx(0.25)
        # Never sooner than its delay (how much later depends on the machine, so no upper bound).
        body, took = fetch(f"{server.url}/small.bin")
        assert body == b"x" * 1_000 and took >= 0.07
        body, took = fetch(f"{server.url}/large.bin")
        assert body == b"y" * 10_000 and took >= 0.25
        with pytest.raises(urllib.error.HTTPError) as missing:
            fetch(f"{server.url}/missing.bin")
        assert missing.value.code == 404
        # Requests are served in parallel: five requests are all inside the server at once. Each handler waits at a
        # barrier of five before its delay; served one at a time, the first would wait there in vain.
        barrier = threading.Barrier(5, timeout=30)

        def delay_s(size: int) -> float:
            barrier.wait()
            return FileServer.delay_s(server, size)

        server.delay_s = delay_s  # the handlers call it on the server, so this instance attribute shadows it
        with ThreadPoolExecutor(5) as pool:
            bodies = list(pool.map(fetch, [f"{server.url}/small.bin"] * 5))
        assert [b for b, _ in bodies] == [b"x" * 1_000] * 5 and not barrier.broken
    assert capfd.readouterr().err == "", "the server must not log requests to stderr"
    with pytest.raises(urllib.error.URLError):
        fetch(f"{server.url}/small.bin")


def test_file_server_refuses_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="latency_s must be >= 0"):
        FileServer(tmp_path, latency_s=-1)
    with pytest.raises(ValueError, match="bytes_per_s > 0"):
        FileServer(tmp_path, bytes_per_s=0)
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        FileServer(tmp_path / "nope")
