"""No import cycles inside the project's packages (read from the source with ``ast``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from oec_testkit.imports import import_cycles

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("package_dir", "package_name"), [
    ("operator/oec_operator", "oec_operator"),
    ("simulator/oec_simulator", "oec_simulator"),
    ("testkit/oec_testkit", "oec_testkit"),
])
def test_package_has_no_import_cycle(package_dir: str, package_name: str) -> None:
    assert import_cycles(ROOT / package_dir, package_name) == []


def test_a_cycle_through_a_local_import_is_found(tmp_path: Path) -> None:
    """The shape the simulator had: a schema module importing the route table inside a function."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "from .api import ROUTES\n",
        "api.py": "from .runtime import State\nROUTES = []\n",
        "runtime.py": "from . import rules\nclass State: ...\n",
        "rules.py": "def names():\n    from .api import ROUTES\n    return ROUTES\n",
        "leaf.py": "import json\nfrom pkg.sub.deep import X\n",
        "sub/__init__.py": "",
        "sub/deep.py": "from ..leaf import json\nX = 1\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    assert import_cycles(pkg, "pkg") == [["pkg.api", "pkg.rules", "pkg.runtime"], ["pkg.leaf", "pkg.sub.deep"]]


def test_no_cycle_no_finding(tmp_path: Path) -> None:
    (tmp_path / "__init__.py").write_text("from . import a\n")
    (tmp_path / "a.py").write_text("from .b import x\n")
    (tmp_path / "b.py").write_text("import os\nx = os.sep\n")
    assert import_cycles(tmp_path, "p") == []
