"""Put a new package's files on disk, never over anything that is there."""

from __future__ import annotations

from pathlib import Path

from .render import PackageFile


class TargetRefused(ValueError):
    """The package cannot be written there; the message says why."""


def check_target(folder: Path) -> None:
    """A new package goes into a folder that does not exist yet, or an empty one."""
    if folder.is_symlink() and not folder.exists():
        raise TargetRefused(f"{folder} is a broken symbolic link; choose another --dir")
    if folder.exists() and not folder.is_dir():
        raise TargetRefused(f"{folder} exists and is not a folder; choose another --dir")
    if folder.is_dir():
        try:
            taken = next(iter(folder.iterdir()), None)
        except OSError as exc:
            raise TargetRefused(f"{folder} cannot be read ({exc.strerror}); choose another --dir") from None
        if taken is not None:
            raise TargetRefused(f"{folder} is not empty (it holds {taken.name}); new-plugin never overwrites "
                                "anything: choose another --dir, or an empty folder")


def write_package(folder: Path, files: list[PackageFile]) -> list[Path]:
    """Write ``files`` under ``folder`` (checked first); returns the paths written.

    Each file is created exclusively: should something appear meanwhile, it is kept and the
    write stops with :class:`TargetRefused`."""
    check_target(folder)
    written: list[Path] = []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for item in files:
            path = folder.joinpath(*item.path.split("/"))
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("x", encoding="utf-8", newline="\n") as out:
                out.write(item.text)
            written.append(path)
    except FileExistsError as exc:
        raise TargetRefused(f"{exc.filename} appeared while the package was written; it was left as it is") from None
    except OSError as exc:
        where = exc.filename or folder
        raise TargetRefused(f"cannot write {where}: {exc.strerror or exc}; choose another --dir") from None
    return written
