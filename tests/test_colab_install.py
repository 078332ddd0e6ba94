"""requirements-colab.txt installs on Google Colab's runtime without changing its kernel packages or numpy.

Resolved with uv against Colab's published package list (``tests/data/colab/``, see its README) for Colab's Python
3.13 on Linux x86_64, wheels only, as ``pip install --no-deps -r requirements-colab.txt`` leaves the runtime
(:mod:`tests.colab_env`). Reads PyPI's metadata (uv's cache answers after the first run).
"""

from __future__ import annotations

import importlib.metadata

from . import colab_env
from .colab_env import KEPT, KERNEL, listed_pins, problems

HEAD, TAIL = listed_pins()
LISTED = {**HEAD, **TAIL}


def test_requirements_colab_resolves_on_colab_keeping_its_kernel_packages_and_numpy() -> None:
    assert problems(LISTED) == []
    resolution = colab_env.resolve_listed(LISTED)
    colab = colab_env.colab_pins()
    assert {name: resolution.pins[name] for name in KEPT} == {name: colab[name] for name in KEPT}
    assert resolution.pins["google-genai"] == HEAD["google-genai"], "the SDK the recordings were checked against"


def test_every_package_helpers_and_the_lessons_import_comes_from_colab_or_the_file() -> None:
    """A module whose distribution is not in the resolved runtime would be missing there (``--no-deps``)."""
    pins = colab_env.resolve_listed(LISTED).pins
    distributions = importlib.metadata.packages_distributions()
    missing = {
        module: distributions.get(module, [])
        for module in colab_env.imported_modules()
        if not any(colab_env.normalize(name) in pins for name in distributions.get(module, []))
    }
    assert missing == {}, "list these in requirements-colab.txt (or, if Colab has them, in tests/colab_env.FROM_COLAB)"


def test_it_never_lists_a_kernel_package_numpy_matplotlib_or_pillow() -> None:
    assert not set(LISTED) & set(KEPT)
    assert set(KERNEL) < set(KEPT) and "numpy" in KEPT


def test_the_lessons_pins_are_the_workbooks() -> None:
    workbook = colab_env.workbook_pins()
    assert {name: workbook.get(name) for name in HEAD} == HEAD, "update requirements-colab.txt with requirements.txt"


# The check can fail: each way a change could break Colab is caught, with a message saying what to do.


def test_a_requirement_that_moves_numpy_is_caught() -> None:
    (found,) = problems(LISTED, extra=["numpy>=2.4"])
    assert found.startswith("no Colab runtime holds these pins together; uv says:") and "numpy" in found


def test_listing_a_kernel_package_is_caught() -> None:
    found = problems({**LISTED, "ipykernel": "7.4.0"})
    assert found[0].startswith("requirements-colab.txt lists ipykernel, which Colab keeps at 6.17.1: remove it")


def test_a_needed_upgrade_left_out_is_caught() -> None:
    without = {name: version for name, version in LISTED.items() if name != "google-auth"}
    (found,) = problems(without)
    assert "google-auth" in found and "google-genai" in found, "uv names the SDK's google-auth>=... against Colab's"


def test_a_new_dependency_left_out_is_caught() -> None:
    name = min(set(TAIL) - set(colab_env.colab_pins()))  # one Colab does not have: pip --no-deps would skip it
    without = {listed: version for listed, version in LISTED.items() if listed != name}
    found = problems(without)
    assert any(f"{name}=={TAIL[name]} is needed" in line and "Colab does not have it" in line for line in found)
