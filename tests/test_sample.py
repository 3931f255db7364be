"""_sample.py: text reproducible with a seed and in a fresh process, its options (stop, start file, batch,
top-k, a temperature too small to divide by), and one-line refusals of bad input."""

import os
import pty
import re
import subprocess
import sys

import numpy as np
import pytest

import _sample
import data
import lstm
from helpers import (
    ROOT,
    SAVES,
    assert_one_line_error,
    model_args,
    read_pty,
    run_here,
    script,
)
from util import weights


def test_sample_with_the_shipped_model_is_reproducible():
    a = script('_sample.py', '--length', 200, '--seed', 5)  # a fresh process; the others in this one
    b = run_here('_sample.py', '--length', 200, '--seed', 5, '--start', 'F')
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout
    assert a.stdout.startswith('F') and len(a.stdout) == 1 + 200 + 1
    c = run_here('_sample.py', '--length', 200, '--seed', 6)
    assert c.stdout != a.stdout


def test_sample_temperature_zero_is_deterministic():
    a = run_here('_sample.py', '--length', 50, '--temperature', 0, '--seed', 1)
    b = run_here('_sample.py', '--length', 50, '--temperature', 0, '--seed', 2)
    assert a.returncode == 0 and a.stdout == b.stdout


def test_sample_options_stop_start_file_batch_and_top_k(tmp_path):
    (tmp_path / 'prime.txt').write_text('JULIET:\nO Romeo', encoding='utf-8')
    r, a, b, c, d, f, g, h, k = (
        run_here('_sample.py', *args)
        for args in [
            ['--seed', 3, '--start', 'ROMEO:\\n', '--stop', '\\n\\n', '--length', 2000],
            ['--seed', 4, '--length', 100, '--start-file', tmp_path / 'prime.txt'],
            ['--seed', 4, '--length', 100, '--start', 'JULIET:\\nO Romeo'],
            ['--seed', 5, '--length', 80, '--num-samples', 3, '--start', 'KING'],
            ['--seed', 5, '--length', 80, '--num-samples', 3, '--start', 'KING'],
            ['--seed', 6, '--length', 60, '--top-k', 1, '--temperature', 1.5],
            ['--seed', 7, '--length', 60, '--temperature', 0],
            ['--length', 5, '--top-k', 66],
            ['--length', 5, '--start', 'A', '--start-file', tmp_path / 'prime.txt'],
        ]
    )
    # --stop: each sample ends right after the stop text, which is never cut
    assert r.returncode == 0, r.stderr
    text = r.stdout  # no newline added after the stop text's own
    assert (
        text.startswith('ROMEO:\n') and text.endswith('\n\n') and text[len('ROMEO:\n') :].count('\n\n') == 1
    )
    # --start-file primes like --start with the same text
    assert a.returncode == 0 and a.stdout == b.stdout and a.stdout.startswith('JULIET:\nO Romeo')
    # --num-samples: N samples, one after the other, reproducible, different from each other
    assert c.returncode == 0 and c.stdout == d.stdout
    parts = c.stdout.split('=== sample ')[1:]
    assert len(parts) == 3 and len({p.split('\n', 1)[1] for p in parts}) == 3
    assert all(p.split('\n', 1)[1].startswith('KING') for p in parts)
    # --top-k 1 is greedy, whatever the temperature and seed
    assert f.returncode == 0 and f.stdout == g.stdout
    assert_one_line_error(h, '--top-k 66', '65 characters')
    assert_one_line_error(k, 'either --start or --start-file')


@pytest.mark.parametrize(
    'args, words',
    [
        (['--start', 'Zé€'], ['--start', "'é'", "'€'", 'not in the lookup table']),
        (['--length', '0'], ['--length', 'positive']),
        (['--length', '-5'], ['--length']),
        (['--temperature', '-1'], ['--temperature']),
        (['--temperature', 'nan'], ['--temperature']),
        (['--start', ''], ['--start', 'empty']),
        (['--weights', 'no/such.npz'], ['does not exist']),
        (
            ['--weights', os.path.join(SAVES, 'ShakespeareOptimizer.npz')],
            ['is a training checkpoint', 'Net.npz'],
        ),
        (['--lookup', 'no/such.json'], ['does not exist']),
    ],
)
def test_sample_refuses_bad_input(args, words):
    assert_one_line_error(run_here('_sample.py', *args), *words)


