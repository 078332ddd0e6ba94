"""Draw the sample media of lesson 04_multimodal, deterministically: three PNGs, a one-page PDF and a 2-second clip.

Run it from anywhere with the workbook's environment: ``python notebooks/data/make_media.py``. It writes next to
itself and prints each file with its size; running it again gives the same bytes with the pinned Pillow and matplotlib.
Every file stays small (a few KB) because a prompt that carries an image inline carries its base64 in the request,
and the lesson's cassette stores every request.

The clip needs ffmpeg, which the workbook does not install: ``pip install imageio-ffmpeg==0.8.1`` (its wheel ships an
ffmpeg binary; the clip was made with ffmpeg n9.0.2 from that wheel). Without it the script says so and keeps the
committed ``clip.mp4``. Licence of every file: the repository's, Apache-2.0 (see README.md here).
"""

from __future__ import annotations

import random
from pathlib import Path

import matplotlib.pyplot as plt
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
SEED = 4
"""Seeds where the dots of ``dots_before.png`` fall."""
WHITE = (255, 255, 255)


def save_png(image: Image.Image, name: str) -> None:
    """Save ``image`` as an optimised PNG: a few hundred bytes for flat drawings."""
    image.save(HERE / name, format="PNG", optimize=True)


def shapes() -> None:
    """``shapes.png``, 192x192 px: a red circle (top left), a blue square (top right), a green triangle (bottom)."""
    image = Image.new("RGB", (192, 192), WHITE)
    draw = ImageDraw.Draw(image)
    draw.ellipse((16, 16, 80, 80), fill=(220, 30, 30))
    draw.rectangle((112, 16, 176, 80), fill=(30, 60, 220))
    draw.polygon([(96, 108), (60, 176), (132, 176)], fill=(30, 160, 60))
    save_png(image, "shapes.png")


def dots() -> None:
    """``dots_before.png`` with five black dots and ``dots_after.png`` with three of them left, 160x120 px each."""
    rng = random.Random(SEED)
    centres: list[tuple[int, int]] = []
    while len(centres) < 5:
        x, y = rng.randrange(20, 140), rng.randrange(20, 100)
        if all((x - a) ** 2 + (y - b) ** 2 > 30**2 for a, b in centres):
            centres.append((x, y))
    for name, kept in (("dots_before.png", centres), ("dots_after.png", centres[:3])):
        image = Image.new("RGB", (160, 120), WHITE)
        draw = ImageDraw.Draw(image)
        for x, y in kept:
            draw.ellipse((x - 9, y - 9, x + 9, y + 9), fill=(0, 0, 0))
        save_png(image, name)


RECEIPT = """\
WORKBOOK CAFE
2026-11-22

Coffee     2 x 3.50    7.00
Croissant  1 x 2.80    2.80
--------------------------
TOTAL                  9.80"""


def receipt() -> None:
    """``receipt.pdf``: one page (3 x 2.4 in) with a short café receipt whose total is 9.80, in DejaVu Sans Mono."""
    fig = plt.figure(figsize=(3, 2.4))
    fig.text(0.08, 0.92, RECEIPT, family="DejaVu Sans Mono", size=9, va="top")
    # No creation date, so the bytes do not change from run to run.
    fig.savefig(HERE / "receipt.pdf", metadata={"CreationDate": None})
    plt.close(fig)


def clip() -> None:
    """``clip.mp4``: 2 s at 8 frames/s, 96x64 px, H.264: a red dot crosses a white frame from left to right."""
    try:
        import imageio_ffmpeg
    except ImportError:
        print("clip.mp4: kept as committed (pip install imageio-ffmpeg==0.8.1 to make it again)")
        return
    frames = 16
    writer = imageio_ffmpeg.write_frames(
        str(HERE / "clip.mp4"),
        (96, 64),
        fps=8,
        codec="libx264",
        macro_block_size=16,
        # One thread and bit-exact output: the same frames give the same bytes.
        output_params=["-threads", "1", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1"],
    )
    writer.send(None)  # start ffmpeg
    for i in range(frames):
        image = Image.new("RGB", (96, 64), WHITE)
        x = 8 + round(i * 80 / (frames - 1))
        ImageDraw.Draw(image).ellipse((x - 6, 26, x + 6, 38), fill=(220, 30, 30))
        writer.send(image.tobytes())
    writer.close()


def main() -> None:
    shapes()
    dots()
    receipt()
    clip()
    for path in sorted(HERE.glob("*.*")):
        if path.suffix in (".png", ".pdf", ".mp4"):
            print(f"{path.name}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
