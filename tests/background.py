"""A long script run beside the other tests: begun as the session starts, in a process of its own, and waited
for by its test (conftest.py begins it where its test is among those to run)."""

import os
import subprocess
import sys

from helpers import ROOT, script

_started = {}  # the scripts start_script began: the processes by name


def start_script(name, *args, env=None):
    """Start a script as a user does, now, in a process of its own that runs beside the tests (for a long one,
    alone on the second core: one OpenBLAS thread); finished_script(name, ...) waits for its result."""
    full = {**os.environ, 'OPENBLAS_NUM_THREADS': '1', **(env or {})}
    _started[name] = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, name), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=full,
    )


def finished_script(name, *args):
    """The result of the script that start_script began, as script() returns it; where none was begun, run
    now."""
    process = _started.pop(name, None)
    if process is None:
        return script(name, *args)
    out, err = process.communicate(timeout=600)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def stop_started():
    """End the scripts begun that no test waited for (a run stopped early, -x)."""
    for process in _started.values():
        process.kill()
        process.communicate()
    _started.clear()
