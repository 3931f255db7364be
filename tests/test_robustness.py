"""Bad input, corrupt files and interruptions: one-line errors, and no saved file ever lost."""
import io
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import _training
import data
import files
import lstm
from helpers import tiny_corpus
from optimizer import RMSprop
from test_scripts import ROOT, assert_one_line_error, script

TRAIN = ['--hidden', '8', '--chunks', '4', '--window', '10', '--quiet', '--sample-length', '0']


@pytest.fixture(scope='module')
def made(tmp_path_factory):
    """A small valid weights file, lookup table and checkpoint."""
    d = tmp_path_factory.mktemp('files')
    text = tiny_corpus(3000)
    (d / 'corpus.txt').write_text(text, encoding='utf-8')
    assert _training.main(['--corpus', str(d / 'corpus.txt'), '--out', str(d / 'run'), '--epochs', '1',
                           *TRAIN]) == 0
    return d


def write_bytes(path, raw):
    path.write_bytes(raw)
    return path


# --- weights --------------------------------------------------------------------------------------------------

def test_weights_random_bytes_truncated_and_empty(made, tmp_path):
    good = (made / 'run' / 'ShakespeareNet.npz').read_bytes()
    rng = np.random.default_rng(0)
    for raw in (rng.bytes(5000), good[:len(good) // 2], good[:100], b''):
        with pytest.raises(files.ModelFileError):
            files.load_params(write_bytes(tmp_path / 'w.npz', raw))


def test_weights_with_wrong_shapes_or_missing_arrays(made, tmp_path):
    params, _ = files.load_params(made / 'run' / 'ShakespeareNet.npz')
    bad = dict(params, **{'lstm2.W': params['lstm2.W'][:-1]})
    np.savez(tmp_path / 'w.npz', **bad)
    with pytest.raises(files.ModelFileError, match='lstm2.W has shape'):
        files.load_params(tmp_path / 'w.npz')
    np.savez(tmp_path / 'w.npz', **{k: v for k, v in params.items() if k != 'dense.b'})
    with pytest.raises(files.ModelFileError, match='no array dense.b'):
        files.load_params(tmp_path / 'w.npz')
    np.savez(tmp_path / 'w.npz', **dict(params, **{'dense.b': np.full_like(params['dense.b'], np.nan)}))
    with pytest.raises(files.ModelFileError, match='NaN'):
        files.load_params(tmp_path / 'w.npz')


def test_an_npz_with_pickled_objects_is_refused_without_running_pickle(made, tmp_path):
    params, _ = files.load_params(made / 'run' / 'ShakespeareNet.npz')
    evil = np.empty(1, dtype=object)
    evil[0] = {'would': 'run pickle'}
    np.savez(tmp_path / 'w.npz', **dict(params, **{'dense.b': evil}))
    with pytest.raises(files.ModelFileError, match='pickled objects'):
        files.load_params(tmp_path / 'w.npz')
    r = script('_sample.py', '--weights', tmp_path / 'w.npz', '--lookup', made / 'run' / 'ShakespeareLookup.json')
    assert_one_line_error(r, 'pickled objects')


def test_scripts_refuse_corrupt_weights(made, tmp_path):
    write_bytes(tmp_path / 'w.npz', b'PK\x03\x04 not really a zip')
    for name in ('_sample.py', '_evaluate.py', '_visualize.py'):
        extra = ['--text', made / 'corpus.txt'] if name != '_sample.py' else []
        r = script(name, '--weights', tmp_path / 'w.npz', '--lookup', made / 'run' / 'ShakespeareLookup.json',
                   *extra)
        assert_one_line_error(r, 'corrupt')


# --- lookup table ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize('raw, words', [
    (b'', 'not valid JSON'), (b'\xff\xfe', 'not valid JSON'), (b'{"a": 1}', 'list'), (b'[]', 'list'),
    (b'["ab"]', 'single characters'), (b'["a", "a"]', 'twice'), (b'[1, 2]', 'single characters'),
    (b'[' * 100000, 'not valid JSON'),
])
def test_bad_lookup_tables(tmp_path, raw, words):
    with pytest.raises(data.CorpusError, match=words):
        data.load_lookup(write_bytes(tmp_path / 'l.json', raw))


