"""Run a script in a terminal against a lesson's recordings, as its notebook's cells run, offline by default.

    python -m helpers.offline NOTEBOOK [--speed S] -- COMMAND [ARG ...]

For example, lesson 03's exercise 4, from the repository's folder with the workbook's environment activated (any
shell: bash, zsh, PowerShell)::

    python -m helpers.offline 03_streaming -- python notebooks/stream_cli.py "Explain what a token is."

It calls :func:`helpers.setup` for ``NOTEBOOK`` (so ``WORKBOOK_MODE`` chooses replay, live or record, as in a
notebook, and the setup line is printed first), runs ``COMMAND`` with the SDK's variables that setup set
(``GOOGLE_GEMINI_BASE_URL`` and the key, with the server's token after it), and exits with its status; the replay
server stops with it. In replay the script's requests must be ones the cassette recorded (00_setup, "Know what
replay can answer").
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from .workbook import WorkbookError, setup


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the command against the notebook's server; its exit status.

    Returns 2, after one line on stderr, when the setup fails (an unknown cassette, a missing key for live) or no
    command follows ``--``.
    """
    parser = argparse.ArgumentParser(prog="python -m helpers.offline", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebook", help="the lesson whose recordings answer, e.g. 03_streaming")
    parser.add_argument("--speed", type=float, default=1.0, help="divide every recorded delay by S (default 1)")
    parser.epilog = "After --, the command to run and its arguments."
    argv = sys.argv[1:] if argv is None else argv
    split = argv.index("--") if "--" in argv else len(argv)
    args, command = parser.parse_args(argv[:split]), argv[split + 1 :]
    if not command:
        parser.error("give the command to run after --, e.g. -- python notebooks/stream_cli.py 'a prompt'")
    try:
        setup(args.notebook, speed=args.speed)
    except WorkbookError as e:
        print(e, file=sys.stderr)
        return 2
    sys.stdout.flush()  # the setup line first, then the command's own output
    return subprocess.run(command, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