def test_sample_refuses_a_lookup_that_does_not_match(small_model, tmp_path):
    weights, _, _ = small_model
    assert_one_line_error(
        run_here(
            '_sample.py', '--weights', weights, '--lookup', os.path.join(SAVES, 'ShakespeareLookup.json')
        ),
        'lookup table',
    )


def test_a_temperature_too_small_to_divide_by_takes_the_most_likely_character():
    r = run_here('_sample.py', '--temperature', '1e-320', '--length', 40, '--seed', 1)
    greedy = run_here('_sample.py', '--temperature', 0, '--length', 40, '--seed', 2)
    assert r.returncode == 0 and r.stderr == '' and r.stdout == greedy.stdout


def test_the_escapes_of_an_options_text():
    assert _sample.escapes('a\\nb\\tc\\r\\nd\\\\n\\q') == 'a\nb\tc\r\nd\\n\\q'


def test_a_long_priming_text_takes_bounded_memory_and_a_refusal_names_it(small_model, tmp_path, monkeypatch):
    """The priming text is read a window at a time: a machine of 64 MiB samples after 30,000 characters of it,
    and refuses samples that it cannot hold in one line naming the priming text."""
    weights, lookup, _ = small_model
    monkeypatch.setattr(os, 'sysconf', lambda name: 1 << 14 if name == 'SC_PHYS_PAGES' else 4096)  # 64 MiB
    (tmp_path / 'prime.txt').write_text('to be ' * 5_000, encoding='utf-8')
    model = ['--weights', weights, '--lookup', lookup, '--start-file', tmp_path / 'prime.txt']
    r = run_here('_sample.py', *model, '--length', 20, '--seed', 1)
    assert r.returncode == 0, r.stderr
    r = run_here('_sample.py', *model, '--num-samples', 100_000)
    assert_one_line_error(r, '--num-samples 100000', 'priming text of 30,000 characters', '--start-file')


def test_priming_reports_its_progress_a_window_at_a_time(small_model):
    params, _ = weights.load_params(small_model[0])
    told = []
    lstm.primed(params, np.zeros(2500, dtype=np.intp), 2, window=1000, progress=told.append)
    assert told == [1000, 2000, 2500]


SAMPLE = (
    'import sys, _sample; from util import cli, progress; progress.Progress.interval = 0; '
    'sys.argv[0] = "_sample.py"; '
    'cli.run(lambda: _sample.main(sys.argv[1:]))'
)


@pytest.mark.parametrize('beam', [[], ['--beam', '2']])
def test_a_long_priming_text_shows_its_reading_on_a_terminal_then_the_whole_text(model_dir, tmp_path, beam):
    """On a terminal, reading a long priming text has its own progress line, cleared before the text is
    printed: the sample starts with the whole priming text, as in a pipe."""
    (tmp_path / 'prime.txt').write_text('to be ' * 500, encoding='utf-8')  # 3,000 characters: 3 windows
    args = [sys.executable, '-c', SAMPLE, '--start-file', tmp_path / 'prime.txt', '--length', 20, *beam]
    args = [*map(str, args), '--seed', '1', *map(str, model_args(model_dir))]
    master, slave = pty.openpty()  # stdout and stderr one terminal, as in a shell
    p = subprocess.Popen(args, cwd=ROOT, stdout=slave, stderr=slave)
    os.close(slave)
    shown = read_pty(master)
    assert p.wait(60) == 0
    os.close(master)
    assert 'reading the priming text: 1,000 of 3,000 characters' in shown, shown
    last_line = list(re.finditer(r'\d+(\.\d)? (s|min) left', shown))[-1]  # of the reading or the search
    assert shown[last_line.end() :].lstrip('\r ').startswith('to be ' * 500)  # after the line, cleared
    piped = run_here(
        '_sample.py',
        '--start-file',
        tmp_path / 'prime.txt',
        '--length',
        20,
        *beam,
        '--seed',
        1,
        *model_args(model_dir),
    )
    assert piped.returncode == 0 and piped.stderr == '' and piped.stdout.startswith('to be ' * 500)