# --- fuzzing the three loaders: a clean error or a valid load, never a crash or a hang -------------------------

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def mutate(raw, edits):
    b = bytearray(raw)
    for pos, value in edits:
        if b:
            b[pos % len(b)] = value
    return bytes(b)


@FUZZ
@given(raw=st.binary(max_size=300))
def test_fuzz_lookup_random_bytes(tmp_path, raw):
    try:
        chars = data.load_lookup(write_bytes(tmp_path / 'l.json', raw))
    except data.CorpusError:
        return
    assert chars and all(isinstance(c, str) and len(c) == 1 for c in chars)


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)), min_size=1, max_size=8),
       cut=st.integers(0, 10 ** 6))
def test_fuzz_weights_and_checkpoint_mutations(made, tmp_path, edits, cut):
    for name in ('ShakespeareNet.npz', 'ShakespeareOptimizer.npz'):
        raw = mutate((made / 'run' / name).read_bytes(), edits)
        if cut % 3 == 0:
            raw = raw[:cut % max(len(raw), 1)]
        path = write_bytes(tmp_path / name, raw)
        try:
            if name == 'ShakespeareNet.npz':
                params, _ = files.load_params(path)
            else:
                params, _, _, _, _ = files.load_checkpoint(path, lambda p: RMSprop(p))
        except files.ModelFileError:
            continue
        assert all(np.all(np.isfinite(p)) for p in params.values())


@FUZZ
@given(raw=st.binary(max_size=2000))
def test_fuzz_weights_random_bytes_in_a_zip(tmp_path, raw):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w') as z:
        z.writestr('dense.W.npy', raw)
    with pytest.raises(files.ModelFileError):
        files.load_params(write_bytes(tmp_path / 'w.npz', buf.getvalue()))


# --- corpus -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('case, words', [
    ('missing', 'does not exist'), ('folder', 'folder'), ('empty', 'empty'), ('latin1', 'not UTF-8'),
    ('short', 'too short'),
])
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
    r = script('_training.py', '--corpus', path, '--out', tmp_path / 'run', *TRAIN)
    assert_one_line_error(r, words)
    assert not (tmp_path / 'run').exists()


def test_training_refuses_bad_options(tmp_path, made):
    for args, words in ((['--lr', '-1'], '--lr'), (['--dropout', '1'], '--dropout'), (['--window', '0'],
                        '--window'), (['--dtype', 'float16'], '--dtype')):
        r = script('_training.py', '--corpus', made / 'corpus.txt', '--out', tmp_path / 'run', *args)
        assert_one_line_error(r, words)
    r = script('_training.py', '--out', tmp_path / 'nothing', '--resume')
    assert_one_line_error(r, 'cannot resume')
    r = script('_training.py', '--corpus', made / 'corpus.txt', '--out', made / 'run', *TRAIN)
    assert_one_line_error(r, 'already holds a run')
    (tmp_path / 'other.txt').write_text(tiny_corpus(4000), encoding='utf-8')
    r = script('_training.py', '--corpus', tmp_path / 'other.txt', '--out', made / 'run', '--resume')
    assert_one_line_error(r, 'same --corpus')
    r = script('_training.py', '--out', made / 'run', '--resume', '--hidden', '16')
    assert_one_line_error(r, '--hidden 16', 'cannot change')


# --- interruptions --------------------------------------------------------------------------------------------

