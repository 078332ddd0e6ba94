"""helpers.plots: each figure draws exactly the data it is given, labels its units and counts, and is deterministic."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import PIL.Image
import pytest
from google.genai import types
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from helpers import plots
from helpers.timing import CallTiming, ChunkTiming, ConcurrencyTiming, StreamTiming, summarize

TTFT_A = [0.31, 0.35, 0.38, 0.40, 0.41, 0.44, 0.47, 0.52, 0.60, 0.75]
TTFT_B = [0.22, 0.25, 0.29, 0.30, 0.33]


def _calls() -> ConcurrencyTiming:
    return ConcurrencyTiming(
        (
            CallTiming("a", 0, 0.0, 0.2, 0.5, 200),
            CallTiming("b", 0, 0.0, None, 0.1, 429, "ClientError"),
            CallTiming("c", 0, 0.1, 0.3, 0.6, 503, "ServerError"),
            CallTiming("b", 1, 0.6, 0.8, 1.0, 200),
        )
    )


def _stream(ttft: float, sizes: list[int], gap: float = 0.1, tokens: int | None = 40) -> StreamTiming:
    return StreamTiming(tuple(ChunkTiming(ttft + i * gap, n) for i, n in enumerate(sizes)), tokens)


def _bars(ax) -> list[Rectangle]:
    return [p for p in ax.patches if isinstance(p, Rectangle)]


def test_distribution_marks_percentiles_and_counts_samples(tmp_path):
    fig = plots.distribution({"flash": summarize(TTFT_A, "TTFT"), "flash-lite": TTFT_B}, metric="TTFT")
    fig.savefig(tmp_path / "distribution.png")
    assert fig._suptitle.get_text() == "TTFT distribution: 15 samples in 2 series"
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["flash (n=10)", "flash-lite (n=5)"]
    for ax, samples in zip(panels, (TTFT_A, TTFT_B), strict=True):
        assert ax.get_xlabel() == "TTFT (s)"
        marked = [line.get_xdata()[0] for line in ax.get_lines()]
        assert marked == pytest.approx(np.percentile(samples, [50, 90, 99]))
        assert sum(p.get_height() for p in _bars(ax)) == len(samples)
    assert panels[0].get_shared_x_axes().joined(panels[0], panels[1])
    assert (tmp_path / "distribution.png").stat().st_size > 0
    labels = [t.get_text() for t in panels[1].get_legend().get_texts()]
    assert labels[1].startswith("p50 ") and labels[2].startswith("p90 (n < 10: about the max) ")  # n=5
    assert labels[3].startswith("p99 (n < 100: about the max) ")
    assert [t.get_text() for t in panels[0].get_legend().get_texts()][2].startswith("p90 0.")  # n=10 supports p90


def test_distribution_refuses_empty_series():
    with pytest.raises(ValueError, match="at least one sample"):
        plots.distribution({"flash": []})


def test_timeline_draws_every_attempt_by_status_with_retries_on_their_request_row(tmp_path):
    fig = plots.timeline(_calls(), limit=2)
    fig.savefig(tmp_path / "timeline.png")
    bars, flight = fig.axes[:2]
    rects = _bars(bars)
    assert len(rects) == 4
    spans = sorted((r.get_y() + r.get_height() / 2, r.get_x(), r.get_width()) for r in rects)
    assert [(row, start) for row, start, _ in spans] == [(0, 0.0), (1, 0.0), (1, 0.6), (2, 0.1)]
    assert [t.get_text() for t in bars.get_yticklabels()] == ["a", "b", "c"]
    colors = {(r.get_x(), r.get_y() + r.get_height() / 2): matplotlib.colors.to_hex(r.get_facecolor()) for r in rects}
    assert colors[(0.0, 1)] == plots.STATUS_COLORS[429].lower()
    assert colors[(0.1, 2)] == plots.STATUS_COLORS["error"].lower()
    waits = [line for line in bars.get_lines() if line.get_linestyle() == ":"]
    assert [(list(w.get_xdata()), list(w.get_ydata())) for w in waits] == [([0.1, 0.6], [1, 1])]  # b's wait to retry
    first_bytes = [line.get_xdata()[0] for line in bars.get_lines() if line.get_marker() == "|"]
    assert sorted(first_bytes) == [0.2, 0.8]  # a failure's first byte is its whole answer: no tick over its colour
    assert [t.get_text() for t in bars.get_legend().get_texts()] == [
        "success",
        "429 rate limited",
        "other HTTP error",
        "waiting to retry",
        "first byte",
    ]
    assert flight.get_xlabel() == "time since the first request started (s)"
    steps = flight.get_lines()[0]
    assert max(steps.get_ydata()) == 2 and flight.get_lines()[1].get_ydata()[0] == 2  # peak, and the limit line
    assert fig._suptitle.get_text() == (
        "Concurrency timeline: 3 requests, 4 attempts in 1.00 s · peak 2 in flight · 1 × 429"
    )


def test_timeline_draws_server_stats_and_skips_requests_in_flight():
    class Stat:  # the replay server's per-request stats: no key, no attempt, end_s None while in flight
        def __init__(self, start_s, first_byte_s, end_s, status):
            self.start_s, self.first_byte_s, self.end_s, self.status = start_s, first_byte_s, end_s, status

    stats = [Stat(10.0, 10.1, 10.5, 200), Stat(10.2, 10.3, 10.4, 200), Stat(10.3, None, None, None)]
    stats.append(Stat(10.4, 10.4, 10.4, 429))  # refused at once: still drawn, a sliver made visible
    fig = plots.timeline(stats, speed=60)
    rects = _bars(fig.axes[0])
    assert sorted(r.get_x() for r in rects) == pytest.approx([0.0, 0.2, 0.4])
    assert min(r.get_width() for r in rects) == pytest.approx(plots.MIN_BAR_FRACTION * 0.5)
    assert fig.axes[0].get_ylabel() == "request, as the server saw it"
    assert fig._suptitle.get_text() == (
        "Concurrency timeline: 3 requests the server received in 0.50 s · peak 2 in flight · 1 × 429\n"
        "(times at 60x replay speed)"
    )
    assert fig.axes[1].get_xlabel().endswith("(s) at 60x replay speed (×60 for recorded time)")
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["0", "1", "2"]
    with pytest.raises(ValueError, match="finished request"):
        plots.timeline([Stat(0.0, None, None, None)])


def test_chunk_arrival_plots_cumulative_text_and_marks_ttft(tmp_path):
    fast, slow = _stream(0.3, [0, 5, 10, 5]), _stream(0.5, [5, 15])
    fig = plots.chunk_arrival({"fast": fast, "slow": slow})
    fig.savefig(tmp_path / "chunks.png")
    ax = fig.axes[0]
    steps = [line for line in ax.get_lines() if line.get_drawstyle() == "steps-post"]
    assert list(steps[0].get_xdata()) == pytest.approx([0.0, 0.3, 0.4, 0.5, 0.6])
    assert list(steps[0].get_ydata()) == [0, 0, 5, 15, 20]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "fast: TTFT 0.40 s, TTLT 0.60 s",
        "slow: TTFT 0.50 s, TTLT 0.60 s",
    ]
    ttft_lines = [line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == ":"]
    assert ttft_lines == pytest.approx([0.4, 0.5])
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("time since the request was sent (s)", "characters received")
    assert fig._suptitle.get_text() == "Chunk arrival: 2 streams, 6 chunks (dotted: TTFT)"


def test_chunk_arrival_in_tokens_scales_to_the_reported_count():
    fig = plots.chunk_arrival(_stream(0.3, [10, 30], tokens=8), tokens=True)
    (steps,) = [line for line in fig.axes[0].get_lines() if line.get_drawstyle() == "steps-post"]
    assert list(steps.get_ydata()) == [0, 2, 8]
    with pytest.raises(ValueError, match="no output token count"):
        plots.chunk_arrival(_stream(0.3, [10], tokens=None), tokens=True)


def test_throughput_plots_achieved_rate_ideal_and_rpm_limit(tmp_path):
    def run(rps: float, rejected: int) -> ConcurrencyTiming:
        ok = tuple(CallTiming(str(i), 0, 0.0, None, 10 / rps, 200) for i in range(10))
        return ConcurrencyTiming(ok + tuple(CallTiming(str(i), 1, 0.0, None, 0.1, 429) for i in range(rejected)))

    fig = plots.throughput({4: run(8.0, 0), 1: run(2.0, 0), 16: run(10.0, 8)}, rpm_limit=600)
    fig.savefig(tmp_path / "throughput.png")
    ax = fig.axes[0]
    ideal, achieved, limit = ax.get_lines()
    assert list(achieved.get_xdata()) == [1, 4, 16] and list(achieved.get_ydata()) == pytest.approx([2, 8, 10])
    assert list(ideal.get_ydata()) == pytest.approx([2, 8, 32])
    assert limit.get_ydata()[0] == 10
    assert ax.get_xscale() == "log"
    assert [t.get_text() for t in ax.texts] == ["8 × 429"]
    assert ax.get_ylabel() == "throughput (requests/s)"
    assert fig._suptitle.get_text() == "Throughput against concurrency: 3 levels, 30 requests"
    assert limit.get_label() == "RPM limit 600 = 10.00 requests/s"


def test_throughput_limit_on_a_sped_up_replay_server_lasts_its_shorter_minute():
    runs = {1: ConcurrencyTiming((CallTiming("a", 0, 0.0, None, 0.1, 200),))}
    limit = plots.throughput(runs, rpm_limit=10, window_s=1.0).axes[0].get_lines()[-1]
    assert limit.get_ydata()[0] == 10
    assert limit.get_label() == "RPM limit 10 (a minute of 1 s) = 10.00 requests/s"


def test_figures_are_deterministic_and_show_once_in_jupyter():
    first = plots.timeline(_calls(), limit=2)
    png = first._repr_png_()  # what Jupyter shows; no pyplot figure is left behind to be shown a second time
    assert png.startswith(b"\x89PNG") and png == plots.timeline(_calls(), limit=2)._repr_png_()
    assert isinstance(first, Figure) and not plt.get_fignums()


DATA = Path(__file__).resolve().parent.parent / "notebooks" / "data"


def part(name: str, mime_type: str) -> types.Part:
    return types.Part.from_bytes(data=(DATA / name).read_bytes(), mime_type=mime_type)


def test_inputs_shows_each_picture_and_pdf_page_in_order_with_its_label_and_the_question():
    before, after = part("dots_before.png", "image/png"), part("dots_after.png", "image/png")
    fig = plots.inputs(["Image 1:", before, "Image 2:", after, "How many dots?"])
    assert [ax.get_title() for ax in fig.axes] == ["Image 1:", "Image 2:"]
    assert fig.get_suptitle() == "How many dots?"
    shown = fig.axes[0].images[0].get_array()
    assert shown.shape[:2] == PIL.Image.open(DATA / "dots_before.png").size[::-1], "a small image is shown whole"
    pdf = plots.inputs([part("receipt.pdf", "application/pdf"), "What is the total?"])
    (ax,) = pdf.axes
    height, width = ax.images[0].get_array().shape[:2]
    assert ax.get_title() == "PDF, page 1 of 1" and max(height, width) == plots.THUMBNAIL_PX
    assert abs(width / height - 3 / 2.4) < 0.02, "the receipt's 3 x 2.4 in page, rendered"
    assert repr(pdf) == repr(plots.inputs([part("receipt.pdf", "application/pdf"), "What is the total?"]))


def test_inputs_names_a_pil_image_and_refuses_contents_without_pictures():
    fig = plots.inputs([PIL.Image.new("RGB", (96, 64), "red"), "What colour?"])
    assert fig.axes[0].get_title() == "PIL image, 96x64"
    with pytest.raises(ValueError, match="hold none"):
        plots.inputs(["just text", types.Part(text="and more")])
