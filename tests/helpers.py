"""Plain helpers shared by the test files: the repository's folder (ROOT, put on the import path here), running a
script as a user does, the one tiny training (TINY, train) and the checks of a run folder. The shared fixtures are
in conftest.py, which imports this file (never the other way round)."""

import errno
import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository's folder
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import _training  # noqa: E402  (needs ROOT on the path)
import engine  # noqa: E402
import lstm  # noqa: E402
from optimizer import RMSprop  # noqa: E402
from util import blas, checkpoint, cli, devices, files, runs  # noqa: E402
from util.weights import load_params  # noqa: E402
from util.errors import UserError  # noqa: E402

SAVES = os.path.join(ROOT, 'saves')  # the shipped model, lookup table, corpus and sample


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
    """Run a script in this process as `python name args` runs it: its main() through cli.run, with sys.argv, the
    folder, stdout and stderr (file descriptors 1 and 2, files here) and the warnings a fresh process shows, its
    exit status from SystemExit, no GPU opened yet (util.devices opens one once a process). Returns what script()
    returns. For a result or a message; what only a process
    shows (a signal, a closed or redirected stream, the terminal, stdin, what happens at import or start, the
    environment read at start, a fresh process's reproducibility) needs script(). env: variables to set for the
    run (an empty value removes one), only those read after start; stdout: a path to write stdout to (`> path`),
    whose text is then not captured. Whatever a script sets for the whole process (signal handlers, the
    excepthook, OpenBLAS's threads, numpy's print and error settings, the environment) is put back after."""
    module = importlib.import_module(name[:-3])
    argv = [str(a) for a in args]
    saved_argv, saved_cwd, saved_streams = sys.argv, os.getcwd(), (sys.stdout, sys.stderr)
    saved_environ, saved_hook = dict(os.environ), sys.excepthook
    saved_signals = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    saved_numpy, saved_threads = (np.get_printoptions(), np.geterr()), blas.get_threads()
    saved_devices = dict(devices._opened)
    with tempfile.TemporaryDirectory() as tmp:
        out_path = os.path.join(tmp, 'stdout') if stdout is None else str(stdout)
        out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err = os.open(os.path.join(tmp, 'stderr'), os.O_RDWR | os.O_CREAT)
        saved_fds = os.dup(1), os.dup(2)
        for stream in saved_streams:
            stream.flush()
        os.dup2(out, 1)
        os.dup2(err, 2)
        os.close(out)
        os.close(err)
        try:
            for k, v in (env or {}).items():
                if v:
                    os.environ[k] = v
                else:
                    os.environ.pop(k, None)
            os.chdir(cwd)
            devices._opened.clear()
            sys.argv = [os.path.join(ROOT, name), *argv]
            # What a fresh process starts with: text streams in UTF-8 on the descriptors, stderr line-buffered.
            sys.stdout = open(1, 'w', encoding='utf-8', closefd=False)
            sys.stderr = open(2, 'w', buffering=1, encoding='utf-8', closefd=False)
            with warnings.catch_warnings():
                python_s_own_warning_filters()
                warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: (
                    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))
                )
                try:
                    cli.run(lambda: module.main(argv))
                    code = 0  # cli.run always exits
                except SystemExit as e:
                    code = 0 if e.code is None else e.code if isinstance(e.code, int) else 1
                for stream in (sys.stdout, sys.stderr):
                    try:
                        stream.flush()
                    except (OSError, ValueError):
                        pass
        finally:
            sys.stdout, sys.stderr = saved_streams
            os.dup2(saved_fds[0], 1)
            os.dup2(saved_fds[1], 2)
            os.close(saved_fds[0])
            os.close(saved_fds[1])
            sys.argv = saved_argv
            os.chdir(saved_cwd)
            os.environ.clear()
            os.environ.update(saved_environ)
            sys.excepthook = saved_hook
            for s, handler in saved_signals.items():
                signal.signal(s, handler)
            np.set_printoptions(**saved_numpy[0])
            np.seterr(**saved_numpy[1])
            if saved_threads is not None:
                blas.set_threads(saved_threads)
            devices._opened.clear()
            devices._opened.update(saved_devices)
        with open(os.path.join(tmp, 'stderr'), encoding='utf-8') as f:
            err_text = f.read()
        out_text = None
        if stdout is None:
            with open(out_path, encoding='utf-8') as f:
                out_text = f.read()
    return subprocess.CompletedProcess([name, *argv], code, out_text, err_text)


def python_s_own_warning_filters():
    """The warning filters of a fresh `python script.py` (pytest records warnings instead of showing them)."""
    warnings.resetwarnings()
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.simplefilter('ignore', category)
    warnings.filterwarnings('default', category=DeprecationWarning, module='__main__')


