"""Plots of what :mod:`helpers.timing` measured (distributions, concurrency timelines, chunk arrival, throughput),
and of what a request sends (:func:`inputs`: thumbnails of its images and PDF pages).

Each function takes measurements and returns a matplotlib :class:`~matplotlib.figure.Figure`, the same picture
for the same data (no randomness, no global pyplot state). A notebook cell that ends with the call shows it once;
``fig.savefig("x.png")`` writes it. Axes carry units and titles say what was measured and how many samples.
"""

from __future__ import annotations

import base64
import io
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib
import numpy as np
import PIL.Image
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from .timing import PERCENTILES, ConcurrencyTiming, StreamTiming, Summary, in_flight, percentile_name

SERIES_COLORS = tuple(matplotlib.colormaps["tab10"](i) for i in range(10))
"""One colour per series, in order."""

STATUS_COLORS = {200: "#4C72B0", 429: "#DD8452", "error": "#C44E52", None: "#8C8C8C"}
"""Timeline bar colours: success, rate limited, any other HTTP error, no HTTP status (an exception or in flight)."""

PERCENTILE_STYLES = dict(zip(PERCENTILES, ("--", "-.", ":"), strict=True))


class WorkbookFigure(Figure):
    """A Figure that shows itself as a PNG in Jupyter without pyplot (so it is never shown twice)."""

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=100)
        return buffer.getvalue()


def _figure(width: float, height: float) -> Figure:
    return WorkbookFigure(figsize=(width, height), layout="constrained")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def distribution(series: Mapping[str, Sequence[float] | Summary], *, metric: str = "TTFT") -> Figure:
    """Histogram and ECDF of a timing, one panel per series side by side, p50/p90/p99 marked (a percentile the
    sample is too small for, :func:`min_samples`, is labelled as about the maximum).

    Every panel uses the same bins and axes, so series compare at a glance (models, concurrency levels, live vs
    replay). Introduced in ``03_streaming``.

    Args:
        series: label -> samples in seconds (a list, or a :class:`~helpers.timing.Summary`).
        metric: what the samples measure, for the title and x axis, e.g. ``"TTFT"`` or ``"TTLT"``.

    Returns:
        The figure: panels left to right in ``series`` order; counts on the left axis, ECDF (0-1) on the right.

    Raises:
        ValueError: no series, or a series without samples.
    """
    samples = {label: np.asarray(s.samples_s if isinstance(s, Summary) else s, float) for label, s in series.items()}
    if not samples or any(len(s) == 0 for s in samples.values()):
        raise ValueError("distribution() needs at least one series, each with at least one sample")
    edges = np.histogram_bin_edges(np.concatenate(list(samples.values())), bins="auto")
    fig = _figure(0.6 + 4.2 * len(samples), 3.8)
    axes = fig.subplots(1, len(samples), sharex=True, sharey=True, squeeze=False)[0]
    for i, (ax, (label, values)) in enumerate(zip(axes, samples.items(), strict=True)):
        color = SERIES_COLORS[i % len(SERIES_COLORS)]
        ax.hist(values, bins=edges, color=color, alpha=0.6, label="runs per bin")
        ecdf = ax.twinx()
        line = ecdf.ecdf(values, color="black", linewidth=1.2, label="ECDF (right axis)")
        ecdf.set_ylim(0, 1.02)
        if i == len(samples) - 1:
            ecdf.set_ylabel("fraction of runs at or below")
        else:
            ecdf.tick_params(labelright=False)
        for q, value in zip(PERCENTILES, np.percentile(values, PERCENTILES), strict=True):
            name = percentile_name(q, len(values))
            ax.axvline(value, color="black", linestyle=PERCENTILE_STYLES[q], linewidth=1, label=f"{name} {value:.2f} s")
        ax.set_title(f"{label} (n={len(values)})")
        ax.set_xlabel(f"{metric} (s)")
        handles = [*ax.get_legend_handles_labels()[0], line]
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, fontsize="small")
    axes[0].set_ylabel("runs")
    total = sum(len(v) for v in samples.values())
    in_series = f" in {len(samples)} series" if len(samples) > 1 else ""
    fig.suptitle(f"{metric} distribution: {_plural(total, 'sample')}{in_series}")
    return fig


def _status_kind(status: int | None) -> int | str | None:
    """The :data:`STATUS_COLORS` key for an HTTP status."""
    if status is None or status in (200, 429):
        return status
    return 200 if 200 <= status < 300 else "error"


MIN_BAR_FRACTION = 0.004
"""A timeline bar is drawn at least this fraction of the time axis wide, so a 429 answered in a millisecond shows."""


