"""Every path in the project is computed from the repository root, here and nowhere else."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # ose/pipeline/paths.py
PARAMS = ROOT / "params.yaml"
PROFILES = ROOT / "profiles"
NOTEBOOKS = ROOT / "notebooks"


def resolve(path: str | Path) -> Path:
    """A path from params or a notebook parameter: relative paths are taken from the repository root."""
    path = Path(path)
    return path if path.is_absolute() else ROOT / path


def shown(path: str | Path) -> str:
    """A path as messages and rendered notebooks show it: relative to the repository root when
    inside it, so a record of a run does not carry the absolute path of the machine that made it."""
    try:
        return resolve(path).resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)
