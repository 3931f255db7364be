"""What the scripts read: corpora and texts (missing, empty, not UTF-8, from a pipe, one long line), lookup
tables, weights files (corrupt, pickled, mis-shaped, without hidden units, of another alphabet, through a
pipe), and endless streams: each a correct result or one line, never a hang, a traceback or a memory error."""

import json
import os
import resource
import subprocess
import sys
import threading
import types

import numpy as np
import pytest

import data
from explorer import analysis
import lstm
from util import files
from util.weights import load_params, save_params

from helpers import (
    ROOT,
    TINY,
    TINY_LOUD,
    assert_one_line_error,
    model_args,
    run_here,
    tiny_corpus,
    write_bytes,
)


def limited_memory():
    """In the child: at most 800 MB of address space, so that reading an endless stream ends soon."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (800 << 20, 800 << 20))


def test_endless_streams_as_inputs_are_one_line_never_a_hang_or_a_memory_error(small_model, tmp_path):
    weights, lookup, _ = small_model
    for name, args, words in (
        ('_sample.py', ['--weights', weights, '--lookup', '/dev/zero'], 'larger than 64 MiB'),
        ('_plot.py', ['/dev/zero', '--out', tmp_path / 'z.svg'], 'larger than 64 MiB'),
        ('_sample.py', ['--weights', weights, '--lookup', lookup, '--start-file', '/dev/zero'], '/dev/zero'),
    ):
        r = subprocess.run(
            [sys.executable, os.path.join(ROOT, name), *map(str, args)],
            capture_output=True,
            text=True,
            timeout=120,
            preexec_fn=limited_memory,
        )
        assert_one_line_error(r, words)
    assert not (tmp_path / 'z.svg').exists()


def test_weights_through_a_pipe_load_as_the_file_does(small_model):
    weights, lookup, chars = small_model
    start = next(c for c in chars if c.isalpha())
    same = ['--lookup', str(lookup), '--length', '40', '--seed', '0', '--start', start]
    args = [os.path.join(ROOT, '_sample.py'), '--weights', '/dev/stdin', *same]
    with open(weights, 'rb') as f:
        data = f.read()
    piped = subprocess.run([sys.executable, *args], input=data, capture_output=True, timeout=120)
    assert piped.returncode == 0, piped.stderr  # it said: not an .npz file (np.load seeks; a pipe cannot)
    plain = run_here('_sample.py', '--weights', weights, *same)
    assert piped.stdout.decode('utf-8') == plain.stdout and len(plain.stdout) > 40


def test_the_original_format_through_a_link_to_an_endless_device_is_one_line(small_model, tmp_path):
    """--weights naming a .json link to /dev/zero is refused at its first bytes (it was a MemoryError)."""
    weights, lookup, _ = small_model
    link = tmp_path / 'w.json'
    link.symlink_to('/dev/zero')
    r = subprocess.run(
        [sys.executable, os.path.join(ROOT, '_sample.py'), '--weights', str(link), '--lookup', str(lookup)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limited_memory,
    )
    assert_one_line_error(r, 'w.json', 'not valid JSON')


MEMORY = 1200 << 20  # address space for the script: numpy and a tiny model fit


def tiny(tmp_path, chars):
    params = lstm.init_params(len(chars), 8, 2, rng=np.random.default_rng(0))
    save_params(tmp_path / 'w.npz', params)
    data.save_lookup(tmp_path / 'l.json', chars)
    return ['--weights', tmp_path / 'w.npz', '--lookup', tmp_path / 'l.json']


def within_memory(*args):
    """Run _visualize.py with at most MEMORY of address space: a quadratic need ends in a MemoryError."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS='1')
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, '_visualize.py'), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY)),
    )


def test_the_periods_searched_are_bounded_whatever_the_length_of_the_lines():
    periods, two_cycles = analysis.line_periods('ab ' * 40000)
    assert periods[-1] == analysis.MAX_PERIOD and two_cycles <= periods[-1]
    assert analysis.line_periods('to be or not\n' * 100) == (range(2, 13), 6)  # short lines: as they were
    assert analysis.line_periods('') == (range(2, 9), 4)


