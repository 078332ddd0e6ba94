"""Progress: every ``qN.check()`` keeps its outcome in the per-user data folder, which the suite points at a temp one.

Each test gets a folder of its own (``WORKBOOK_DATA_DIR``); nothing here touches the real per-user folder.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import platformdirs
import pytest

from helpers import progress, workbook
from helpers.exercises.ex00_setup import q1 as name_the_mode
from helpers.exercises.ex00_setup import q3 as mask_the_key

from .conftest import lesson_replay


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv(progress.DATA_DIR_VARIABLE, str(folder))
    return folder


def test_the_data_folder_is_the_per_user_one_unless_overridden(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert progress.progress_file() == data / "progress.json"
    monkeypatch.delenv(progress.DATA_DIR_VARIABLE)
    assert progress.data_dir() == Path(platformdirs.user_data_dir("gemini-workbook", appauthor=False))
    assert progress.NOTEBOOKS_DIR not in progress.data_dir().parents, "never inside the repository"


def test_an_exercise_once_correct_stays_done_and_counts_its_attempts(data: Path) -> None:
    t0 = dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    progress.record("01_sync", "q1", "unattempted", t0)
    progress.record("01_sync", "q1", "correct", t0)
    entry = progress.record("01_sync", "q1", "incorrect", t0 + dt.timedelta(minutes=1))
    assert entry == {"status": "incorrect", "done": True, "attempts": 3, "last": "2026-12-01T09:01:00+00:00"}
    progress.record("01_sync", "q2", "incorrect", t0)
    rows = {row.lesson: row for row in progress.summary()}
    assert rows["01_sync"] == progress.LessonProgress("01_sync", done=1, total=4, attempted=2)
    assert rows["00_setup"] == progress.LessonProgress("00_setup", done=0, total=3, attempted=0)
    assert progress.lesson_line("01_sync") == (
        "progress: 1 of 4 exercises done in this lesson · python -m helpers progress shows every lesson"
    )
    with pytest.raises(ValueError, match="status must be one of"):
        progress.record("01_sync", "q1", "right")


def test_a_lessons_exercises_are_its_notebooks_check_cells() -> None:
    assert progress.exercises("01_sync") == ("q1", "q2", "q3", "q4")
    assert progress.exercises("no_such_lesson") == ()
    lessons = progress.lessons()
    assert lessons[0] == "00_setup" and lessons[-1] == "09_frameworks" and len(lessons) == 10
    assert sum(len(progress.exercises(lesson)) for lesson in lessons) == 33


def test_kernels_writing_at_once_lose_nothing(data: Path) -> None:
    code = "from helpers import progress\nfor _ in range(15): progress.record('02_async', 'q{}', 'incorrect')"
    procs = [subprocess.Popen([sys.executable, "-c", code.format(n)], env=os.environ.copy()) for n in (1, 2, 3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    assert {name: e["attempts"] for name, e in progress.load()["02_async"].items()} == {"q1": 15, "q2": 15, "q3": 15}


def test_a_corrupt_file_is_one_message_that_says_how_to_start_over(data: Path) -> None:
    data.mkdir()
    progress.progress_file().write_text("{not json")
    with pytest.raises(progress.ProgressError, match="--reset"):
        progress.load()
    assert progress.lesson_line("01_sync") is not None and "--reset" in (progress.lesson_line("01_sync") or "")
    done = run_cli()
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "Traceback" not in done.stderr
    assert run_cli("--reset").returncode == 0 and not progress.progress_file().exists()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "helpers", "progress", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_command_shows_every_lesson_and_resets(data: Path) -> None:
    progress.record("00_setup", "q1", "correct")
    progress.record("00_setup", "q2", "incorrect")
    out = run_cli().stdout.splitlines()
    assert out[0].split() == ["00_setup", "1", "of", "3", "done", "(2", "tried)"]
    assert out[1].split() == ["01_sync", "0", "of", "4", "done", "(0", "tried)"]
    assert out[10].split() == ["all", "1", "of", "33", "done"]
    assert out[11] == f"(kept in {progress.progress_file()})"
    assert run_cli("--reset").stdout.startswith("progress forgotten")
    assert progress.load() == {}


@pytest.fixture
def lesson(data: Path) -> Iterator[None]:
    with lesson_replay("00_setup", speed=1):
        yield


def test_check_records_its_outcome_in_the_lessons_name(lesson: None, capsys: pytest.CaptureFixture[str]) -> None:
    for problem, code in ((name_the_mode, "mode = session.mode"), (mask_the_key, "def mask(key): return key")):
        ns = problem.namespace(code)
        ns["q"] = problem
        exec("q.check()", ns)
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("Correct:") and out[1].startswith("Incorrect:")
    recorded = progress.load()["00_setup"]
    assert (recorded["q1"]["status"], recorded["q1"]["done"]) == ("correct", True)
    assert (recorded["q3"]["status"], recorded["q3"]["done"]) == ("incorrect", False)


def test_nothing_is_kept_before_setup_and_an_unwritable_folder_is_one_note(
    data: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(workbook, "_current", None)
    workbook.record_check("q1", "correct")
    assert not progress.progress_file().exists()
    data.parent.joinpath("a-file").write_text("")
    monkeypatch.setenv(progress.DATA_DIR_VARIABLE, str(data.parent / "a-file" / "data"))
    monkeypatch.setattr(workbook, "_current", workbook.Session("replay", "00_setup", None, None, 1.0, "synthetic"))
    monkeypatch.setattr(workbook, "_noted", set())
    workbook.record_check("q1", "correct")
    workbook.record_check("q2", "correct")
    out = capsys.readouterr().out
    assert out.count("note: your progress was not saved") == 1
