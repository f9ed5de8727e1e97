"""Package discovery for the wheel; pyproject.toml holds everything else.

The import package `smtpproto` has two source roots: `smtpproto/` (the core) and `adapters/`,
installed as the subpackage `smtpproto.adapters` (DESIGN.md, "Layout"). setuptools'
``[tool.setuptools.packages.find]`` cannot place one root under another's package, so each
root's subpackages are discovered here and renamed: a new subpackage (``smtpproto.engine``
was once left out of a hand-written list) is in the wheel without anyone listing it.
"""

from setuptools import find_packages, setup


def _packages(root: str, name: str) -> list[str]:
    return [name, *(f"{name}.{sub}" for sub in find_packages(root))]


setup(
    packages=_packages("smtpproto", "smtpproto") + _packages("adapters", "smtpproto.adapters"),
    package_dir={"smtpproto": "smtpproto", "smtpproto.adapters": "adapters"},
)
