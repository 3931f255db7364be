"""Plain helpers shared by the test files: the repository's folder (ROOT, put on the import path here),
running a script as a user does (script: in a process of its own; run_here: in this one), the one tiny
training (TINY, train) and the checks of a run folder. The LSTM from its equations is in reference.py. The
shared fixtures are in conftest.py, which imports this file (never the other way round)."""

import contextlib
import importlib
import io
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository's folder
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import _training  # noqa: E402  (needs ROOT on the path)
import engine  # noqa: E402
from optimizer import RMSprop  # noqa: E402
from util import blas, checkpoint, cli, devices, files, runs  # noqa: E402
from util.weights import load_params  # noqa: E402
from util.errors import UserError  # noqa: E402

SAVES = os.path.join(ROOT, 'saves')  # the shipped model, lookup table, corpus and sample
SHIPPED_LOG = os.path.join(SAVES, 'training_log.csv')  # the shipped model's training log
SHIPPED_CURVE = os.path.join(ROOT, 'images', 'learning_curve.svg')  # and its learning curve, drawn from it


def script(name, *args, cwd=ROOT, env=None):
    """Run a script as a user does; env: variables to set (an empty value removes the variable)."""
    full = dict(os.environ)
    for k, v in (env or {}).items():
        if v:
            full[k] = v
        else:
            full.pop(k, None)
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, name), *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
        env=full,
    )


def run_here(name, *args, cwd=ROOT, env=None, stdout=None):
    """Run a script in this process as `python name args` runs it: its main() through cli.run, with sys.argv,
    the folder, stdout and stderr (file descriptors 1 and 2, files here) and the warnings a fresh process
    shows, no GPU opened yet (util.devices opens one once a process); its exit status from SystemExit. Returns
    what script() returns. For a result or a message; what only a process shows (a signal, a closed or
    redirected stream, the terminal, stdin, what happens at import or start, the environment read at start, a
    fresh process's reproducibility) needs script(). env: variables to set for the run (an empty value removes
    one), only those read after start; stdout: a path to write stdout to (`> path`), whose text is then not
    captured. Whatever a script sets for the whole process is put back after (fresh_process)."""
    module = importlib.import_module(name[:-3])
    argv = [str(a) for a in args]
    with tempfile.TemporaryDirectory() as tmp:
        out, err = os.path.join(tmp, 'stdout') if stdout is None else str(stdout), os.path.join(tmp, 'stderr')
        with descriptors_to(out, err), fresh_process([os.path.join(ROOT, name), *argv], cwd, env):
            try:
                cli.run(lambda: module.main(argv))
                code = 0  # (cli.run always exits)
            except SystemExit as e:
                code = 0 if e.code is None else e.code if isinstance(e.code, int) else 1
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
        out_text = None if stdout is not None else read_text(out)
        return subprocess.CompletedProcess([name, *argv], code, out_text, read_text(err))


def read_text(path):
    with open(path, encoding='utf-8') as f:
        return f.read()


@contextlib.contextmanager
def descriptors_to(stdout, stderr):
    """File descriptors 1 and 2 on the files stdout and stderr (made anew), and sys.stdout and sys.stderr text
    streams on them in UTF-8, stderr line-buffered, as a fresh process has; all put back after."""
    saved_streams = sys.stdout, sys.stderr
    for stream in saved_streams:
        stream.flush()
    saved = os.dup(1), os.dup(2)
    for fd, path in ((1, stdout), (2, stderr)):
        new = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(new, fd)
        os.close(new)
    try:
        sys.stdout = open(1, 'w', encoding='utf-8', closefd=False)
        sys.stderr = open(2, 'w', buffering=1, encoding='utf-8', closefd=False)
        yield
    finally:
        sys.stdout, sys.stderr = saved_streams
        for fd, old in ((1, saved[0]), (2, saved[1])):
            os.dup2(old, fd)
            os.close(old)


@contextlib.contextmanager
def fresh_process(argv, cwd, env):
    """sys.argv, the folder, the environment (env: variables to set; an empty value removes one), no GPU
    opened and the warnings a fresh `python script.py` shows (pytest records them instead); after, these and
    what a script sets for the whole process (signal handlers, the excepthook, OpenBLAS's threads, numpy's
    print and error settings) put back."""
    saved_argv, saved_cwd, saved_environ, saved_hook = sys.argv, os.getcwd(), dict(os.environ), sys.excepthook
    saved_signals = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    saved_numpy, saved_threads = (np.get_printoptions(), np.geterr()), blas.get_threads()
    saved_devices = dict(devices._opened)
    try:
        for k, v in (env or {}).items():
            if v:
                os.environ[k] = v
            else:
                os.environ.pop(k, None)
        os.chdir(cwd)
        devices._opened.clear()
        sys.argv = argv
        with warnings.catch_warnings():
            pythons_own_warning_filters()
            warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: (
                sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))
            )
            yield
    finally:
        sys.argv, sys.excepthook = saved_argv, saved_hook
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_environ)
        for s, handler in saved_signals.items():
            signal.signal(s, handler)
        np.set_printoptions(**saved_numpy[0])
        np.seterr(**saved_numpy[1])
        if saved_threads is not None:
            blas.set_threads(saved_threads)
        devices._opened.clear()
        devices._opened.update(saved_devices)


def pythons_own_warning_filters():
    """The warning filters of a fresh `python script.py`."""
    warnings.resetwarnings()
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.simplefilter('ignore', category)
    warnings.filterwarnings('default', category=DeprecationWarning, module='__main__')


