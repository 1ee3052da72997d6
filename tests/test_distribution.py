"""How paykit is installed: the distribution's name, its install lines, and missing extras."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib.metadata import version
from pathlib import Path

import pytest

import paykit
from paykit._version import DISTRIBUTION

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
INSTALL = re.compile(r"pip install ['\"]?([A-Za-z0-9_.-]+)(?:\[[a-z,]+\])?['\"]?")


class TestDistributionName:
    """The package index name is pyproject's, and every install line uses it."""

    def test_the_code_knows_the_distribution_name(self) -> None:
        assert PROJECT["name"] == DISTRIBUTION

    def test_readme_install_line_names_this_project(self) -> None:
        """README's `pip install` line installs the project pyproject.toml describes, not a namesake."""
        names = INSTALL.findall((ROOT / "README.md").read_text())

        assert names
        assert {PROJECT["name"]} == set(names)

    def test_every_docs_install_line_names_this_project(self) -> None:
        pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md")), *sorted((ROOT / "examples").glob("*.py"))]
        wrong = {
            (str(page.relative_to(ROOT)), name)
            for page in pages
            for name in INSTALL.findall(page.read_text())
            if name.startswith("paykit") and name != PROJECT["name"]
        }

        assert set() == wrong

    def test_extras_refer_to_this_project(self) -> None:
        """`all`, `test` and `dev` pull in extras of this distribution, not of `paykit` on the index."""
        references = [
            requirement.split("[")[0]
            for requirements in PROJECT["optional-dependencies"].values()
            for requirement in requirements
            if requirement.startswith("paykit")
        ]

        assert references
        assert {PROJECT["name"]} == set(references)

    def test_installed_version_is_the_package_version(self) -> None:
        assert paykit.__version__ == version(DISTRIBUTION)


class TestMissingExtra:
    """A missing optional dependency raises MissingExtraError: a ConfigurationError and an ImportError."""

    @pytest.mark.parametrize(
        ("statement", "hidden", "extra"),
        [
            ("from paykit.providers import StripeProvider", "stripe", "stripe"),
            ("from paykit.providers import AsyncStripeProvider", "stripe", "stripe"),
            ("from paykit.providers.stripe import StripeProvider", "stripe", "stripe"),
            ("from paykit.storage import MongoStorage", "pymongo", "mongo"),
            ("from paykit.providers import KnetProvider", "cryptography", "knet"),
            ("from paykit.providers import AsyncKnetProvider", "cryptography", "knet"),
            ("from paykit.providers import PayPalProvider", "cryptography", "paypal"),
            ("from paykit.providers import AsyncPayPalProvider", "cryptography", "paypal"),
        ],
    )
    def test_missing_extra_names_the_extra(self, statement: str, hidden: str, extra: str) -> None:
        code = (
            f"import sys; sys.modules[{hidden!r}] = None\n"
            "from paykit import ConfigurationError, MissingExtraError\n"
            f"try:\n    {statement}\n"
            "except MissingExtraError as exc:\n"
            "    assert isinstance(exc, ConfigurationError) and isinstance(exc, ImportError)\n"
            "    print(exc.extra, '|', exc)\n"
        )
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)

        assert 0 == result.returncode, result.stderr
        assert f"{extra} | " in result.stdout
        assert f'pip install "{DISTRIBUTION}[{extra}]"' in result.stdout

    def test_is_both_categories(self) -> None:
        error = paykit.MissingExtraError("MongoStorage", extra="mongo", package="pymongo")

        assert isinstance(error, paykit.ConfigurationError)
        assert isinstance(error, ImportError)
        assert 'MongoStorage needs pymongo: pip install "paykit-payments[mongo]"' == str(error)


def test_the_wheel_ships_the_message_templates(tmp_path: Path) -> None:
    """The channels' built-in templates are package data: a wheel without them would fail at startup."""
    import zipfile

    from hatchling.builders.wheel import WheelBuilder

    wheel = next(iter(WheelBuilder(str(ROOT)).build(directory=str(tmp_path))))
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {name.removeprefix("paykit/channels/templates/") for name in names if "channels/templates/" in name}
    source = {
        path.relative_to(ROOT / "src/paykit/channels/templates").as_posix()
        for path in (ROOT / "src/paykit/channels/templates").rglob("*")
        if path.is_file()
    }

    assert {"layout.html", "en/payment_succeeded.html", "ar/payment_succeeded.txt"} <= shipped
    assert source == shipped