def test_find_and_the_page_on_one_long_line_fit_in_little_memory(tmp_path):
    text = ('to be or not to be, that is the question: ' * 500)[:20000]  # one line, no newline
    (tmp_path / 'line.txt').write_text(text, encoding='utf-8')
    model = tiny(tmp_path, data.build_lookup(text))
    r = within_memory(*model, '--text', tmp_path / 'line.txt', '--find', '--periodic-svg', tmp_path / 'p.svg')
    assert r.returncode == 0, r.stderr[-2000:]
    assert f'periods 2 to {analysis.MAX_PERIOD}' in r.stdout and (tmp_path / 'p.svg').exists()
    r = within_memory(
        *model, '--text', tmp_path / 'line.txt', '--html', tmp_path / 'page.html', '--html-chars', 6000
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / 'page.html').read_text(encoding='utf-8').startswith('<!DOCTYPE html>')


def test_a_text_from_a_pipe_or_a_fifo_is_read_once_and_whole(model_dir, tmp_path):
    text = (model_dir / 'text.txt').read_text(encoding='utf-8')
    whole = run_here('_evaluate.py', '--text', model_dir / 'text.txt', *model_args(model_dir))
    assert whole.returncode == 0, whole.stderr
    piped = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, '_evaluate.py'),
            '--text',
            '/dev/stdin',
            *map(str, model_args(model_dir)),
        ],
        input=text,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout.splitlines()[1:] == whole.stdout.splitlines()[1:]  # the same loss on the same text
    fifo = tmp_path / 'fifo'
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text(text, encoding='utf-8'))
    writer.start()
    ids, chars = data.read_corpus(fifo)
    writer.join()
    assert data.decode(ids, chars) == text