def in_parallel(function, items):
    """[function(item) for item in items], four at a time on threads: for a test that starts many short processes
    (each mostly waits for Python and numpy to load), so that it takes less of two cores' time."""
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


def numeric_grad(f, x, h=1e-5):
    """Centred differences of the scalar f() with respect to the array x, changed in place and restored."""
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=['multi_index'])
    for _ in it:
        ix = it.multi_index
        old = x[ix]
        x[ix] = old + h
        plus = f()
        x[ix] = old - h
        minus = f()
        x[ix] = old
        grad[ix] = (plus - minus) / (2 * h)
    return grad


def rel_error(a, b):
    """The difference relative to the size of the two arrays (not element by element: a tiny element's
    centred difference carries rounding noise of the order of the loss times 1e-11)."""
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-30))


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


def tiny_model(rng, V=5, H=4, n_layers=2):
    """Float64 weights of a small model, moved off their initial values (so that every path matters)."""
    params = lstm.init_params(V, H, n_layers, rng=rng, dtype=np.float64)
    for k in params:
        params[k] += rng.standard_normal(params[k].shape) * 0.3
    return params


def naive_lstm(x, h0, c0, W, b):
    """One gate at a time, one step at a time, with explicit weight blocks and the textbook sigmoid: the LSTM
    from its equations, to hold the others to. Returns h, c (T, B, H) and the activated gates [i, f, o, g]
    (T, B, 4H) of every step."""
    T = x.shape[0]
    H = h0.shape[1]
    D = W.shape[0] - H
    sig = lambda v: 1 / (1 + np.exp(-v))
    Wi, Wf, Wo, Wg = (W[:, k * H : (k + 1) * H] for k in range(4))
    bi, bf, bo, bg = (b[k * H : (k + 1) * H] for k in range(4))
    h, c = h0, c0
    hs, cs, gates = [], [], []
    for t in range(T):
        i = sig(x[t] @ Wi[:D] + h @ Wi[D:] + bi)
        f = sig(x[t] @ Wf[:D] + h @ Wf[D:] + bf)
        o = sig(x[t] @ Wo[:D] + h @ Wo[D:] + bo)
        g = np.tanh(x[t] @ Wg[:D] + h @ Wg[D:] + bg)
        c = f * c + i * g
        h = o * np.tanh(c)
        hs.append(h)
        cs.append(c)
        gates.append(np.concatenate([i, f, o, g], axis=1))
    return np.array(hs), np.array(cs), np.array(gates)


class ReferenceSteps(NamedTuple):
    h: np.ndarray
    c: np.ndarray
    gates: np.ndarray


def reference_model(params, ids):
    """The model over ids (T, B) from a zero state, without dropout, built on naive_lstm: (logits (T, B, V), per
    layer ReferenceSteps(h, c, gates) of every step)."""
    V, H, n_layers = lstm.sizes(params)
    inp = np.eye(V)[ids]  # the one-hot vectors
    layers = []
    for n in range(1, n_layers + 1):
        zeros = np.zeros((ids.shape[1], H))
        layers.append(
            ReferenceSteps(*naive_lstm(inp, zeros, zeros, params[f'lstm{n}.W'], params[f'lstm{n}.b']))
        )
        inp = layers[-1].h
    return inp @ params['dense.W'] + params['dense.b'], layers


# --- the tiny training and its run folder -------------------------------------------------------------------------

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


def train(*args, measured=False):
    """_training.main with the plain products (engine.Plan.plain()): a run and its reference compute the same
    products whatever the timings would measure; measured: the block widths timed, as a user's run does."""
    return _training.main([str(a) for a in args], plan=None if measured else engine.Plan.plain())


def fails(capsys, *args):
    """Run _training.main expecting a refusal: a UserError (which cli.run prints as one line, status 2), or one
    line on stderr and exit status 2 (cli.fail). Returns the line."""
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
    """Two run folders hold the same run: checkpoint arrays, random state and the log's epochs, bit for bit."""
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
    rows = runs.read_log(folder / runs.LOG)
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
    code = (
        f'import sys; sys.path[:0] = [{ROOT!r}, {os.path.join(ROOT, "tests")!r}]; sys.argv[0] = "_training.py"; '
        'import helpers; helpers.stress_main()'
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


def write_bytes(path, raw):
    path.write_bytes(raw)
    return path


def model_args(folder):
    """The options that name the model of the model_dir fixture."""
    return ['--weights', folder / 'w.npz', '--lookup', folder / 'l.json']


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
    """Wait until the file at path has been replaced by a new one n times (os.replace gives it a new inode)."""
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
