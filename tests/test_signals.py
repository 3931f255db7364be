"""Ctrl-C, SIGTERM, SIGHUP and kills: one line and the status of a stopped program (130, 128 + the signal), a
checkpoint written on the way out, and a resumed run that equals one that never stopped."""

import os
import pty
import select
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import _training
import engine
import lstm
from optimizer import RMSprop
from util import checkpoint, cli, runs
from util.weights import save_params

from helpers import ROOT, TINY, TINY_LOUD, assert_same_run, assert_whole, load, model_args, read_pty, train
from interrupted import start_training, wait_for


def test_ctrl_c_while_sampling_ends_with_one_line_and_status_130(model_dir):
    p = subprocess.Popen(
        [
            sys.executable,
            os.path.join(ROOT, '_sample.py'),
            '--length',
            str(10**8),
            '--start',
            't',
            *map(str, model_args(model_dir)),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert len(p.stdout.read(100)) == 100  # it is sampling
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    err = err.decode()
    assert p.returncode == 130, err
    assert err.strip().splitlines() == ['_sample.py: interrupted (Ctrl-C)'], err


def test_ctrl_c_twice_on_a_terminal_says_it_once_on_a_line_of_its_own(model_dir):
    """A sample stopped in the middle of a line: the message starts a line, and a second Ctrl-C while the
    script stops adds nothing."""
    master, slave = pty.openpty()  # stdout and stderr one terminal, as in a shell
    args = ['--length', str(10**8), '--start', 't', *map(str, model_args(model_dir))]
    p = subprocess.Popen([sys.executable, '_sample.py', *args], cwd=ROOT, stdout=slave, stderr=slave)
    os.close(slave)
    shown = b''
    while len(shown) < 300:  # it is sampling
        shown += os.read(master, 4096)
    p.send_signal(signal.SIGINT)
    p.send_signal(signal.SIGINT)
    shown = (shown + read_pty(master).encode()).decode('utf-8', 'replace')
    os.close(master)
    assert p.wait(60) == 130
    assert shown.count('interrupted (Ctrl-C)') == 1 and '\n_sample.py: interrupted (Ctrl-C)\r\n' in shown, (
        shown[-300:]
    )
    assert 'Traceback' not in shown
    previous = signal.getsignal(signal.SIGINT)  # the second Ctrl-C may come before the first is handled:
    try:  # that it is ignored once the first is, checked in this process
        assert cli._interrupted() == 130 and signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


STOPPED = {  # a signal that stops a script that is not training: its status and its one line
    signal.SIGINT: (130, 'interrupted (Ctrl-C)'),
    signal.SIGTERM: (143, 'stopped by SIGTERM'),
    signal.SIGHUP: (129, 'stopped by SIGHUP'),
}


@pytest.mark.parametrize('sig', list(STOPPED))
@pytest.mark.parametrize('name', ['_evaluate.py', '_visualize.py', '_training.py'])
def test_a_signal_while_reading_a_text_ends_with_one_line_and_its_status(model_dir, tmp_path, name, sig):
    """Before a training starts (its corpus still read), as in the other scripts: one line, 128 + the signal,
    and no run folder left behind."""
    fifo = tmp_path / 'fifo'
    os.mkfifo(fifo)
    args = {
        '_evaluate.py': ['--text', fifo, *model_args(model_dir)],
        '_training.py': ['--corpus', fifo, '--out', tmp_path / 'run', '--hidden', 8],
        '_visualize.py': ['--find', '--text', fifo, *model_args(model_dir)],
    }[name]
    p = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, name), *map(str, args)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    with open(fifo, 'w') as f:  # returns once the script has opened it to read
        f.write('to be or not')
        f.flush()
        p.send_signal(sig)
        _, err = p.communicate(timeout=60)
    err = err.decode()
    status, line = STOPPED[sig]
    assert p.returncode == status, err
    assert err.strip().splitlines() == [f'{name}: {line}'], err
    assert not (tmp_path / 'run').exists()


def test_sigterm_while_converting_leaves_no_temporary_file(tmp_path):
    """A big conversion stopped while it writes: one line, 143, and neither the output, its temporary nor the
    folder made for them left."""
    weights = tmp_path / 'w.npz'
    save_params(weights, lstm.init_params(65, 512, 2, rng=np.random.default_rng(0)))
    out = tmp_path / 'out' / 'w.json'
    p = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, '_convert.py'), str(weights), str(out)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    while not (out.parent.exists() and os.listdir(out.parent)) and p.poll() is None:
        time.sleep(0.01)  # until the temporary file is there
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    if p.returncode == 0:
        pytest.skip('the conversion ended before the signal came')
    assert p.returncode == 143 and err.decode().strip() == '_convert.py: stopped by SIGTERM', err
    assert not out.parent.exists()  # nor the folder made for it


