"""Writing outputs without losing anything: the one home of lobnet's atomic writes and output-directory rules.

Every command that writes a directory (prepare, export, stream, calibrate, compare, train, demo) goes through
:class:`OutputDir` (a directory it rebuilds whole) or :func:`claim` (a directory it adds to over time: a
training's checkpoints and resume state, the demo's folder). The rules, in :func:`check_output_dir`:

* lobnet replaces or adds to only a directory it wrote itself, recognised by its marker file :data:`MARKER`
  (which names the command), and only for the same command; an existing non-empty directory without the marker,
  or with another command's, is refused, naming what is in it;
* an output directory never holds the command's inputs, nor lies inside an input folder (a prepared table
  inside its own data folder would also change that folder's content key on every run);
* it is never the working directory, nor under a regular file;
* one command at a time writes it: an exclusive ``flock`` on ``.<name>.lock`` beside it, taken for the whole
  command, and a second command is refused at once rather than both reporting success.

Temporary names carry the writer's pid (:func:`temp_path`), so that a later run can tell a leftover of a killed
run (whose pid is gone) from a write in progress and remove it (:func:`clean_stale`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from lobnet.data.errors import OutputDirError

MARKER = ".lobnet-output.json"  # {"command": ..., "lobnet_version": ..., "written": ...}
_TEMP = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-(?P<pid>\d+)-[0-9a-f]{8}$")
# names of earlier lobnet versions' temporaries, which carried no pid: .X.tmp-<hex>, .X.old-<hex>,
# .X.export-tmp, .X.stream-tmp, and the events cache's .<key>.parquet.<uuid hex>.tmp
_LEGACY = re.compile(r"^\.(?P<name>.+?)\.(?:(?:tmp|old)-[0-9a-f]{8}|export-tmp|stream-tmp|[0-9a-f]{32}\.tmp)$")
LEGACY_AGE_S = 3600.0  # a legacy temporary older than this is a leftover (no pid to ask)


def temp_path(path: str | Path, kind: str = "tmp") -> Path:
    """A hidden sibling name for building ``path`` (``kind`` tmp) or parking its old version (``old``)."""
    path = Path(path)
    return path.parent / f".{path.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove(p: Path) -> None:
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def clean_stale(folder: str | Path, name: str | None = None) -> list[Path]:
    """Remove the temporaries in ``folder`` that a killed lobnet run left behind (those of ``name`` only, when
    given): names from :func:`temp_path` whose pid no longer runs, and earlier versions' pid-less names once
    older than :data:`LEGACY_AGE_S`. Returns what it removed."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    now = time.time()
    for p in folder.iterdir():
        if m := _TEMP.match(p.name):
            stale = not _alive(int(m["pid"]))
        elif m := _LEGACY.match(p.name):
            try:
                stale = now - p.lstat().st_mtime > LEGACY_AGE_S
            except FileNotFoundError:
                continue
        else:
            continue
        if stale and (name is None or m["name"] == name):
            _remove(p)
            removed.append(p)
    return removed