def start_training(corpus, out, *extra):
    return subprocess.Popen([sys.executable, os.path.join(ROOT, '_training.py'), '--corpus', str(corpus), '--out',
                             str(out), '--epochs', '1000', *TRAIN, *extra], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(path, timeout=60):
    t = time.time()
    while not os.path.exists(path):
        assert time.time() - t < timeout, f'{path} never appeared'
        time.sleep(0.05)


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_a_signal_writes_a_checkpoint_and_exits_cleanly(made, tmp_path, sig):
    out = tmp_path / 'run'
    p = start_training(made / 'corpus.txt', out)
    wait_for(out / 'training_log.csv')                  # the first epoch is done
    time.sleep(0.3)
    p.send_signal(sig)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 0, stderr
    assert 'Traceback' not in stderr
    _, _, _, meta, _ = files.load_checkpoint(out / 'ShakespeareOptimizer.npz', lambda q: RMSprop(q))
    assert meta['saved'] == 'interrupted'
    assert signal.Signals(sig).name in (out / 'training_log.csv').read_text()


def test_kill_9_at_any_moment_leaves_a_readable_checkpoint(made, tmp_path):
    """Checkpoint at every step, and kill -9 at random moments: the files are always complete."""
    out = tmp_path / 'run'
    rng = np.random.default_rng(0)
    for k in range(6):
        resume = ['--resume'] if (out / 'ShakespeareOptimizer.npz').exists() else []
        p = start_training(made / 'corpus.txt', out, '--checkpoint-minutes', '0.00001', *resume)
        wait_for(out / 'ShakespeareOptimizer.npz')
        time.sleep(rng.uniform(0.0, 0.5))
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)
        files.load_checkpoint(out / 'ShakespeareOptimizer.npz', lambda q: RMSprop(q))
        files.load_params(out / 'ShakespeareNet.npz')
        data.load_lookup(out / 'ShakespeareLookup.json')
    # A kill in the middle of a write leaves the temporary file of atomic_write behind (never a half file under
    # a real name); the next run in the folder clears them.
    assert _training.main(['--corpus', str(made / 'corpus.txt'), '--out', str(out), '--resume', '--max-steps',
                           '0', *TRAIN]) == 0
    left = [f for folder in (out, out / 'best') if folder.exists() for f in os.listdir(folder) if 'tmp' in f]
    assert left == []


def test_a_non_finite_loss_stops_training_and_keeps_the_last_checkpoint(made, tmp_path):
    out = tmp_path / 'run'
    assert _training.main(['--corpus', str(made / 'corpus.txt'), '--out', str(out), '--epochs', '1',
                           *TRAIN]) == 0
    before = (out / 'ShakespeareOptimizer.npz').read_bytes()
    r = script('_training.py', '--out', out, '--resume', '--epochs', '2', '--lr', '1e38', '--quiet')
    assert_one_line_error(r, 'the loss became non-finite', 'last good checkpoint')
    assert (out / 'ShakespeareOptimizer.npz').read_bytes() == before


def test_resume_after_sigterm_equals_an_uninterrupted_run(made, tmp_path):
    """Interrupted by a signal at an arbitrary step, resumed, and compared with a run that never stopped."""
    common = ['--dtype', 'float64', '--dropout', '0.3', '--max-steps', '1500', '--sample-length', '0']
    out = tmp_path / 'interrupted'
    p = start_training(made / 'corpus.txt', out, *common)
    wait_for(out / 'training_log.csv')                  # at least one epoch done, then stop at some step
    time.sleep(0.5)
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=60) == 0
    _, _, _, meta, _ = files.load_checkpoint(out / 'ShakespeareOptimizer.npz', lambda q: RMSprop(q))
    stopped_at = meta['position']['step']
    assert 0 < stopped_at < 1500, stopped_at
    assert _training.main(['--out', str(out), '--resume', '--quiet', '--max-steps', '1500']) == 0
    whole = tmp_path / 'whole'
    assert _training.main(['--corpus', str(made / 'corpus.txt'), '--out', str(whole), '--epochs', '1000',
                           *TRAIN, *common]) == 0
    a = files.load_checkpoint(out / 'ShakespeareOptimizer.npz', lambda q: RMSprop(q))
    b = files.load_checkpoint(whole / 'ShakespeareOptimizer.npz', lambda q: RMSprop(q))
    assert a[3]['position']['step'] == b[3]['position']['step'] == 1500
    for k in a[0]:
        np.testing.assert_array_equal(a[0][k], b[0][k])
