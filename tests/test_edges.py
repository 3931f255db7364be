"""The edges of the scripts: progress on a terminal, Ctrl-C, pipes, unwritable output, impossible sizes, files
that load but do not fit."""
import ast
import io
import json
import os
import pty
import re
import select
import signal
import subprocess
import sys
import threading

import numpy as np
import pytest

from util import cli
import data
from util import files
import lstm
from conftest import ROOT
from helpers import assert_one_line_error, script, tiny_corpus

@pytest.fixture(scope='module')
def model(tmp_path_factory):
    """A tiny untrained model, its lookup table and a text it can read."""
    d = tmp_path_factory.mktemp('edges')
    text = tiny_corpus(3000)
    chars = data.build_lookup(text)
    params = lstm.init_params(len(chars), 8, 2, rng=np.random.default_rng(0))
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


SCORE = ('import sys, _evaluate; from util import cli; cli.Progress.interval = 0; sys.argv[0] = "_evaluate.py"; '
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
    assert piped.returncode == 0 and piped.stderr == ''
    timeless = lambda text: re.sub(r'predicted in \d+ s', 'predicted in N s', text)    # noqa: E731
    assert timeless(piped.stdout) == timeless(out)      # the same figures; only the seconds taken may differ


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


@pytest.mark.parametrize('name', ['_evaluate.py', '_visualize.py', '_training.py'])
def test_ctrl_c_while_reading_a_text_ends_with_one_line_and_status_130(model, tmp_path, name):
    fifo = tmp_path / 'fifo'
    os.mkfifo(fifo)
    args = {'_evaluate.py': ['--text', fifo, *model_args(model)], '_training.py': ['--corpus', fifo, '--out',
            tmp_path / 'run', '--hidden', 8], '_visualize.py': ['--find', '--text', fifo, *model_args(model)]}[name]
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, name), *map(str, args)], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with open(fifo, 'w') as f:                          # returns once the script has opened it to read
        f.write('to be or not')
        f.flush()
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    err = err.decode()
    assert p.returncode == 130, err
    assert err.strip().splitlines() == [f'{name}: interrupted (Ctrl-C)'], err


def test_ctrl_c_while_benchmarking_ends_with_one_line_and_status_130():
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, '_benchmark.py'), '--rounds', str(10 ** 9), '--hidden',
                          '8', '--no-torch'], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    maps = f'/proc/{p.pid}/maps'
    while p.poll() is None and 'numpy' not in open(maps).read():     # wait until numpy is loaded: it is at work
        select.select([], [], [], 0.01)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130 and out == b'', err
    assert err.decode().strip().splitlines() == ['_benchmark.py: interrupted (Ctrl-C)'], err


SCRIPTS = ['_benchmark.py', '_evaluate.py', '_plot.py', '_sample.py', '_training.py', '_visualize.py']


@pytest.mark.parametrize('name', SCRIPTS)
def test_every_script_imports_cli_first_so_that_ctrl_c_while_numpy_loads_is_one_line(name):
    tree = ast.parse(open(os.path.join(ROOT, name), encoding='utf-8').read())
    first = next(node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom)))
    assert isinstance(first, ast.ImportFrom) and first.module == 'util' and first.names[0].name == 'cli'


def test_ctrl_c_during_start_up_ends_with_one_line_and_status_130():
    code = ('import sys; sys.argv[0] = "_sample.py"; import os, signal; from util import cli; os.kill(os.getpid(), signal.SIGINT); '
            'import numpy; cli.run(lambda: print("not reached"))')
    r = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 130 and r.stdout == ''
    assert r.stderr.strip().splitlines() == ['_sample.py: interrupted (Ctrl-C)'], r.stderr


# --- a corpus or text from a pipe ---------------------------------------------------------------------------------

def test_a_text_from_a_pipe_or_a_fifo_is_read_once_and_whole(model, tmp_path):
    text = (model / 'text.txt').read_text(encoding='utf-8')
    whole = script('_evaluate.py', '--text', model / 'text.txt', *model_args(model))
    assert whole.returncode == 0, whole.stderr
    piped = subprocess.run([sys.executable, os.path.join(ROOT, '_evaluate.py'), '--text', '/dev/stdin',
                            *map(str, model_args(model))], input=text, capture_output=True, text=True, cwd=ROOT,
                           timeout=600)
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.splitlines()[1:] == whole.stdout.splitlines()[1:]      # the same loss on the same text
    fifo = tmp_path / 'fifo'
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text(text, encoding='utf-8'))
    writer.start()
    ids, chars = data.read_corpus(fifo)
    writer.join()
    assert data.decode(ids, chars) == text


