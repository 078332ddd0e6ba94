"""The workbook's helpers: the replay server, the setup call, and (as lessons need them) timing, plots and checks.

Notebooks start with ``import helpers`` and ``helpers.setup("NN_name")``.
"""

from .models import FLASH, FLASH_LITE
from .preflight import doctor
from .workbook import Session, WorkbookError, setup

__all__ = ["FLASH", "FLASH_LITE", "Session", "WorkbookError", "doctor", "setup"]
