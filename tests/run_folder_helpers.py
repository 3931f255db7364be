"""Helpers of the run-folder tests (test_run_folder.py, test_run_folder_faults.py): a tiny training, a disk that
fills, and checks that a run folder is whole and holds the same run as another."""
import errno
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import _training
from util import cli
import engine
from util import files
from util import runs
from conftest import ROOT
from helpers import tiny_corpus
from optimizer import RMSprop

TINY = ['--hidden', '8', '--chunks', '4', '--window', '10', '--dtype', 'float64', '--dropout', '0.2',
        '--threads', '1', '--quiet', '--sample-length', '0']


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / 'corpus.txt'
    path.write_text(tiny_corpus(1500), encoding='utf-8')   # 33 steps per epoch
    return path


def train(*args):
    """_training.main with the plain products (engine.Plan.plain()): a run and its reference compute the same
    products whatever the timings would measure."""
    return _training.main([str(a) for a in args], plan=engine.Plan.plain())


def fails(capsys, *args):
    """Run _training.main expecting one line on stderr and exit status 2; return the line."""
    with pytest.raises(SystemExit) as e:
        train(*args)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def load(folder):
    return files.load_checkpoint(folder / runs.CHECKPOINT, lambda p: RMSprop(p))


def assert_same_run(a, b):
    """Two run folders hold the same run: checkpoint arrays, random state and the log's epochs, bit for bit."""
    (p1, o1, s1, m1, e1), (p2, o2, s2, m2, e2) = load(a), load(b)
    assert m1['position']['step'] == m2['position']['step'] and m1['rng'] == m2['rng']
    for k in p1:
        np.testing.assert_array_equal(p1[k], p2[k])
        np.testing.assert_array_equal(o1.cache[k], o2.cache[k])
    for (h1, c1), (h2, c2) in zip(s1, s2):
        np.testing.assert_array_equal(h1, h2)
        np.testing.assert_array_equal(c1, c2)
    assert epoch_rows(a) == epoch_rows(b)


def epoch_rows(folder):
    """The log's epoch rows without their timings: epoch, step, training and validation loss, lr, event."""
    rows = runs.read_log(folder / runs.LOG)
    return [r[:5] + r[7:] for r in rows if r[7] in ('epoch', 'best')]


def assert_whole(folder):
    """The files derived from the checkpoint match it, and no temporary file is left."""
    _, _, _, meta, ema = load(folder)
    weights, wmeta = files.load_params(folder / runs.WEIGHTS, dtype=np.float64)
    assert wmeta['commit'] == meta['commit'] and wmeta['step'] == meta['position']['step']
    assert wmeta['alphabet'] == meta['chars']           # the weights name their lookup table
    assert json.loads((folder / runs.LOOKUP).read_text()) == meta['chars']
    assert (folder / runs.LOG).read_text() == runs.log_text(meta['log'])
    pos = meta['position']
    if pos.get('best_step') is not None:
        _, _, _, best, _ = load(folder / runs.BEST)
        assert best['position']['step'] == pos['best_step'] and best['position']['val_loss'] == pos['best_val']
    assert not [n for d in (folder, folder / runs.BEST) if d.exists() for n in os.listdir(d) if n.endswith('.tmp')]


ATOMIC_WRITE = files.atomic_write


class FullDisk:
    """files.atomic_write on a disk that is full once `budget` more bytes are written: the write that crosses it
    fails with ENOSPC, and so does every later one (until the process ends, i.e. space is freed)."""

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


def written_files(monkeypatch, *args):
    """Run a training while recording every file written: [(path, bytes)] in order."""
    calls, real = [], files.atomic_write

    def record(path, write):
        real(path, write)
        calls.append((os.path.relpath(path, args[args.index('--out') + 1]), os.path.getsize(path)))
    monkeypatch.setattr(files, 'atomic_write', record)
    assert train(*args) == 0
    monkeypatch.setattr(files, 'atomic_write', real)
    return calls


def stress_main():
    """_training.py as the stress test runs it: a disk that fills after $FULL_DISK_BUDGET bytes, if set."""
    if os.environ.get('FULL_DISK_BUDGET'):
        files.atomic_write = FullDisk(int(os.environ['FULL_DISK_BUDGET']))
    cli.run(lambda: _training.main(plan=engine.Plan.plain()))


def start(out, command, budget=None):
    env = dict(os.environ, FULL_DISK_BUDGET=str(budget) if budget is not None else '')
    args = [*command, '--resume'] if (out / runs.CHECKPOINT).exists() else command
    code = (f'import sys; sys.path[:0] = [{ROOT!r}, {os.path.join(ROOT, "tests")!r}]; sys.argv[0] = "_training.py"; '
            'import conftest, run_folder_helpers; run_folder_helpers.stress_main()')
    return subprocess.Popen([sys.executable, '-c', code, *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def stopped(p, sig, after):
    try:
        return p.wait(timeout=after)
    except subprocess.TimeoutExpired:
        p.send_signal(sig)
        return p.wait(timeout=120)
