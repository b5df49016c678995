"""The examples in the docstrings are part of the suite.

Every module of the project's packages whose source has a ``>>>`` example is
imported and its doctests run; a module whose examples fail (or whose
examples are no longer found) fails here.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gis_server", "layers", "ingest", "models", "map_ui")
#: Alembic revisions are scripts run by Alembic, not modules to import.
SKIP = ("gis_server/migrations/",)


def _modules_with_examples() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if any(rel.startswith(s) for s in SKIP):
                continue
            if ">>>" in path.read_text(encoding="utf-8"):
                found.append(rel.removesuffix(".py").replace("/", "."))
    return found


MODULES = _modules_with_examples()


def test_the_supervision_modules_are_covered():
    expected = {
        "models.supervision.sites",
        "models.supervision.fund",
        "models.supervision.buildings",
        "models.supervision.concrete",
        "models.supervision.inspections",
    }
    assert expected <= set(MODULES)


@pytest.mark.parametrize("module", MODULES)
def test_doctests(module):
    result = doctest.testmod(
        importlib.import_module(module.removesuffix(".__init__")),
        optionflags=doctest.ELLIPSIS,
    )
    assert result.attempted > 0, f"{module}: no example found"
    assert result.failed == 0, f"{module}: {result.failed} example(s) failed"
