"""Media in a prompt: how much the Gemini API takes inline, and what an image or a PDF page costs in tokens.

Introduced in ``04_multimodal``. The synthetic upstream (:mod:`helpers.replay.upstream.synthetic`) counts media
tokens with :func:`media_tokens`, so the usage a lesson prints for an image follows the documented rule for Gemini 3
models.
"""

from __future__ import annotations

INLINE_LIMIT_BYTES = 100 * 1000**2
"""The most inline data one request may carry, base64-encoded, in bytes: 100 MB.

Google raised it from 20 MB to 100 MB in January 2026 ("Increased file size limits and expanded inputs support in
Gemini API", blog.google; ai.google.dev/gemini-api/docs/file-input-methods, both read 2026-11-22), so most tutorials
still say 20 MB. The docs write "100MB" without saying whether a megabyte is 10^6 or 2^20 bytes: this takes the
smaller, so a request it allows fits either way. Some types have lower limits (see :data:`INLINE_PDF_LIMIT_BYTES`).
"""

INLINE_PDF_LIMIT_BYTES = 50 * 1000**2
"""The most a PDF sent inline may weigh: 50 MB (ai.google.dev/gemini-api/docs/file-input-methods, read 2026-11-22)."""

MEDIA_RESOLUTION_TOKENS = {
    "MEDIA_RESOLUTION_LOW": 280,
    "MEDIA_RESOLUTION_MEDIUM": 560,
    "MEDIA_RESOLUTION_HIGH": 1120,
    "MEDIA_RESOLUTION_ULTRA_HIGH": 2240,
}
"""The most tokens one image (or one PDF page) costs on Gemini 3 models at each ``media_resolution`` level, whatever
its size in pixels: the model scales it to fit. ``ULTRA_HIGH`` is per part only (``types.Part.media_resolution``),
images only.

Sources, read 2026-12-01: Google Cloud's Gemini 3 Flash page gives the defaults ("Default resolution tokens: 1120" for
images, "560" for PDFs, "70" per video frame); the per-level figures are third-party transcriptions of
ai.google.dev/gemini-api/docs/media-resolution, whose token table could not be read here (fastgptplus.com: "LOW (280
tokens), MEDIUM (560 tokens), HIGH (1120 tokens), ULTRA_HIGH (2240 tokens, per-part only)"). Gemini 2.x counted 258
tokens per 768x768 tile instead; the SDK's ``types.MediaResolution`` docstrings still quote 2.x figures (64 and 256).
"""

DEFAULT_RESOLUTION = {"image": "MEDIA_RESOLUTION_HIGH", "pdf": "MEDIA_RESOLUTION_MEDIUM"}
"""The level used when a request sets none ("UNSPECIFIED ... defaults to HIGH (1120 tokens) for images and MEDIUM
(560 tokens) for PDFs", same sources as :data:`MEDIA_RESOLUTION_TOKENS`)."""


def media_tokens(kind: str, resolution: str | None = None, *, pages: int = 1) -> int:
    """Input tokens of one image, or of a PDF's ``pages``, on Gemini 3 models at a ``media_resolution`` level.

    Args:
        kind: ``"image"`` or ``"pdf"``.
        resolution: a level name such as ``"MEDIA_RESOLUTION_LOW"`` (the enum's value), or ``None`` for the default
            (:data:`DEFAULT_RESOLUTION`). ``"MEDIA_RESOLUTION_UNSPECIFIED"`` is the default too.
        pages: pages of the PDF (ignored for an image).

    Returns:
        Tokens, as ``usage_metadata.prompt_tokens_details`` reports them (PDF pages under ``IMAGE``).

    Raises:
        ValueError: an unknown kind or level, ``ULTRA_HIGH`` for a PDF, or fewer than one page.
    """
    if kind not in DEFAULT_RESOLUTION:
        raise ValueError(f"kind must be 'image' or 'pdf', got {kind!r}")
    level = DEFAULT_RESOLUTION[kind] if resolution in (None, "MEDIA_RESOLUTION_UNSPECIFIED") else resolution
    if level not in MEDIA_RESOLUTION_TOKENS or (kind == "pdf" and level == "MEDIA_RESOLUTION_ULTRA_HIGH"):
        raise ValueError(f"{level!r} is not a media_resolution level for a {kind}; use one of MEDIA_RESOLUTION_TOKENS")
    if pages < 1:
        raise ValueError(f"a PDF has at least one page, got {pages}")
    return MEDIA_RESOLUTION_TOKENS[level] * (1 if kind == "image" else pages)