def _speed_note(speed: float | None) -> str:
    """What a replay speed means for a time axis: ``""`` at recorded speed (or live), else the factor."""
    return "" if not speed or speed == 1 else f" at {speed:g}x replay speed (×{speed:g} for recorded time)"


def timeline(
    calls: ConcurrencyTiming | Sequence[Any], *, limit: int | None = None, speed: float | None = None
) -> Figure:
    """One bar per request from start to end, its first byte marked, with requests in flight over time below.

    Bars are coloured by status (429 orange, other errors red) and drawn at least :data:`MIN_BAR_FRACTION` of the
    axis wide, so an instant refusal still shows; a request's retries share its row, joined by a dotted line for the
    wait before each retry. The picture that shows why async is faster and what a semaphore does. Introduced in
    ``02_async``.

    Args:
        calls: a :class:`~helpers.timing.ConcurrencyTiming`, or anything with ``start_s``, ``end_s``,
            ``first_byte_s`` and ``status`` (the replay server's per-request stats, each request its own row: the
            title then counts the requests the server received); ``key`` groups retries when present. Requests
            still in flight (``end_s`` is ``None``) are left out.
        limit: draw this concurrency limit (e.g. the semaphore size) on the in-flight panel.
        speed: the replay speed the times were measured at (``session.speed``); the axis and title say so.

    Returns:
        The figure: time in seconds since the first request on the shared x axis.

    Raises:
        ValueError: no finished request to draw.
    """
    done = [c for c in (calls.calls if isinstance(calls, ConcurrencyTiming) else calls) if c.end_s is not None]
    if not done:
        raise ValueError("timeline() needs at least one finished request")
    done.sort(key=lambda c: c.start_s)
    origin = done[0].start_s
    keyed = all(hasattr(c, "key") for c in done)
    keys = [c.key if keyed else i for i, c in enumerate(done)]
    rows: dict[Any, int] = {}
    for key in keys:
        rows.setdefault(key, len(rows))
    wall = max(c.end_s for c in done) - origin
    fig = _figure(9.0, 2.6 + min(0.22 * len(rows), 7.0))
    bars, flight = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    last_end: dict[Any, float] = {}
    for c, key in zip(done, keys, strict=True):
        row = rows[key]
        if key in last_end:
            bars.plot([last_end[key] - origin, c.start_s - origin], [row, row], color="#555555", linestyle=":", lw=1)
        last_end[key] = c.end_s
        width = max(c.end_s - c.start_s, MIN_BAR_FRACTION * wall)
        bars.barh(row, width, left=c.start_s - origin, height=0.7, color=STATUS_COLORS[_status_kind(c.status)])
        if c.first_byte_s is not None and c.status is not None and 200 <= c.status < 300:
            bars.plot(c.first_byte_s - origin, row, marker="|", color="black", markersize=9)
    bars.set_ylim(len(rows) - 0.5, -0.5)
    if len(rows) <= 25:
        bars.set_yticks(range(len(rows)), [str(k) for k in rows])
    else:
        bars.set_yticks([])
    bars.set_ylabel("request" if keyed else "request, as the server saw it")
    bars.legend(handles=_timeline_legend(done, keys), loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")

    times, counts = in_flight(done)
    flight.step(np.concatenate([[0.0], times - origin]), np.concatenate([[0], counts]), where="post", color="black")
    if limit is not None:
        flight.axhline(limit, color=STATUS_COLORS["error"], linestyle="--", label=f"limit {limit}")
        flight.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    flight.set_ylim(0, max(int(counts.max()), limit or 0) * 1.15 + 0.5)
    flight.yaxis.set_major_locator(MaxNLocator(integer=True))
    flight.set_ylabel("in flight")
    flight.set_xlabel(f"time since the first request started (s){_speed_note(speed)}")

    statuses = [c.status for c in done]
    rejected = f" · {statuses.count(429)} × 429" if 429 in statuses else ""
    what = (
        f"{_plural(len(rows), 'request')}, {_plural(len(done), 'attempt')}"
        if keyed
        else f"{_plural(len(done), 'request')} the server received"
    )
    at_speed = _speed_note(speed).split(" (")[0].strip()
    fig.suptitle(
        f"Concurrency timeline: {what} in {wall:.2f} s · peak {int(counts.max())} in flight{rejected}"
        + (f"\n(times {at_speed})" if at_speed else "")
    )
    return fig


def _timeline_legend(done: Sequence[Any], keys: Sequence[Any]) -> list[Any]:
    labels = {200: "success", 429: "429 rate limited", "error": "other HTTP error", None: "no HTTP status"}
    present = {_status_kind(c.status) for c in done}
    handles: list[Any] = [Patch(color=STATUS_COLORS[k], label=labels[k]) for k in labels if k in present]
    if len(set(keys)) < len(keys):
        handles.append(Line2D([], [], color="#555555", linestyle=":", label="waiting to retry"))
    if any(c.first_byte_s is not None and c.status is not None and 200 <= c.status < 300 for c in done):
        handles.append(Line2D([], [], marker="|", color="black", linestyle="none", markersize=9, label="first byte"))
    return handles


def chunk_arrival(streams: StreamTiming | Mapping[str, StreamTiming], *, tokens: bool = False) -> Figure:
    """Cumulative text received against time for one or more streams: TTFT and TTLT at a glance.

    Each stream is a step line (one step per chunk, dots where chunks arrived) with a dotted line at its TTFT;
    the legend gives each stream's TTFT and TTLT. Introduced in ``03_streaming``.

    Args:
        streams: one :class:`~helpers.timing.StreamTiming`, or label -> timing.
        tokens: plot output tokens instead of characters. The API reports tokens only for the whole stream, so each
            chunk's share is estimated from its characters.

    Returns:
        The figure: seconds since the request on x, characters (or tokens) received so far on y.

    Raises:
        ValueError: no streams, a stream without chunks, or ``tokens=True`` for a stream without a token count.
    """
    named = {"stream": streams} if isinstance(streams, StreamTiming) else dict(streams)
    if not named or any(not t.chunks for t in named.values()):
        raise ValueError("chunk_arrival() needs at least one stream, each with at least one chunk")
    fig = _figure(8.0, 4.2)
    ax = fig.subplots()
    for i, (label, t) in enumerate(named.items()):
        color = SERIES_COLORS[i % len(SERIES_COLORS)]
        arrivals = np.array([c.at_s for c in t.chunks])
        received = np.cumsum([c.chars for c in t.chunks], dtype=float)
        if tokens:
            if t.output_tokens is None:
                raise ValueError(f"stream {label!r} reported no output token count; plot characters instead")
            received *= t.output_tokens / max(received[-1], 1)
        ttft = "no text" if t.ttft_s is None else f"TTFT {t.ttft_s:.2f} s"
        ax.step(
            np.concatenate([[0.0], arrivals]),
            np.concatenate([[0.0], received]),
            where="post",
            color=color,
            label=f"{label}: {ttft}, TTLT {t.ttlt_s:.2f} s",
        )
        ax.plot(arrivals, received, "o", color=color, markersize=3)
        if t.ttft_s is not None:
            ax.axvline(t.ttft_s, color=color, linestyle=":", linewidth=1)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("time since the request was sent (s)")
    ax.set_ylabel("output tokens received (estimated per chunk)" if tokens else "characters received")
    ax.legend(loc="upper left", fontsize="small")
    chunks = sum(len(t.chunks) for t in named.values())
    fig.suptitle(f"Chunk arrival: {_plural(len(named), 'stream')}, {_plural(chunks, 'chunk')} (dotted: TTFT)")
    return fig


def throughput(
    runs: Mapping[int, ConcurrencyTiming], *, rpm_limit: float | None = None, window_s: float = 60.0
) -> Figure:
    """Achieved requests per second against concurrency, with ideal linear scaling and the RPM limit.

    Points where requests were rejected are labelled with their 429 count. Introduced in ``02_async``.

    Args:
        runs: concurrency level (e.g. the semaphore size) -> the :class:`~helpers.timing.ConcurrencyTiming` of a
            run at that level.
        rpm_limit: the rate limit in requests per minute, drawn as ``rpm_limit / window_s`` requests per second.
        window_s: how long the limit's minute lasts, seconds: 60, or ``60 / speed`` on a replay server sped up by
            ``speed`` (``02_async``), whose window shrinks with its recorded delays.

    Returns:
        The figure: concurrency on x (log 2 scale when the levels span 8x or more), requests/s on y.

    Raises:
        ValueError: no runs.
    """
    if not runs:
        raise ValueError("throughput() needs at least one run")
    levels = sorted(runs)
    achieved = np.array([runs[c].requests_per_s for c in levels])
    fig = _figure(7.0, 4.2)
    ax = fig.subplots()
    ideal = achieved[0] * np.array(levels) / levels[0]
    ax.plot(levels, ideal, color="gray", linestyle="--", label=f"ideal: linear from concurrency {levels[0]}")
    ax.plot(levels, achieved, "o-", color=SERIES_COLORS[0], label="achieved")
    for level, value in zip(levels, achieved, strict=True):
        rejected = runs[level].statuses.get(429, 0)
        if rejected:
            ax.annotate(f"{rejected} × 429", (level, value), textcoords="offset points", xytext=(0, -14), ha="center")
    top = max(achieved.max(), 0.0)
    if rpm_limit is not None:
        per_s = rpm_limit / window_s
        minute = "" if window_s == 60 else f" (a minute of {window_s:g} s)"
        ax.axhline(
            per_s,
            color=STATUS_COLORS["error"],
            linestyle=":",
            label=f"RPM limit {rpm_limit:g}{minute} = {per_s:.2f} requests/s",
        )
        top = max(top, per_s)
    ax.set_ylim(0, top * 1.3 or 1.0)
    if levels[-1] / levels[0] >= 8:
        ax.set_xscale("log", base=2)
    ax.set_xticks(levels, [str(c) for c in levels])
    ax.margins(x=0.08)
    ax.set_xlabel("concurrency (requests allowed in flight)")
    ax.set_ylabel("throughput (requests/s)")
    ax.legend(loc="upper left", fontsize="small")
    total = sum(runs[c].requests for c in levels)
    fig.suptitle(f"Throughput against concurrency: {_plural(len(levels), 'level')}, {_plural(total, 'request')}")
    return fig


THUMBNAIL_PX = 240
"""The longest side of a thumbnail of :func:`inputs`, pixels."""


def preview(item: Any) -> tuple[PIL.Image.Image, str] | None:
    """A picture of one part of a request, and what it is: an inline image (a ``types.Part`` or a PIL image) as
    itself, an inline PDF as its first page (rendered by pypdfium2); ``None`` for text and anything else (a
    ``File`` reference carries no bytes to show). Introduced in ``04_multimodal``."""
    if isinstance(item, PIL.Image.Image):
        return item.convert("RGB"), f"PIL image, {item.width}x{item.height}"
    blob = getattr(item, "inline_data", None)
    if blob is None or not blob.data:
        return None
    data = blob.data if isinstance(blob.data, bytes) else base64.b64decode(blob.data)
    if (blob.mime_type or "").startswith("image/"):
        image = PIL.Image.open(io.BytesIO(data))
        return image.convert("RGB"), f"{blob.mime_type}, {image.width}x{image.height}"
    if blob.mime_type == "application/pdf":
        import pypdfium2  # type: ignore[import-untyped]  # here: only a PDF needs it

        document = pypdfium2.PdfDocument(data)
        try:
            page = document[0].render(scale=2).to_pil()
            return page.convert("RGB"), f"PDF, page 1 of {len(document)}"
        finally:
            document.close()
    return None


def inputs(contents: Sequence[Any]) -> Figure:
    """What a request sends, as the model sees it: a thumbnail of each image and PDF page in ``contents``, in order,
    captioned with the text label just before it (``"Image 1:"``) or what it is, and the rest of the text (the
    question) as the title. Introduced in ``04_multimodal``, to show each input beside the answer.

    Args:
        contents: the list given to ``generate_content``: ``types.Part``, PIL images and strings.

    Returns:
        The figure, one panel per picture (the same size for the same contents, so its text form is stable).

    Raises:
        ValueError: ``contents`` holds no image or PDF.
    """
    panels: list[tuple[PIL.Image.Image, str]] = []
    texts: list[str] = []
    label: str | None = None
    for item in contents:
        text = item if isinstance(item, str) else getattr(item, "text", None)
        shown = None if text is not None else preview(item)
        if text is not None:
            if label is not None:
                texts.append(label)
            label = text
        elif shown is not None:
            panels.append((shown[0], label or shown[1]))
            label = None
    if label is not None:
        texts.append(label)
    if not panels:
        raise ValueError("inputs() shows images and PDF pages; these contents hold none")
    fig = _figure(max(3.6, 2.6 * len(panels)), 3.2)
    for ax, (image, caption) in zip(np.atleast_1d(fig.subplots(1, len(panels))), panels, strict=True):
        image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
        ax.imshow(np.asarray(image))
        ax.set_title(caption, fontsize="small")
        ax.set_xticks([])
        ax.set_yticks([])  # the frame stays: a white picture on a white page still shows its edges
    question = " ".join(texts) or "(no text)"
    width = max(36, 30 * len(panels))
    fig.suptitle(textwrap.fill(textwrap.shorten(question, 3 * width, placeholder="..."), width), fontsize="medium")
    return fig
