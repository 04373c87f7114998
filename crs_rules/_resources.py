"""Where the shipped rule pack and the JSON Schemas are.

They live at the top of the source tree (``rules/`` and ``schemas/``) beside the package, which is
how the project is installed (an editable install from a clone).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["project_root", "schema_dir", "default_pack_dir"]


def project_root() -> Path:
    return Path(__file__).resolve().parent.parent


def schema_dir() -> Path:
    return project_root() / "schemas"


def default_pack_dir() -> Path:
    return project_root() / "rules"