def test_training_on_dev_stdin_trains_on_the_whole_piped_text(tmp_path):
    text = tiny_corpus(4000)
    r = subprocess.run(
        [
            sys.executable,
            os.path.join(ROOT, '_training.py'),
            '--corpus',
            '/dev/stdin',
            '--out',
            str(tmp_path / 'run'),
            *TINY_LOUD,
            '--max-steps',
            '2',
        ],
        input=text,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    assert f'{len(text):,} characters, {len(set(text))} distinct' in r.stdout, r.stdout


def test_a_text_that_does_not_exist_is_called_a_text_and_an_accent_shows_its_code_point(model_dir, tmp_path):
    r = run_here('_evaluate.py', '--text', tmp_path / 'nosuch.txt', *model_args(model_dir))
    assert_one_line_error(r, 'text', 'nosuch.txt', 'does not exist')
    assert 'corpus' not in r.stderr
    (tmp_path / 'accent.txt').write_text('to be\u0301', encoding='utf-8')
    r = run_here('_evaluate.py', '--text', tmp_path / 'accent.txt', *model_args(model_dir))
    assert_one_line_error(r, 'U+0301', 'COMBINING ACUTE ACCENT')


def test_weights_with_no_hidden_units_are_refused_by_the_loader(tmp_path):
    params = {
        'lstm1.W': np.zeros((5, 0), np.float32),
        'lstm1.b': np.zeros(0, np.float32),
        'dense.W': np.zeros((0, 5), np.float32),
        'dense.b': np.zeros(5, np.float32),
    }
    save_params(tmp_path / 'w.npz', params)
    with pytest.raises(files.ModelFileError, match='at least one hidden unit'):
        load_params(tmp_path / 'w.npz', V=5)
    data.save_lookup(tmp_path / 'l.json', list('abcde'))
    r = run_here(
        '_sample.py', '--start', 'a', '--weights', tmp_path / 'w.npz', '--lookup', tmp_path / 'l.json'
    )
    assert_one_line_error(r, 'hidden unit')


def test_a_lookup_holding_a_lone_surrogate_is_refused_at_load(model_dir, tmp_path):
    (tmp_path / 'l.json').write_text(json.dumps(data.load_lookup(model_dir / 'l.json')[:-1] + ['\ud800']))
    r = run_here(
        '_sample.py', '--start', 't', '--weights', model_dir / 'w.npz', '--lookup', tmp_path / 'l.json'
    )
    assert_one_line_error(r, 'lone surrogate', 'U+D800')


def test_the_alphabet_is_saved_with_the_weights_and_another_lookup_is_refused(model_dir, tmp_path):
    chars = data.load_lookup(model_dir / 'l.json')
    params, _ = load_params(model_dir / 'w.npz')
    save_params(tmp_path / 'w.npz', params, {'step': 3}, chars)
    loaded, meta = load_params(tmp_path / 'w.npz', chars=chars)
    assert meta == {'step': 3, 'alphabet': chars}
    assert all(np.array_equal(loaded[k], params[k]) for k in params)
    swapped = list(chars)
    swapped[3], swapped[5] = swapped[5], swapped[3]  # the same characters in another order
    data.save_lookup(tmp_path / 'swapped.json', swapped)
    r = run_here(
        '_sample.py', '--start', 't', '--weights', tmp_path / 'w.npz', '--lookup', tmp_path / 'swapped.json'
    )
    assert_one_line_error(r, 'another lookup table', f'character 3 is {chars[3]!r}', f'but {chars[5]!r}')
    for name, args in (('_evaluate.py', ['--text', model_dir / 'text.txt']), ('_visualize.py', ['--find'])):
        r = run_here(name, *args, '--weights', tmp_path / 'w.npz', '--lookup', tmp_path / 'swapped.json')
        assert_one_line_error(r, 'another lookup table')


def test_weights_without_an_alphabet_still_load_with_any_table_of_their_size(model_dir):
    chars = data.load_lookup(model_dir / 'l.json')
    params, meta = load_params(model_dir / 'w.npz', chars=chars[::-1])  # saved without chars
    assert 'alphabet' not in meta and params['dense.W'].shape[1] == len(chars)
    shipped, meta = load_params(
        os.path.join(ROOT, 'saves', 'ShakespeareNet.npz'),
        chars=data.load_lookup(os.path.join(ROOT, 'saves', 'ShakespeareLookup.json')),
    )
    assert 'alphabet' not in meta and shipped['dense.W'].shape == (512, 65)


def test_weights_random_bytes_truncated_and_empty(made, tmp_path):
    good = (made / 'run' / 'ShakespeareNet.npz').read_bytes()
    rng = np.random.default_rng(0)
    for raw in (rng.bytes(5000), good[: len(good) // 2], good[:100], b''):
        with pytest.raises(files.ModelFileError):
            load_params(write_bytes(tmp_path / 'w.npz', raw))


def test_weights_with_wrong_shapes_or_missing_arrays(made, tmp_path):
    params, _ = load_params(made / 'run' / 'ShakespeareNet.npz')
    bad = dict(params, **{'lstm2.W': params['lstm2.W'][:-1]})
    np.savez(tmp_path / 'w.npz', **bad)
    with pytest.raises(files.ModelFileError, match='lstm2.W has shape'):
        load_params(tmp_path / 'w.npz')
    np.savez(tmp_path / 'w.npz', **{k: v for k, v in params.items() if k != 'dense.b'})
    with pytest.raises(files.ModelFileError, match='no array dense.b'):
        load_params(tmp_path / 'w.npz')
    np.savez(tmp_path / 'w.npz', **dict(params, **{'dense.b': np.full_like(params['dense.b'], np.nan)}))
    with pytest.raises(files.ModelFileError, match='NaN'):
        load_params(tmp_path / 'w.npz')


def test_an_npz_with_pickled_objects_is_refused_without_running_pickle(made, tmp_path):
    params, _ = load_params(made / 'run' / 'ShakespeareNet.npz')
    evil = np.empty(1, dtype=object)
    evil[0] = {'would': 'run pickle'}
    np.savez(tmp_path / 'w.npz', **dict(params, **{'dense.b': evil}))
    with pytest.raises(files.ModelFileError, match='arrays of Python objects, which are never loaded'):
        load_params(tmp_path / 'w.npz')
    r = run_here(
        '_sample.py', '--weights', tmp_path / 'w.npz', '--lookup', made / 'run' / 'ShakespeareLookup.json'
    )
    assert_one_line_error(r, 'arrays of Python objects')


def test_messages_name_the_kind_of_wrong_file(made, tmp_path):
    import pickle

    (tmp_path / 'p.npz').write_bytes(pickle.dumps({'lstm1.W': [1, 2]}))
    with pytest.raises(files.ModelFileError, match='is a pickle file, which is never loaded'):
        load_params(tmp_path / 'p.npz')
    for raw in (b'just some text, not numpy', b'', b'PK\x03\x04 not really a zip'):
        (tmp_path / 't.npz').write_bytes(raw)
        with pytest.raises(files.ModelFileError) as e:
            load_params(tmp_path / 't.npz')
        assert 'pickle' not in str(e.value) and 'not an .npz file' in str(e.value)
    np.save(tmp_path / 'a.npy', np.zeros(3))
    with pytest.raises(files.ModelFileError, match='single .npy array'):
        load_params(tmp_path / 'a.npy')


def test_scripts_refuse_corrupt_weights(made, tmp_path):
    write_bytes(tmp_path / 'w.npz', b'PK\x03\x04 not really a zip')
    for name in ('_sample.py', '_evaluate.py', '_visualize.py'):
        extra = ['--text', made / 'corpus.txt'] if name != '_sample.py' else []
        r = run_here(
            name, '--weights', tmp_path / 'w.npz', '--lookup', made / 'run' / 'ShakespeareLookup.json', *extra
        )
        assert_one_line_error(r, 'corrupt')


@pytest.mark.parametrize(
    'raw, words',
    [
        (b'', 'not valid JSON'),
        (b'\xff\xfe', 'not valid JSON'),
        (b'{"a": 1}', 'list'),
        (b'[]', 'list'),
        (b'["ab"]', 'single characters'),
        (b'["a", "a"]', 'twice'),
        (b'[1, 2]', 'single characters'),
        (b'[' * 100000, 'not valid JSON'),
    ],
)
def test_bad_lookup_tables(tmp_path, raw, words):
    with pytest.raises(data.CorpusError, match=words):
        data.load_lookup(write_bytes(tmp_path / 'l.json', raw))


@pytest.mark.parametrize(
    'case, words',
    [
        ('missing', 'does not exist'),
        ('folder', 'folder'),
        ('empty', 'empty'),
        ('latin1', 'not UTF-8'),
        ('short', 'too short'),
    ],
)
def test_training_refuses_bad_corpora_and_writes_nothing(tmp_path, case, words):
    path = tmp_path / 'c.txt'
    if case == 'folder':
        path.mkdir()
    elif case == 'empty':
        path.write_bytes(b'')
    elif case == 'latin1':
        path.write_bytes('To be, or not to be: ça'.encode('latin-1') * 10)
    elif case == 'short':
        path.write_text('To be, or not to be.' * 2, encoding='utf-8')
    r = run_here('_training.py', '--corpus', path, '--out', tmp_path / 'run', *TINY)
    assert_one_line_error(r, words)
    assert not (tmp_path / 'run').exists()


@pytest.mark.parametrize('device, words', [('/dev/zero', 'NUL bytes only'), ('/dev/urandom', 'not UTF-8')])
@pytest.mark.parametrize(
    'name, option', [('_training.py', '--corpus'), ('_visualize.py', '--text'), ('_evaluate.py', '--corpus')]
)
def test_an_endless_stream_of_no_text_is_refused_at_its_first_bytes(tmp_path, device, words, name, option):
    extra = (
        ['--out', tmp_path / 'run']
        if name == '_training.py'
        else (['--find'] if name == '_visualize.py' else [])
    )
    # At once: not after reading gigabytes.
    r = subprocess.run(
        [sys.executable, os.path.join(ROOT, name), option, device, *map(str, extra)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_one_line_error(r, device, words)
    assert list(tmp_path.iterdir()) == []


def test_a_crlf_or_cr_corpus_shows_its_epoch_sample_without_a_carriage_return(monkeypatch):
    """Windows' and old Macs' line ends are the corpus's text; the epoch's sample shows them as line ends."""
    import _training

    chars = sorted(set('ab\r\n'))
    drawn = 'a\r\nb\rab\n'
    monkeypatch.setattr(lstm, 'sample', lambda *args, **kwargs: ([chars.index(c)] for c in drawn))
    shown = _training.sample_text(None, chars, 'a', len(drawn), 0, types.SimpleNamespace(check=lambda: None))
    assert shown == '| a\n| b\n| ab\n| '


def test_best_before_the_first_epoch_ends_says_it_comes_then(tmp_path):
    out, corpus = tmp_path / 'run', tmp_path / 'corpus.txt'
    corpus.write_text(tiny_corpus(3000), encoding='utf-8')
    r = run_here('_training.py', '--corpus', corpus, '--out', out, '--max-steps', '2', *TINY)
    assert r.returncode == 0, r.stderr
    best = out / 'best'
    r = run_here(
        '_sample.py', '--weights', best / 'ShakespeareNet.npz', '--lookup', best / 'ShakespeareLookup.json'
    )
    assert_one_line_error(r, 'does not exist: the run in', 'has no best/ yet', 'use its own files')
