"""Sample files for the lessons: small generated images, and a tiny local file server that stands in for the web.

Introduced in ``02_async``, whose download-and-analyse pipeline fetches the images of ``notebooks/data/shapes/``
over HTTP from :class:`FileServer` while it sends earlier ones to the model. The images are drawn here with Pillow
(:func:`make_shapes`) and committed; regenerate them with ``python -m helpers.samples notebooks/data/shapes``.
They are part of this project and under its licence (Apache-2.0).
"""

from __future__ import annotations

import http.server
import sys
import threading
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw


@dataclass(frozen=True)
class Shape:
    """One sample image: a coloured shape centred on white.

    Attributes:
        name: the file name, e.g. ``"red-circle.png"``.
        kind: ``"circle"``, ``"square"``, ``"triangle"``, ``"diamond"``, ``"ring"`` or ``"cross"``.
        color: the fill colour, a name Pillow knows (``"red"``) or ``"#RRGGBB"``.
        size_px: the image's width and height in pixels.
    """

    name: str
    kind: str
    color: str
    size_px: int


SHAPES = (
    Shape("red-circle.png", "circle", "#d62728", 96),
    Shape("blue-square.png", "square", "#1f77b4", 128),
    Shape("green-triangle.png", "triangle", "#2ca02c", 160),
    Shape("orange-diamond.png", "diamond", "#ff7f0e", 192),
    Shape("purple-ring.png", "ring", "#9467bd", 224),
    Shape("black-cross.png", "cross", "#222222", 256),
)
"""The images of ``notebooks/data/shapes/``, smallest first (each under 2 KB as PNG)."""


def draw(shape: Shape) -> Image.Image:
    """The RGB image of ``shape``: the shape in its colour, inset by an eighth of the size on each side.

    Raises:
        ValueError: an unknown ``shape.kind``.
    """
    n = shape.size_px
    image = Image.new("RGB", (n, n), "white")
    pen = ImageDraw.Draw(image)
    lo, hi, mid = n // 8, n - n // 8, n // 2
    if shape.kind == "circle":
        pen.ellipse((lo, lo, hi, hi), fill=shape.color)
    elif shape.kind == "square":
        pen.rectangle((lo, lo, hi, hi), fill=shape.color)
    elif shape.kind == "triangle":
        pen.polygon([(mid, lo), (hi, hi), (lo, hi)], fill=shape.color)
    elif shape.kind == "diamond":
        pen.polygon([(mid, lo), (hi, mid), (mid, hi), (lo, mid)], fill=shape.color)
    elif shape.kind == "ring":
        pen.ellipse((lo, lo, hi, hi), outline=shape.color, width=max(2, n // 12))
    elif shape.kind == "cross":
        bar = n // 8
        pen.rectangle((mid - bar, lo, mid + bar, hi), fill=shape.color)
        pen.rectangle((lo, mid - bar, hi, mid + bar), fill=shape.color)
    else:
        raise ValueError(f"unknown shape kind {shape.kind!r}; use circle, square, triangle, diamond, ring or cross")
    return image


def make_shapes(folder: Path, shapes: tuple[Shape, ...] = SHAPES) -> list[Path]:
    """Draw ``shapes`` and save them as PNG files in ``folder`` (created if needed); returns their paths in order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for shape in shapes:
        path = folder / shape.name
        draw(shape).save(path, format="PNG", optimize=True)
        paths.append(path)
    return paths


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves files like ``python -m http.server``, after a simulated network delay, without logging to stderr."""

    def __init__(self, *args: Any, server_config: FileServer, **kwargs: Any) -> None:
        self.config = server_config
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:
        path = Path(self.translate_path(self.path))
        size = path.stat().st_size if path.is_file() else 0
        time.sleep(self.config.delay_s(size))
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep quiet: a notebook would show every request line as stderr."""


class FileServer:
    """Serve the files of a folder at ``http://127.0.0.1:PORT/NAME``, each after a delay that stands in for a network.

    A file of ``size`` bytes is answered after ``latency_s + size / bytes_per_s`` seconds (wall clock; the replay
    speed does not apply). Requests are served concurrently, one thread each, so slow downloads overlap as they would
    from a real server. Use it as a context manager, or call :meth:`close`::

        with FileServer(Path("notebooks/data/shapes"), latency_s=0.02, bytes_per_s=100_000) as server:
            ...  # fetch f"{server.url}/red-circle.png"

    Introduced in ``02_async``.

    Args:
        folder: the folder to serve; nothing outside it is reachable.
        latency_s: seconds before any file is answered.
        bytes_per_s: simulated bandwidth, bytes per second (``None``: no size-dependent delay).

    Attributes:
        url: ``http://127.0.0.1:PORT``, without a trailing slash.

    Raises:
        ValueError: a delay below 0 or a bandwidth of 0 or less.
        FileNotFoundError: ``folder`` is not a folder.
    """

    def __init__(self, folder: Path, *, latency_s: float = 0.0, bytes_per_s: float | None = None) -> None:
        if latency_s < 0 or (bytes_per_s is not None and bytes_per_s <= 0):
            raise ValueError(f"latency_s must be >= 0 and bytes_per_s > 0, got {latency_s} and {bytes_per_s}")
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is not a folder: nothing to serve")
        self.latency_s = latency_s
        self.bytes_per_s = bytes_per_s
        handler = partial(_Handler, server_config=self, directory=str(folder))
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        port = self._httpd.server_address[1]
        self.url = f"http://127.0.0.1:{port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()

    def delay_s(self, size: int) -> float:
        """Seconds the server waits before answering a file of ``size`` bytes."""
        return self.latency_s + (size / self.bytes_per_s if self.bytes_per_s else 0.0)

    def close(self) -> None:
        """Stop serving and free the port (idempotent)."""
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()

    def __enter__(self) -> FileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FileServer({self.url})"


if __name__ == "__main__":
    for written in make_shapes(Path(sys.argv[1] if len(sys.argv) > 1 else "notebooks/data/shapes")):
        print(f"{written} ({written.stat().st_size} bytes)")