def test_weights_that_hold_their_alphabet_need_no_lookup_table(small_model, tmp_path):
    """A run's weights hold their alphabet: without --lookup they are read with it (from a pipe too: read
    once); weights that hold none take the table beside them, and without one --lookup is asked for."""
    weights_path, lookup, chars = small_model
    params, _ = weights.load_params(weights_path)
    weights.save_params(tmp_path / 'run.npz', params, chars=chars)
    (tmp_path / 't.txt').write_text(''.join(chars) * 3, encoding='utf-8')
    args = ['--length', 50, '--seed', 3, '--start', chars[-1]]
    alone = run_here('_sample.py', '--weights', tmp_path / 'run.npz', *args)
    named = run_here('_sample.py', '--weights', weights_path, '--lookup', lookup, *args)
    assert alone.returncode == 0 and alone.stdout == named.stdout, alone.stderr
    piped = subprocess.run(  # stdin a pipe: a stream that can be read only once
        [sys.executable, '_sample.py', '--weights', '/dev/stdin', *map(str, args)],
        input=(tmp_path / 'run.npz').read_bytes(),
        capture_output=True,
        cwd=ROOT,
        timeout=120,
    )
    assert piped.returncode == 0 and piped.stdout.decode() == named.stdout, piped.stderr
    for script_args in (['_evaluate.py'], ['_visualize.py', '--find']):
        r = run_here(*script_args, '--text', tmp_path / 't.txt', '--weights', tmp_path / 'run.npz')
        assert r.returncode == 0, r.stderr
    r = run_here(
        '_sample.py',
        '--weights',
        tmp_path / 'run.npz',
        '--lookup',
        os.path.join(SAVES, 'ShakespeareLookup.json'),
    )
    assert_one_line_error(r, 'trained with another lookup table', 'leave --lookup out')
    weights.save_params(tmp_path / 'bad.npz', params, chars=chars[:-1])
    r = run_here('_sample.py', '--weights', tmp_path / 'bad.npz')
    assert_one_line_error(
        r, f'damaged (it has {len(chars) - 1} characters, the weights {len(chars)})', '--lookup'
    )
    r = run_here('_sample.py', '--weights', tmp_path / 'bad.npz', '--lookup', lookup, *args)  # as it says
    assert r.returncode == 0 and r.stdout == named.stdout, r.stderr
    weights.save_params(tmp_path / 'none' / 'w.npz', params)  # no alphabet held, no table beside
    r = run_here('_sample.py', '--weights', tmp_path / 'none' / 'w.npz')
    assert_one_line_error(r, 'holds no lookup table', 'none is beside it', '--lookup FILE')
    data.save_lookup(tmp_path / 'none' / 'ShakespeareLookup.json', chars)
    r = run_here('_sample.py', '--weights', tmp_path / 'none' / 'w.npz', *args)  # the table beside it
    assert r.returncode == 0 and r.stdout == named.stdout, r.stderr
    (tmp_path / 'link').mkdir()
    (tmp_path / 'link' / 'w.npz').symlink_to(tmp_path / 'none' / 'w.npz')  # beside the file it leads to
    r = run_here('_sample.py', '--weights', tmp_path / 'link' / 'w.npz', *args)
    assert r.returncode == 0 and r.stdout == named.stdout, r.stderr
    other = [*chars[:-1], '\u00e9']  # as many characters, another one last: a sample would be nonsense
    data.save_lookup(tmp_path / 'other.json', other)
    r = run_here('_sample.py', '--weights', tmp_path / 'none' / 'w.npz', '--lookup', tmp_path / 'other.json')
    assert_one_line_error(r, 'is not the one saved beside weights file', 'leave --lookup out')
    (tmp_path / 'none' / 'ShakespeareLookup.json').write_text('{bad')
    r = run_here('_sample.py', '--weights', tmp_path / 'none' / 'w.npz')
    assert_one_line_error(r, 'is not valid JSON', 'it lies beside the weights', '--lookup')
