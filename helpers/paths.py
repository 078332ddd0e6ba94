"""Where the repository's lesson files are: the one place that finds ``notebooks/`` from the installed package.

The workbook is used from a clone (``pip install -e .``), so the notebooks' folder sits beside ``helpers/``.
"""

from pathlib import Path

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
"""The repository's ``notebooks/`` folder: the lessons, their cassettes, scripts, data and web apps."""