def test_training_on_dev_stdin_trains_on_the_whole_piped_text(tmp_path):
    text = tiny_corpus(4000)
    r = subprocess.run([sys.executable, os.path.join(ROOT, '_training.py'), '--corpus', '/dev/stdin', '--out',
                        str(tmp_path / 'run'), '--hidden', '8', '--chunks', '2', '--window', '10', '--max-steps', '2',
                        '--sample-length', '0'], input=text, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr
    assert f'{len(text):,} characters, {len(set(text))} distinct' in r.stdout, r.stdout


def test_a_text_that_does_not_exist_is_called_a_text_and_an_accent_shows_its_code_point(model, tmp_path):
    r = script('_evaluate.py', '--text', tmp_path / 'nosuch.txt', *model_args(model))
    assert_one_line_error(r, 'text', 'nosuch.txt', 'does not exist')
    assert 'corpus' not in r.stderr
    (tmp_path / 'accent.txt').write_text('to be\u0301', encoding='utf-8')
    r = script('_evaluate.py', '--text', tmp_path / 'accent.txt', *model_args(model))
    assert_one_line_error(r, 'U+0301', 'COMBINING ACUTE ACCENT')


# --- output that cannot be written --------------------------------------------------------------------------------

def with_streams(name, *args, redirect):
    """Run a script through the shell with a redirection of its streams, e.g. '>/dev/full' or '>&-'."""
    return subprocess.run(['sh', '-c', f'exec "$@" {redirect}', 'sh', sys.executable, os.path.join(ROOT, name),
                           *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=600)


@pytest.mark.parametrize('redirect, words', [('>/dev/full', 'No space left'), ('>&-', 'stdout is closed')])
def test_output_that_cannot_be_written_is_one_line_and_status_2(model, redirect, words):
    for name, args in (('_evaluate.py', ['--text', model / 'text.txt']), ('_sample.py', ['--start', 't'])):
        r = with_streams(name, *args, *model_args(model), redirect=redirect)
        assert_one_line_error(r, 'cannot write the output', words)


def test_an_unwritable_stderr_keeps_the_exit_status():
    r = with_streams('_sample.py', '--length', '0', redirect='2>/dev/full')
    assert r.returncode == 2
    r = with_streams('_sample.py', '--length', '5', '--seed', '1', redirect='2>/dev/full')
    assert r.returncode == 0 and len(r.stdout) == 7


def test_training_with_an_unwritable_stdout_trains_and_keeps_its_checkpoint(tmp_path):
    (tmp_path / 'c.txt').write_text(tiny_corpus(3000), encoding='utf-8')
    for k, redirect in enumerate(['>/dev/full', '>&-']):
        out = tmp_path / f'run{k}'
        r = with_streams('_training.py', '--corpus', tmp_path / 'c.txt', '--out', out, '--hidden', '8', '--chunks',
                         '2', '--window', '10', '--max-steps', '2', '--sample-length', '0', redirect=redirect)
        assert r.returncode == 0, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and 'going on without printing' in r.stderr, r.stderr
        assert (out / 'ShakespeareOptimizer.npz').exists()


def test_a_console_that_is_not_utf8_shows_escapes_not_a_traceback(tmp_path):
    chars = data.build_lookup('caf\u00e9 \u2014 ok')
    params = lstm.init_params(len(chars), 8, 1, rng=np.random.default_rng(0))
    files.save_params(tmp_path / 'w.npz', params)
    data.save_lookup(tmp_path / 'l.json', chars)
    r = script('_sample.py', '--start', 'caf\u00e9 \u2014', '--length', 20, '--seed', 1, '--weights',
               tmp_path / 'w.npz', '--lookup', tmp_path / 'l.json', env={'PYTHONIOENCODING': 'ascii'})
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith('caf\\xe9 \\u2014') and 'Traceback' not in r.stderr


# --- random blocks, as nanoGPT scores -----------------------------------------------------------------------------

def test_block_losses_equal_each_block_read_alone_from_zeros_in_float64():
    rng = np.random.default_rng(1)
    V, T = 7, 12
    params = lstm.init_params(V, 6, 2, rng=rng, dtype=np.float64)
    ids = rng.integers(0, V, size=200)
    starts = rng.integers(0, len(ids) - T, size=9)
    got = lstm.block_losses(params, ids, T, starts, batch=4)       # batches of 4, 4 and 1 blocks
    for s, loss in zip(starts, got):
        x, y = ids[s:s + T], ids[s + 1:s + T + 1]
        logits, _, _ = lstm.forward(params, x[:, None], lstm.zero_state(params, 1), reference=True)
        z = logits[:, 0] - logits[:, 0].max(axis=1, keepdims=True)
        direct = np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(T), y])
        assert abs(loss - direct) < 1e-12, (loss, direct)


