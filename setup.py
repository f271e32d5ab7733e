"""Maps the folders core/, plugins/ and testing/ onto the packages myhibachi.core, myhibachi.plugins
and myhibachi.testing."""
from pathlib import Path

from setuptools import setup


def packages(folder: str, package: str) -> list[str]:
    found = []
    for init in sorted(Path(folder).rglob("__init__.py")):
        parts = init.parent.relative_to(folder).parts
        found.append(".".join((package, *parts)))
    return found


setup(packages=packages("core", "myhibachi.core") + packages("plugins", "myhibachi.plugins")
      + packages("testing", "myhibachi.testing"))