class Terminal(io.StringIO):
    """A text stream that says it is a terminal: where a script draws its progress line."""

    def isatty(self):
        return True


def in_parallel(function, items):
    """[function(item) for item in items], four at a time on threads: for a test that starts many short
    processes (each mostly waits for Python and numpy to load), so that it takes less of two cores' time."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(function, items))


def assert_one_line_error(r, *words):
    """r (a finished script) failed with status 2 and one line on stderr holding each of words."""
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr  # one line, no traceback
    assert 'Traceback' not in r.stderr
    for w in words:
        assert w in lines[0], lines[0]


def into_a_closed_pipe(name, *args):
    """Run a script with its stdout a pipe that nobody reads any more (as `| head` leaves it)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [sys.executable, os.path.join(ROOT, name), *map(str, args)],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            timeout=600,
        )
    finally:
        os.close(write)


def tiny_corpus(n=6000, seed=0):
    """A learnable text: a few words repeated in random order, with line breaks."""
    rng = np.random.default_rng(seed)
    words = ['to', 'be', 'or', 'not', 'that', 'is', 'the', 'question', 'KING:', 'ROMEO:']
    out = []
    while sum(len(w) + 1 for w in out) < n:
        out.append(words[rng.integers(len(words))])
    text = ''
    for k, w in enumerate(out):
        text += w + ('\n' if k % 7 == 6 else ' ')
    return text[:n]


# --- the tiny training and its run folder -------------------------------------------------------------------

# The one tiny training of the tests: float64 and one thread, so that a run and its reference compute the same
# products; quiet, no sample. A test that needs another size or setting adds it after (the last value counts).
TINY = [
    '--hidden',
    '8',
    '--chunks',
    '4',
    '--window',
    '10',
    '--dtype',
    'float64',
    '--dropout',
    '0.2',
    '--threads',
    '1',
    '--quiet',
    '--sample-length',
    '0',
]
TINY_LOUD = [a for a in TINY if a != '--quiet']  # the same, printing what a run prints
# _benchmark.py at a size that takes a moment: what its output says, not its figures
TINY_BENCHMARK = [
    '--hidden',
    8,
    '--chunks',
    2,
    '--window',
    4,
    '--rounds',
    1,
    '--warmup',
    0,
    '--sample-length',
    5,
    '--no-torch',
]


def train(*args, measured=False):
    """_training.main with the plain products (engine.Plan.plain()): a run and its reference compute the same
    products whatever the timings would measure; measured: the block widths timed, as a user's run does."""
    return _training.main([str(a) for a in args], plan=None if measured else engine.Plan.plain())


def fails(capsys, *args):
    """Run _training.main expecting a refusal: a UserError (which cli.run prints as one line, status 2), or
    one line on stderr and exit status 2 (a UserError through cli.run). Returns the line."""
    with pytest.raises((SystemExit, UserError)) as e:
        train(*args)
    if isinstance(e.value, UserError):
        assert capsys.readouterr().err == '' and '\n' not in str(e.value)
        return f'_training.py: error: {e.value}'
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def load(folder):
    return checkpoint.load(folder / runs.CHECKPOINT, lambda p: RMSprop(p))


def assert_same_run(a, b):
    """Two run folders hold the same run: checkpoint arrays, random state and the log's epochs, bit for
    bit."""
    (p1, o1, s1, m1, _e1), (p2, o2, s2, m2, _e2) = load(a), load(b)
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
    rows = runs.log_rows(folder / runs.LOG)
    return [r[:5] + r[7:] for r in rows if r[7] in ('epoch', 'best')]


def assert_whole(folder):
    """The files derived from the checkpoint match it, and no temporary file is left."""
    _, _, _, meta, ema = load(folder)
    weights, wmeta = load_params(folder / runs.WEIGHTS, dtype=np.float64)
    assert wmeta['commit'] == meta['commit'] and wmeta['step'] == meta['position']['step']
    assert wmeta['alphabet'] == meta['chars']  # the weights name their lookup table
    assert json.loads((folder / runs.LOOKUP).read_text()) == meta['chars']
    assert (folder / runs.LOG).read_text() == runs.log_text(meta['log'])
    pos = meta['position']
    if pos.get('best_step') is not None:
        _, _, _, best, _ = load(folder / runs.BEST)
        assert (
            best['position']['step'] == pos['best_step'] and best['position']['val_loss'] == pos['best_val']
        )
    assert not [
        n for d in (folder, folder / runs.BEST) if d.exists() for n in os.listdir(d) if n.endswith('.tmp')
    ]


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


def read_bytes(path):
    with open(path, 'rb') as f:
        return f.read()


def two_epoch_log(folder):
    """A two-epoch training log to plot, in folder."""
    log = folder / 'training_log.csv'
    log.write_text(
        'epoch,step,train_loss,val_loss,lr,seconds,chars_per_s,event\n'
        '1,67,3.6497,3.3744,0.001,0,36642,best\n2,134,3.3392,3.2371,0.001,0,39364,best\n'
    )
    return log


def write_bytes(path, raw):
    path.write_bytes(raw)
    return path


def model_args(folder):
    """The options that name the model of the model_dir fixture."""
    return ['--weights', folder / 'w.npz', '--lookup', folder / 'l.json']


def read_pty(fd):
    """What a process wrote to the terminal whose master end is fd, until it closes it (or a minute
    passes)."""
    chunks = []
    while True:
        ready, _, _ = select.select([fd], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b''.join(chunks).decode('utf-8', 'replace')