def test_ctrl_c_while_benchmarking_ends_with_one_line_and_status_130():
    p = subprocess.Popen(
        [
            sys.executable,
            os.path.join(ROOT, '_benchmark.py'),
            '--rounds',
            str(10**9),
            '--hidden',
            '8',
            '--no-torch',
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    maps = f'/proc/{p.pid}/maps'
    while p.poll() is None and 'numpy' not in open(maps).read():  # wait until numpy is loaded: it is at work
        select.select([], [], [], 0.01)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130 and out == b'', err
    assert err.decode().strip().splitlines() == ['_benchmark.py: interrupted (Ctrl-C)'], err


# Ctrl-C as the script starts to import numpy (an import hook sends it): the script holds it until it runs, as
# it does when it imports util.cli before anything else, and ends with one line (not numpy's ImportError).
START_UP = """import os, runpy, signal, sys
class CtrlCAtNumpy:
    def find_spec(self, name, path=None, target=None):
        if name == 'numpy':
            sys.meta_path.remove(self)
            os.kill(os.getpid(), int(os.environ['SIGNAL']))
sys.meta_path.insert(0, CtrlCAtNumpy())
sys.argv[0] = sys.argv[1]
sys.path.insert(0, os.getcwd())
runpy.run_path(sys.argv[1], run_name='__main__')
"""


@pytest.mark.parametrize(
    'name',
    [
        '_benchmark.py',
        '_convert.py',
        '_evaluate.py',
        '_plot.py',
        '_sample.py',
        '_training.py',
        '_visualize.py',
    ],
)
@pytest.mark.parametrize('sig', list(STOPPED))
def test_a_signal_during_start_up_ends_with_one_line_and_its_status(name, sig):
    """Ctrl-C, SIGTERM or SIGHUP while numpy is imported: held until the script runs, then stopped as
    later."""
    env = {**os.environ, 'SIGNAL': str(int(sig))}
    r = subprocess.run(
        [sys.executable, '-c', START_UP, name], cwd=ROOT, capture_output=True, text=True, timeout=60, env=env
    )
    status, line = STOPPED[sig]
    assert r.returncode == status and r.stdout == '', r.stderr
    assert r.stderr.strip().splitlines() == [f'{name}: {line}'], r.stderr


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_a_signal_writes_a_checkpoint_and_exits_cleanly(made, tmp_path, sig):
    out = tmp_path / 'run'
    p = start_training(made / 'corpus.txt', out)
    wait_for(out / 'training_log.csv')  # the first epoch is done: training is under way
    p.send_signal(sig)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 128 + sig, stderr  # after the checkpoint, the status of a stopped program
    assert 'Traceback' not in stderr
    _, _, _, meta, _ = checkpoint.load(out / 'ShakespeareOptimizer.npz', lambda q: RMSprop(q))
    assert meta['saved'] == 'interrupted'
    assert signal.Signals(sig).name in (out / 'training_log.csv').read_text()


def test_resume_after_sigterm_equals_an_uninterrupted_run(made, tmp_path):
    """Interrupted by a signal at an arbitrary step, resumed for an epoch more (about 67 steps: the resumed
    part crosses an epoch boundary), and compared with a run that never stopped and ends at the same step."""
    out = tmp_path / 'interrupted'
    p = start_training(made / 'corpus.txt', out, '--dropout', '0.3')
    wait_for(out / 'training_log.csv')  # at least one epoch done, then stop wherever it is
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=60) == 128 + signal.SIGTERM
    _, _, _, meta, _ = checkpoint.load(out / 'ShakespeareOptimizer.npz', lambda q: RMSprop(q))
    stopped_at = meta['position']['step']
    assert stopped_at > 0, stopped_at
    end = str(stopped_at + 70)
    assert (
        _training.main(['--out', str(out), '--resume', '--quiet', '--threads', '1', '--max-steps', end]) == 0
    )
    whole = tmp_path / 'whole'
    plan = engine.Plan(widths=meta['block_widths'])  # the products the stopped run measured and saved
    assert (
        _training.main(
            [
                '--corpus',
                str(made / 'corpus.txt'),
                '--out',
                str(whole),
                '--epochs',
                '1000',
                *TINY,
                '--dropout',
                '0.3',
                '--max-steps',
                end,
            ],
            plan=plan,
        )
        == 0
    )
    a = checkpoint.load(out / 'ShakespeareOptimizer.npz', lambda q: RMSprop(q))
    b = checkpoint.load(whole / 'ShakespeareOptimizer.npz', lambda q: RMSprop(q))
    assert a[3]['position']['step'] == b[3]['position']['step'] == stopped_at + 70
    for k in a[0]:
        np.testing.assert_array_equal(a[0][k], b[0][k])


def test_sighup_writes_a_checkpoint_like_sigterm(tmp_path, corpus):
    out = tmp_path / 'run'
    p = start_training(corpus, out)
    try:
        while not (out / runs.LOG).exists():  # the first epoch is done: the loop is running
            assert p.poll() is None, p.stderr.read()
            time.sleep(0.05)
        p.send_signal(signal.SIGHUP)
        assert p.wait(timeout=120) == 128 + signal.SIGHUP  # the status of a program stopped by SIGHUP
    finally:
        p.kill()
    assert 'Traceback' not in p.stderr.read()
    _, _, _, meta, _ = load(out)
    assert meta['saved'] == 'interrupted' and meta['log'][-1][-1] == 'SIGHUP received'


def test_ctrl_c_during_validation_stops_at_the_next_window_and_loses_nothing(tmp_path, corpus, monkeypatch):
    real, windows_read = lstm.evaluate, []

    def evaluate(params, ids, *, window=1000, progress=None, device=None):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C as validation starts
        return real(
            params,
            ids,
            window=10,
            progress=lambda done: (windows_read.append(done), progress(done)),
            device=device,
        )

    monkeypatch.setattr(lstm, 'evaluate', evaluate)
    out = tmp_path / 'run'
    assert train('--corpus', corpus, '--out', out, '--epochs', '2', *TINY) == 130  # as a stopped program
    assert len(windows_read) == 1  # stopped after the first of 15 windows
    _, _, _, meta, _ = load(out)
    assert meta['position']['epoch'] == 0 and meta['position']['window'] == 33  # trained, not yet validated
    assert [row[-1] for row in meta['log']] == ['SIGINT received']
    monkeypatch.setattr(lstm, 'evaluate', real)
    assert train('--out', out, '--resume', '--quiet', '--threads', '1') == 0
    assert train('--corpus', corpus, '--out', tmp_path / 'whole', '--epochs', '2', *TINY) == 0
    assert_same_run(out, tmp_path / 'whole')
    assert_whole(out)


def test_ctrl_c_during_the_sample_stops_it_and_keeps_the_epoch(tmp_path, corpus, monkeypatch, capsys):
    real, drawn = lstm.sample, []

    def sample(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C as the sample starts
        for ix in real(*args, **kwargs):
            drawn.append(ix)
            yield ix

    monkeypatch.setattr(lstm, 'sample', sample)
    out = tmp_path / 'run'
    args = list(TINY_LOUD)
    args[args.index('--sample-length') + 1] = '100000'
    assert train('--corpus', corpus, '--out', out, '--epochs', '3', *args) == 130
    assert len(drawn) == 1
    assert 'SIGINT received: checkpoint saved' in capsys.readouterr().out
    _, _, _, meta, _ = load(out)
    assert meta['position']['epoch'] == 1 and [row[-1] for row in meta['log']] == ['best', 'SIGINT received']
    assert_whole(out)


def test_a_signal_in_the_last_epochs_sample_ends_with_its_status(corpus, tmp_path):
    """The run is done and saved, but the stop still ends as a stopped program does (a shell loop over
    trainings must see it), not with 0."""
    out = tmp_path / 'run'
    p = start_training(corpus, out, '--epochs', '1', '--sample-length', '100000000')
    wait_for(out / 'training_log.csv')  # the epoch is saved; its sample is being drawn
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=60) == 128 + signal.SIGTERM
    assert (
        checkpoint.load(out / 'ShakespeareOptimizer.npz', lambda q: RMSprop(q))[3]['position']['epoch'] == 1
    )
