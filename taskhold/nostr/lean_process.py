"""One function run on one argument in a fresh interpreter that imports only that function's
module: the other processes of a rebuild's batch signature check.

``multiprocessing``'s spawn start imports the parent's main module again in each child. For
``taskhold rebuild`` that is ``taskhold.cli`` and every package under it, for the rebuild bench
its script and the test support: 3 to 5 s of CPU on a slow host, more than the 10,000
signatures a child was started to check. Forking would skip that, but not while the parent runs
other threads (aiosqlite's, the event loop's resolver), whose locks a child would inherit in
whatever state they are.

So the child here is ``python -c`` with a few lines that read from stdin the parent's
``sys.path`` (the same checkout's ``taskhold``), the function's module and name and its
argument, import that one module, and write the pickled result to the stdout they started with
(anything the module prints goes to stderr). The argument and the result are the parent's own
data, pickled both ways as ``multiprocessing`` would.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["LeanProcess"]

_Argument = TypeVar("_Argument")
_Result = TypeVar("_Result")

_CHILD = """\
import pickle, sys
path, module, name, argument = pickle.load(sys.stdin.buffer)
sys.path[:0] = path
result_to, sys.stdout = sys.stdout.buffer, sys.stderr
import importlib
function = getattr(importlib.import_module(module), name)
result_to.write(pickle.dumps(function(argument), protocol=pickle.HIGHEST_PROTOCOL))
"""


class LeanProcess(Generic[_Argument, _Result]):
    """``function(argument)`` started in another process; ``result()`` waits for its answer.

    ``function`` must be a module-level function; a failure in the child (its traceback goes
    to stderr) raises ``RuntimeError`` in ``result()``."""

    def __init__(self, function: Callable[[_Argument], _Result], argument: _Argument) -> None:
        self._name = f"{function.__module__}.{function.__qualname__}"
        payload = (sys.path, function.__module__, function.__qualname__, argument)
        self._process = subprocess.Popen(
            [sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert self._process.stdin is not None
        try:
            with self._process.stdin:  # the child reads it all before it imports anything
                self._process.stdin.write(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
        except BaseException:
            self.close()
            raise

    def result(self) -> _Result:
        assert self._process.stdout is not None
        try:
            output = self._process.stdout.read()
            if self._process.wait() != 0:
                raise RuntimeError(f"{self._name} failed in its process")
            result: _Result = pickle.loads(output)
            return result
        finally:
            self.close()

    def close(self) -> None:
        """Stop the child if it still runs (the parent gave up on it) and release its pipes."""
        if self._process.poll() is None:
            self._process.kill()
        self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
