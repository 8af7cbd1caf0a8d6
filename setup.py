"""Maps the repo's top-level `training/` and `plugins/` folders under the `photosr` namespace.

Everything else about the project is in pyproject.toml; only the package list needs code, because
setuptools' `packages.find` cannot combine with a renamed folder.
"""

from setuptools import find_packages, setup


def _under(prefix: str, folder: str) -> list[str]:
    return [prefix, *(f"{prefix}.{name}" for name in find_packages(folder))]


setup(
    packages=_under("photosr", "photosr") + _under("photosr.training", "training") + ["photosr.bundled"],
    package_dir={"photosr": "photosr", "photosr.training": "training", "photosr.bundled": "plugins"},
)
