"""Start, find and stop the devnet's daemons by the pid each one recorded.

A pid file holds ``<pid> <start time>``: the start time (field 22 of ``/proc/<pid>/stat``) tells
our process apart from an unrelated one that got the same pid after a reboot or a crash, so
``down`` never signals a stranger. Daemons run in their own session, so they outlive the command
that started them and a Ctrl-C in that terminal does not reach them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["alive_pid", "spawn", "stop"]


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks, or ``None`` if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces.
    fields = stat[stat.rindex(")") + 2 :].split()
    state, start_time = fields[0], fields[19]
    if state in ("Z", "X"):
        return None
    return start_time


def _reap(pid: int) -> None:
    """Collect the exit status if the process is our own child (else it stays a zombie)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    pid_path: Path,
    env: Mapping[str, str] | None = None,
) -> int:
    """Start ``argv`` detached, stdout+stderr appended to ``log_path``; record and return its pid.
    ``env`` replaces the environment (logins that must not show in ``ps``).

    ``posix_spawn`` rather than :class:`subprocess.Popen`: the daemon must outlive this process,
    and a dropped ``Popen`` object would warn about a child it thinks was forgotten.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    pid_path.parent.mkdir(parents=True, exist_ok=True)
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        pid = os.posix_spawn(
            argv[0],
            list(argv),
            dict(os.environ if env is None else env),
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_DUP2, log_fd, 1),
                (os.POSIX_SPAWN_DUP2, log_fd, 2),
            ],
            setsid=True,
        )
    finally:
        os.close(log_fd)
    pid_path.write_text(f"{pid} {_start_time(pid) or ''}\n")
    return pid


def alive_pid(pid_path: Path) -> int | None:
    """The recorded pid if that very process is still running, else ``None``."""
    try:
        recorded = pid_path.read_text().split()
    except OSError:
        return None
    if not recorded:
        return None
    pid = int(recorded[0])
    _reap(pid)
    started = _start_time(pid)
    if started is None:
        return None
    if len(recorded) > 1 and recorded[1] != started:
        return None  # the pid was reused by another process
    return pid


async def stop(pid_path: Path, *, grace_seconds: float = 30.0) -> bool:
    """SIGTERM the recorded process, wait, SIGKILL after ``grace_seconds``; remove the pid file.

    Returns whether a live process was found. Returns only once the process is gone.
    """
    pid = alive_pid(pid_path)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace_seconds
        while alive_pid(pid_path) is not None:
            if loop.time() > deadline:
                os.kill(pid, signal.SIGKILL)
                deadline = loop.time() + 10.0
            await asyncio.sleep(0.1)
    _forget(pid_path)
    return pid is not None


def _forget(pid_path: Path) -> None:
    pid_path.unlink(missing_ok=True)