@contextlib.contextmanager
def atomic_file(path: str | Path) -> Iterator[Path]:
    """``with atomic_file(path) as tmp:`` write ``tmp``; on success it is renamed to ``path`` (a reader sees the
    whole file or none, and concurrent writers of the same content are harmless), on any exception removed."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_text(path: str | Path, text: str) -> Path:
    """Write a text file atomically (:func:`atomic_file`)."""
    with atomic_file(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | Path, obj) -> Path:
    return write_text(path, json.dumps(obj, indent=2, default=str))


def owner(path: str | Path) -> str | None:
    """The command whose marker ``path`` holds, or None (no marker, or one that is not lobnet's)."""
    try:
        marker = json.loads((Path(path) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return marker.get("command") if isinstance(marker, dict) else None


def _write_marker(path: Path, command: str) -> None:
    from lobnet import __version__

    write_json(path / MARKER, {"command": command, "lobnet_version": __version__, "written": time.time()})


def check_output_dir(out: str | Path, command: str, inputs: Iterable[str | Path | None] = ()) -> Path:
    """``out`` made absolute, or an :class:`OutputDirError` saying why ``command`` must not write it (module
    docstring). ``inputs``: the files and folders the command reads."""
    given = Path(out)
    out = given.resolve()
    for p in (out, *out.parents):
        if p.exists() and not p.is_dir():
            why = "is a file, not a folder" if p == out else f"lies under {p}, which is a file, not a folder"
            raise OutputDirError(given, None, f"output directory {why}")
    cwd = Path.cwd().resolve()
    if cwd == out or cwd.is_relative_to(out):
        raise OutputDirError(given, None, "output directory is the working directory or holds it: name a new folder")
    for i in inputs:
        if i is None:
            continue
        ip = Path(i).resolve()
        if ip == out or ip.is_relative_to(out):
            raise OutputDirError(given, None, f"output directory holds this command's input {i}: choose another")
        if ip.is_dir() and out.is_relative_to(ip):
            raise OutputDirError(given, None, f"output directory lies inside this command's input folder {i}")
    if out.is_dir():
        entries = sorted(e.name for e in out.iterdir() if e.name != MARKER)
        who = owner(out)
        if who is None and entries:
            shown = ", ".join(entries[:5]) + (f" and {len(entries) - 5} more" if len(entries) > 5 else "")
            raise OutputDirError(
                given,
                None,
                f"output directory exists and was not written by lobnet (it holds {shown}); lobnet replaces only a "
                f"folder it wrote itself (marker {MARKER}): remove it or choose another output_dir",
            )
        if who is not None and who != command:
            raise OutputDirError(
                given, None, f"output directory was written by lobnet-{who}, not lobnet-{command}: choose another"
            )
    return out


@contextlib.contextmanager
def locked(path: str | Path) -> Iterator[Path]:
    """Hold an exclusive lock on ``path`` (the file ``.<name>.lock`` beside it) or refuse at once. The lock file
    is removed on release; a waiter that locked a file removed meanwhile takes the new one."""
    path = Path(path)
    lock = path.parent / f".{path.name}.lock"
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:  # a read-only folder, a path under a file
            raise OutputDirError(path, None, f"cannot write beside it ({e.strerror or e})") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise
            raise OutputDirError(
                path, None, f"another lobnet command is writing this directory now (lock {lock}): wait for it to end"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed the lock file between our open and flock: lock the new one
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield lock
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
        os.close(fd)


class OutputDir:
    """``with OutputDir(out, command, inputs) as od:`` write the outputs into ``od.tmp``; on success ``out`` is
    replaced by it in one rename (with lobnet's marker), on any exception ``out`` is left as it was and ``tmp``
    removed. The directory is checked (:func:`check_output_dir`) and locked (:func:`locked`) on entry, for the
    whole block, and a killed run's leftovers beside it are cleaned. :meth:`keep` inside the block leaves ``out``
    as it is (a prepared table that is already up to date)."""

    def __init__(self, out: str | Path, command: str, inputs: Iterable[str | Path | None] = ()):
        self.given, self.command, self.inputs = Path(out), command, list(inputs)
        self.path = check_output_dir(out, command, self.inputs)
        self._lock = None
        self._keep = False
        self.tmp: Path | None = None

    def keep(self) -> None:
        self._keep = True

    def __enter__(self) -> OutputDir:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = locked(self.path)
        self._lock.__enter__()
        try:
            check_output_dir(self.path, self.command, self.inputs)  # again: another run may have written it
            clean_stale(self.path.parent, self.path.name)
            self.tmp = temp_path(self.path)
            self.tmp.mkdir()
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is not None or self._keep:
                shutil.rmtree(self.tmp, ignore_errors=True)
                return
            try:
                _write_marker(self.tmp, self.command)
                if self.path.exists():
                    stale = temp_path(self.path, "old")
                    os.replace(self.path, stale)
                    os.replace(self.tmp, self.path)
                    shutil.rmtree(stale, ignore_errors=True)
                else:
                    os.replace(self.tmp, self.path)
            except BaseException:
                shutil.rmtree(self.tmp, ignore_errors=True)
                raise
        finally:
            self._lock.__exit__(None, None, None)


@contextlib.contextmanager
def claim(out: str | Path, command: str, inputs: Iterable[str | Path | None] = (), lock: bool = True) -> Iterator[Path]:
    """A directory ``command`` adds to over time (checked as :class:`OutputDir` does, created with lobnet's
    marker when new), locked for the block unless ``lock`` is false (the caller locks a finer part of it)."""
    path = check_output_dir(out, command, inputs)
    path.parent.mkdir(parents=True, exist_ok=True)
    with locked(path) if lock else contextlib.nullcontext():
        check_output_dir(path, command, inputs)
        path.mkdir(exist_ok=True)
        if owner(path) is None:
            _write_marker(path, command)
        clean_stale(path)
        yield path