def test_evaluate_blocks_prints_the_mean_its_error_and_what_it_measures(model):
    args = ['--text', model / 'text.txt', '--blocks', 20, '--num-blocks', 50, *model_args(model)]
    r = script('_evaluate.py', *args)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert '50 random blocks of 20 characters (seed 0)' in lines[0] and '1,000 characters predicted' in lines[0]
    assert 'standard error' in lines[1] and 'every position of every block' in lines[2]
    ids, _ = data.read_corpus(model / 'text.txt', data.load_lookup(model / 'l.json'))
    params, _ = files.load_params(model / 'w.npz')
    starts = np.random.default_rng(0).integers(0, len(ids) - 20, size=50)
    expected = lstm.block_losses(params, ids, 20, starts).mean()
    assert f'loss {expected:.4f} nats/char' in lines[1]
    assert script('_evaluate.py', *args).stdout.splitlines()[1] == lines[1]            # a fixed seed
    other = script('_evaluate.py', *args, '--seed', 1)
    assert other.returncode == 0 and other.stdout.splitlines()[1] != lines[1]


@pytest.mark.parametrize('args, words', [
    (['--blocks', 10, '--dynamic'], ['--blocks', '--dynamic']),
    (['--num-blocks', 10], ['--num-blocks', '--blocks T']),
    (['--blocks', 5000], ['--blocks 5000', 'needs 5,001']),
])
def test_evaluate_blocks_refuses_what_does_not_fit(model, args, words):
    r = script('_evaluate.py', '--text', model / 'text.txt', *args, *model_args(model))
    assert_one_line_error(r, *words)


# --- files that load but do not fit -------------------------------------------------------------------------------

def test_weights_with_no_hidden_units_are_refused_by_the_loader(tmp_path):
    params = {'lstm1.W': np.zeros((5, 0), np.float32), 'lstm1.b': np.zeros(0, np.float32),
              'dense.W': np.zeros((0, 5), np.float32), 'dense.b': np.zeros(5, np.float32)}
    files.save_params(tmp_path / 'w.npz', params)
    with pytest.raises(files.ModelFileError, match='at least one hidden unit'):
        files.load_params(tmp_path / 'w.npz', V=5)
    data.save_lookup(tmp_path / 'l.json', list('abcde'))
    r = script('_sample.py', '--start', 'a', '--weights', tmp_path / 'w.npz', '--lookup', tmp_path / 'l.json')
    assert_one_line_error(r, 'hidden unit')


def test_a_lookup_holding_a_lone_surrogate_is_refused_at_load(model, tmp_path):
    (tmp_path / 'l.json').write_text(json.dumps(data.load_lookup(model / 'l.json')[:-1] + ['\ud800']))
    r = script('_sample.py', '--start', 't', '--weights', model / 'w.npz', '--lookup', tmp_path / 'l.json')
    assert_one_line_error(r, 'lone surrogate', 'U+D800')


def test_the_alphabet_is_saved_with_the_weights_and_another_lookup_is_refused(model, tmp_path):
    chars = data.load_lookup(model / 'l.json')
    params, _ = files.load_params(model / 'w.npz')
    files.save_params(tmp_path / 'w.npz', params, {'step': 3}, chars)
    loaded, meta = files.load_params(tmp_path / 'w.npz', chars=chars)
    assert meta == {'step': 3, 'alphabet': chars}
    assert all(np.array_equal(loaded[k], params[k]) for k in params)
    swapped = list(chars)
    swapped[3], swapped[5] = swapped[5], swapped[3]                  # the same characters in another order
    data.save_lookup(tmp_path / 'swapped.json', swapped)
    r = script('_sample.py', '--start', 't', '--weights', tmp_path / 'w.npz', '--lookup', tmp_path / 'swapped.json')
    assert_one_line_error(r, 'another lookup table', f'character 3 is {chars[3]!r}', f'but {chars[5]!r}')
    for name, args in (('_evaluate.py', ['--text', model / 'text.txt']), ('_visualize.py', ['--find'])):
        r = script(name, *args, '--weights', tmp_path / 'w.npz', '--lookup', tmp_path / 'swapped.json')
        assert_one_line_error(r, 'another lookup table')


