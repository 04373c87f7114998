"""Build hook: the shipped rule pack and the JSON Schemas travel inside the package.

``rules/`` and ``schemas/`` stay at the top of the repository, where pharmacists edit them and the
tests read them. Building the package (a wheel, or ``pip install .``) copies them into
``crs_rules/data/rules`` and ``crs_rules/data/schemas``, where ``crs_rules._resources`` finds them
with ``importlib.resources``. In a clone, ``crs_rules/data/rules`` and ``crs_rules/data/schemas`` are
relative symlinks to the top-level folders, so an editable install reads the files being edited.
The copy never follows those symlinks: it reads the top-level folders, which the sdist carries too
(``MANIFEST.in``).

Everything else is configured in pyproject.toml.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.errors import FileError

PACKAGE = "crs_rules"
DATA = ("rules", "schemas")  # top-level folder -> crs_rules/data/<folder>


def shipped_files(folder: str) -> list[Path]:
    """The files of a top-level folder that go into the package: all but hidden files and caches."""
    return sorted(
        path
        for path in Path(folder).rglob("*")
        if path.is_file()
        and path.suffix != ".pyc"
        and not any(part.startswith(".") or part == "__pycache__" for part in path.parts)
    )


class build_py_with_data(build_py):  # noqa: N801 (the name setuptools commands have)
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads crs_rules/data/* through the symlinks
        for folder in DATA:
            if not Path(folder).is_dir():
                raise FileError(f"{folder}/ is missing: the package cannot be built without it")
            target = Path(self.build_lib, PACKAGE, "data", folder)
            if target.is_symlink() or target.is_file():
                target.unlink()
            elif target.exists():
                shutil.rmtree(target)  # a file removed from the pack must not survive from an earlier build
            for source in shipped_files(folder):
                self.mkpath(str(target / source.parent.relative_to(folder)))
                self.copy_file(str(source), str(target / source.relative_to(folder)))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        data = [
            str(Path(self.build_lib, PACKAGE, "data", source))
            for folder in DATA
            for source in shipped_files(folder)
        ]
        return [*super().get_outputs(include_bytecode), *data]


setup(cmdclass={"build_py": build_py_with_data})
