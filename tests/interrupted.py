"""What the tests of interrupted runs share: a disk that fills (FullDisk), a training in a process of its own
to stop (start_training; start, the stress test's, on a disk that fills) and waiting for the files it
writes."""

import errno
import os
import subprocess
import sys
import time

from helpers import ROOT, TINY
import _training
import engine
from util import cli, files, runs


ATOMIC_WRITE = files.atomic_write


class FullDisk:
    """files.atomic_write on a disk that is full once `budget` more bytes are written: the write that crosses
    it fails with ENOSPC, and so does every later one (until the process ends, i.e. space is freed)."""

    def __init__(self, budget):
        self.left, self.real = budget, ATOMIC_WRITE

    def __call__(self, path, write):
        disk = self

        class Limited:
            def __init__(self, f):
                self.f = f

            def write(self, b):
                n = len(memoryview(b).cast('B'))
                if n > disk.left:
                    disk.left = 0
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                disk.left -= n
                return self.f.write(b)

            def __getattr__(self, name):
                return getattr(self.f, name)

        return self.real(path, lambda f: write(Limited(f)))


def stress_main():
    """_training.py as the stress test runs it: a disk that fills after $FULL_DISK_BUDGET bytes, if set."""
    if os.environ.get('FULL_DISK_BUDGET'):
        files.atomic_write = FullDisk(int(os.environ['FULL_DISK_BUDGET']))
    cli.run(lambda: _training.main(plan=engine.Plan.plain()))


def start(out, command, budget=None):
    env = dict(os.environ, FULL_DISK_BUDGET=str(budget) if budget is not None else '')
    args = [*command, '--resume'] if (out / runs.CHECKPOINT).exists() else command
    code = (
        f'import sys; sys.path[:0] = [{ROOT!r}, {os.path.join(ROOT, "tests")!r}]; sys.argv[0] = '
        '"_training.py"; import interrupted; interrupted.stress_main()'
    )
    return subprocess.Popen(
        [sys.executable, '-c', code, *map(str, args)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def stopped(p, sig, after):
    try:
        return p.wait(timeout=after)
    except subprocess.TimeoutExpired:
        p.send_signal(sig)
        return p.wait(timeout=120)


def start_training(corpus, out, *extra):
    """_training.py in a process of its own, for a long run (1000 epochs) to stop."""
    return subprocess.Popen(
        [
            sys.executable,
            os.path.join(ROOT, '_training.py'),
            '--corpus',
            str(corpus),
            '--out',
            str(out),
            '--epochs',
            '1000',
            *TINY,
            *extra,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path, timeout=60):
    t = time.time()
    while not os.path.exists(path):
        assert time.time() - t < timeout, f'{path} never appeared'
        time.sleep(0.05)


def wait_for_rewrites(path, n, timeout=60):
    """Wait until the file at path has been replaced by a new one n times (os.replace gives it a new
    inode)."""
    t, seen = time.time(), [os.stat(path).st_ino]
    while len(seen) <= n:
        assert time.time() - t < timeout, f'{path} was not rewritten {n} times'
        try:
            ino = os.stat(path).st_ino
        except FileNotFoundError:  # between the removal and the rename
            ino = seen[-1]
        if ino != seen[-1]:
            seen.append(ino)
        time.sleep(0.005)  # polling, not a guess at how long something takes