def test_weights_without_an_alphabet_still_load_with_any_table_of_their_size(model):
    chars = data.load_lookup(model / 'l.json')
    params, meta = files.load_params(model / 'w.npz', chars=chars[::-1])          # saved without chars
    assert 'alphabet' not in meta and params['dense.W'].shape[1] == len(chars)
    shipped, meta = files.load_params(os.path.join(ROOT, 'saves', 'ShakespeareNet.npz'),
                                      chars=data.load_lookup(os.path.join(ROOT, 'saves', 'ShakespeareLookup.json')))
    assert 'alphabet' not in meta and shipped['dense.W'].shape == (512, 65)


def test_training_saves_the_alphabet_with_the_weights(tmp_path):
    text = tiny_corpus(3000)
    (tmp_path / 'c.txt').write_text(text, encoding='utf-8')
    r = script('_training.py', '--corpus', tmp_path / 'c.txt', '--out', tmp_path / 'run', '--hidden', 8, '--chunks', 2,
               '--window', 10, '--max-steps', 1, '--quiet', '--sample-length', 0)
    assert r.returncode == 0, r.stderr
    _, meta = files.load_params(tmp_path / 'run' / 'ShakespeareNet.npz')
    assert meta['alphabet'] == data.build_lookup(text)


# --- sizes no machine has -----------------------------------------------------------------------------------------

HUGE = 2 ** 70


@pytest.mark.parametrize('name, args, words', [
    ('_training.py', ['--hidden', 10 ** 7], ['--hidden 10000000', 'TiB', "this machine's"]),
    ('_training.py', ['--hidden', HUGE], ['--hidden', 'needs about']),
    ('_training.py', ['--chunks', HUGE], ['--chunks', 'needs about']),
    ('_training.py', ['--window', HUGE], ['--window', 'needs about']),
    ('_training.py', ['--layers', HUGE], ['--layers', 'needs about']),
    ('_training.py', ['--lr-decay', '1e200'], ['--lr-decay', '(0, 1]']),
    ('_benchmark.py', ['--hidden', 10 ** 7], ['--hidden 10000000', 'needs about']),
    ('_benchmark.py', ['--vocab', HUGE], ['--vocab', 'needs about']),
    ('_benchmark.py', ['--layers', HUGE], ['--layers', 'needs about']),
    ('_benchmark.py', ['--chunks', HUGE], ['--chunks', 'needs about']),
    ('_sample.py', ['--num-samples', 10 ** 9], ['--num-samples 1000000000', 'needs about']),
    ('_sample.py', ['--beam', 10 ** 9], ['--beam 1000000000', 'needs about']),
    ('_sample.py', ['--length', HUGE], ['--length', 'needs about']),
    ('_evaluate.py', ['--blocks', 256, '--num-blocks', HUGE], ['--num-blocks', 'needs about']),
    ('_evaluate.py', ['--ngram', 10 ** 9], ['--ngram 1000000000', 'needs about']),
])
def test_sizes_no_machine_has_are_refused_before_any_work_naming_the_memory(name, args, words, tmp_path):
    r = script(name, *args, '--out', tmp_path / 'run') if name == '_training.py' else script(name, *args)
    assert_one_line_error(r, *words)
    assert not (tmp_path / 'run').exists()


def test_the_memory_estimate_counts_the_weights_of_every_layer():
    params = lstm.init_params(65, 32, 3)
    weights = sum(a.size for a in params.values())
    assert cli.model_bytes(65, 32, 3, 0, 0) == 2 * 4 * weights                  # the weights and their prepared copy
    assert cli.model_bytes(65, 32, 3, 0, 0, itemsize=8, training=True) == 4 * 8 * weights
    assert cli.size(299 * 2 ** 30) == '299 GiB' and cli.size(512) == '512 bytes'


def test_a_temperature_too_small_to_divide_by_takes_the_most_likely_character():
    r = script('_sample.py', '--temperature', '1e-320', '--length', 40, '--seed', 1)
    greedy = script('_sample.py', '--temperature', 0, '--length', 40, '--seed', 2)
    assert r.returncode == 0 and r.stderr == '' and r.stdout == greedy.stdout
