"""Media in a prompt: how much the Gemini API takes inline, and what an image costs in tokens (with sources).

Introduced in ``04_multimodal``. The synthetic upstream (:mod:`helpers.replay.synth`) counts image tokens with
:func:`image_tokens`, so the usage a lesson prints for an image follows the documented rule.
"""

from __future__ import annotations

import math

INLINE_LIMIT_BYTES = 100 * 1000**2
"""The most inline data one request may carry, base64-encoded, in bytes: 100 MB.

Google raised it from 20 MB to 100 MB in January 2026 ("Increased file size limits and expanded inputs support in
Gemini API", blog.google; ai.google.dev/gemini-api/docs/file-input-methods, both read 2026-11-22), so most tutorials
still say 20 MB. The docs write "100MB" without saying whether a megabyte is 10^6 or 2^20 bytes: this takes the
smaller, so a request it allows fits either way. Some types have lower limits (see :data:`INLINE_PDF_LIMIT_BYTES`).
"""

INLINE_PDF_LIMIT_BYTES = 50 * 1000**2
"""The most a PDF sent inline may weigh: 50 MB (ai.google.dev/gemini-api/docs/file-input-methods, read 2026-11-22)."""

IMAGE_TILE_TOKENS = 258
"""Tokens per image tile on Gemini 2.x models (ai.google.dev/gemini-api/docs/tokens, as quoted by
geminibyexample.com/027-calculate-input-tokens, read 2026-11-22). Gemini 3 models set it with ``media_resolution``."""

SMALL_IMAGE_PX = 384
"""An image with both sides at most this many pixels is one tile (same source as :data:`IMAGE_TILE_TOKENS`)."""

IMAGE_TILE_PX = 768
"""Larger images are cropped and scaled into tiles of this many pixels a side (same source)."""


def image_tokens(width: int, height: int) -> int:
    """Input tokens of one image on Gemini 2.x: 258 if both sides are at most 384 px, else 258 per 768x768 tile.

    The tile count is ``ceil(width / 768) * ceil(height / 768)``, the documented rule's reading in the source of
    :data:`IMAGE_TILE_TOKENS`; the API's exact crop and scale are not published. Sizes are in pixels.

    Raises:
        ValueError: a side is not a positive number of pixels.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"an image has positive sides, got {width}x{height} px")
    if width <= SMALL_IMAGE_PX and height <= SMALL_IMAGE_PX:
        return IMAGE_TILE_TOKENS
    return math.ceil(width / IMAGE_TILE_PX) * math.ceil(height / IMAGE_TILE_PX) * IMAGE_TILE_TOKENS
