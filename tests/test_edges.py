"""The edges of the scripts: progress on a terminal, Ctrl-C, pipes, unwritable output, impossible sizes, files
that load but do not fit."""
import io
import os
import pty
import select
import signal
import subprocess
import sys

import numpy as np
import pytest

import cli
import data
import files
import lstm
from helpers import tiny_corpus

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_script(name, *args, env=None, **kwargs):
    full = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, os.path.join(ROOT, name), *map(str, args)], capture_output=True,
                          text=True, cwd=ROOT, timeout=600, env=full, **kwargs)


def assert_one_line_error(r, *words, status=2):
    assert r.returncode == status, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in r.stderr, r.stderr
    for w in words:
        assert w in lines[0], lines[0]


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    """A tiny untrained model, its lookup table and a text it can read."""
    d = tmp_path_factory.mktemp('edges')
    text = tiny_corpus(3000)
    chars = data.build_lookup(text)
    params = lstm.init_params(len(chars), 8, 2, np.random.default_rng(0))
    files.save_params(d / 'w.npz', params)
    data.save_lookup(d / 'l.json', chars)
    (d / 'text.txt').write_text(text, encoding='utf-8')
    return d


def model_args(d):
    return ['--weights', d / 'w.npz', '--lookup', d / 'l.json']


# --- progress ---------------------------------------------------------------------------------------------------

class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_shows_done_rate_and_time_left_on_a_terminal_and_clears_the_line(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(cli.time, 'monotonic', lambda: clock[0])
    out = Terminal()
    p = cli.Progress('scoring', 1000, stream=out)
    clock[0] += 0.1
    p(10)                                               # too soon after the start: not drawn
    assert out.getvalue() == ''
    clock[0] += 1.9
    p(500)                                              # 500 chars in 2 s: 250 chars/s, 2 s left
    line = out.getvalue()
    assert line.startswith('\r') and '500 of 1,000 chars (50%)' in line and '250 chars/s' in line, line
    assert '2 s left' in line, line
    p.close()
    assert out.getvalue().endswith('\r') and out.getvalue()[len(line):].strip() == ''
    clock[0] += 5
    p(900)                                              # closed: nothing more
    assert out.getvalue().count('\r') == 3


def test_progress_writes_nothing_to_a_pipe_or_a_file(tmp_path, monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(cli.time, 'monotonic', lambda: clock[0])
    with open(tmp_path / 'f', 'w') as f:
        with cli.Progress('x', 10, stream=f) as p:
            for k in range(10):
                clock[0] += 10
                p(k)
    assert (tmp_path / 'f').read_text() == ''


def read_pty(fd):
    chunks = []
    while True:
        ready, _, _ = select.select([fd], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:                                 # the other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b''.join(chunks).decode('utf-8', 'replace')


SCORE = ('import sys, cli, _evaluate; cli.Progress.interval = 0; sys.argv[0] = "_evaluate.py"; '
         'cli.run(lambda: _evaluate.main(sys.argv[1:]))')


@pytest.mark.parametrize('extra', [[], ['--dynamic'], ['--ngram', '3', '--compare']])
def test_evaluate_shows_progress_on_a_terminal_only(model, extra):
    text = ['--text', model / 'text.txt'] if not extra or extra[0] == '--dynamic' else \
        ['--corpus', model / 'text.txt']
    args = [sys.executable, '-c', SCORE, *map(str, text + extra + model_args(model))]
    master, slave = pty.openpty()                       # stderr a terminal, stdout a pipe
    p = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    shown = read_pty(master)
    out = p.stdout.read()
    assert p.wait(60) == 0
    os.close(master)
    assert 'loss' in out and '\r' not in out            # the result alone on stdout
    assert ' of ' in shown and '/s' in shown and 'left' in shown, shown
    assert shown.rstrip(' ').endswith('\r')             # the line is cleared at the end
    piped = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert piped.returncode == 0 and piped.stderr == '' and piped.stdout == out.replace('\r\n', '\n')


# --- Ctrl-C -------------------------------------------------------------------------------------------------------

def test_ctrl_c_while_sampling_ends_with_one_line_and_status_130(model):
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, '_sample.py'), '--length', str(10 ** 8), '--start', 't',
                          *map(str, model_args(model))], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert len(p.stdout.read(100)) == 100              # it is sampling
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    err = err.decode()
    assert p.returncode == 130, err
    assert err.strip().splitlines() == ['_sample.py: interrupted (Ctrl-C)'], err


def test_ctrl_c_while_reading_a_text_ends_with_one_line_and_status_130(model, tmp_path):
    fifo = tmp_path / 'fifo'
    os.mkfifo(fifo)
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, '_evaluate.py'), '--text', fifo,
                          *map(str, model_args(model))],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with open(fifo, 'w') as f:                          # returns once the script has opened it to read
        f.write('to be or not')
        f.flush()
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    err = err.decode()
    assert p.returncode == 130, err
    assert err.strip().splitlines() == ['_evaluate.py: interrupted (Ctrl-C)'], err
