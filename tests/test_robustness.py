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
from util import files
import lstm
from helpers import ROOT, assert_one_line_error, script, tiny_corpus
from optimizer import RMSprop

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
    with pytest.raises(files.ModelFileError, match='arrays of Python objects, which are never loaded'):
        files.load_params(tmp_path / 'w.npz')
    r = script('_sample.py', '--weights', tmp_path / 'w.npz', '--lookup', made / 'run' / 'ShakespeareLookup.json')
    assert_one_line_error(r, 'arrays of Python objects')


def test_messages_name_the_kind_of_wrong_file(made, tmp_path):
    import pickle
    (tmp_path / 'p.npz').write_bytes(pickle.dumps({'lstm1.W': [1, 2]}))
    with pytest.raises(files.ModelFileError, match='is a pickle file, which is never loaded'):
        files.load_params(tmp_path / 'p.npz')
    for raw in (b'just some text, not numpy', b'', b'PK\x03\x04 not really a zip'):
        (tmp_path / 't.npz').write_bytes(raw)
        with pytest.raises(files.ModelFileError) as e:
            files.load_params(tmp_path / 't.npz')
        assert 'pickle' not in str(e.value) and 'not an .npz file' in str(e.value)
    np.save(tmp_path / 'a.npy', np.zeros(3))
    with pytest.raises(files.ModelFileError, match='single .npy array'):
        files.load_params(tmp_path / 'a.npy')


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


def wait_for_rewrites(path, n, timeout=60):
    """Wait until the file at path has been replaced by a new one n times (os.replace gives it a new inode)."""
    t, seen = time.time(), [os.stat(path).st_ino]
    while len(seen) <= n:
        assert time.time() - t < timeout, f'{path} was not rewritten {n} times'
        try:
            ino = os.stat(path).st_ino
        except FileNotFoundError:                       # between the removal and the rename
            ino = seen[-1]
        if ino != seen[-1]:
            seen.append(ino)
        time.sleep(0.005)                               # polling, not a guess at how long something takes


@pytest.mark.parametrize('sig', [signal.SIGINT, signal.SIGTERM])
def test_a_signal_writes_a_checkpoint_and_exits_cleanly(made, tmp_path, sig):
    out = tmp_path / 'run'
    p = start_training(made / 'corpus.txt', out)
    wait_for(out / 'training_log.csv')                  # the first epoch is done: training is under way
    p.send_signal(sig)
    stdout, stderr = p.communicate(timeout=60)
    assert p.returncode == 128 + sig, stderr            # after the checkpoint, the status of a stopped program
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
        wait_for_rewrites(out / 'ShakespeareOptimizer.npz', int(rng.integers(0, 4)))    # then kill it wherever it is
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
    wait_for(out / 'training_log.csv')                  # at least one epoch done, then stop wherever it is
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=60) == 128 + signal.SIGTERM
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


# --- output paths ---------------------------------------------------------------------------------------------

def test_unwritable_outputs_are_refused_before_any_work(made, tmp_path):
    (tmp_path / 'a_file').write_text('x')
    corpus = made / 'corpus.txt'
    for out, words in ((tmp_path / 'a_file' / 'run', 'part of its path is a file'), ('', '--out'),
                       (tmp_path / 'a_file', 'a file of that name is in the way')):
        r = script('_training.py', '--corpus', corpus, '--out', out, *TRAIN)
        assert_one_line_error(r, *words)
    lookup, weights = made / 'run' / 'ShakespeareLookup.json', made / 'run' / 'ShakespeareNet.npz'
    r = script('_visualize.py', '--weights', weights, '--lookup', lookup, '--text', corpus,
               '--html', tmp_path / 'a_file' / 'page.html')
    assert_one_line_error(r, 'a_file cannot be made', 'a file')
    r = script('_visualize.py', '--weights', weights, '--lookup', lookup, '--text', corpus, '--html', '')
    assert_one_line_error(r, 'empty')
    r = script('_plot.py', made / 'run' / 'training_log.csv', '--out', tmp_path / 'a_file' / 'x.svg')
    assert_one_line_error(r, 'a_file cannot be made', 'a file')


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes into read-only folders')
def test_a_read_only_out_folder_is_refused(made, tmp_path):
    ro = tmp_path / 'ro'
    ro.mkdir()
    ro.chmod(0o500)
    r = script('_training.py', '--corpus', made / 'corpus.txt', '--out', ro / 'run', *TRAIN)
    assert_one_line_error(r, 'cannot be')


def test_a_full_disk_at_a_checkpoint_is_one_line_and_keeps_the_last_checkpoint(made, tmp_path, monkeypatch, capsys):
    out = tmp_path / 'run'
    assert _training.main(['--corpus', str(made / 'corpus.txt'), '--out', str(out), '--epochs', '1', *TRAIN]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def full(*args, **kwargs):
        raise OSError(28, 'No space left on device')
    monkeypatch.setattr(np, 'savez', full)
    with pytest.raises(SystemExit) as e:
        _training.main(['--out', str(out), '--resume', '--epochs', '2'])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'No space left on device' in err[0] and 'previous checkpoint' in err[0]
    for name in ('ShakespeareOptimizer.npz', 'ShakespeareNet.npz', 'ShakespeareLookup.json'):
        assert (out / name).read_bytes() == before[name]
    assert not [p for p in out.iterdir() if p.name.endswith('.tmp')]


def test_a_second_training_into_the_same_folder_is_refused(made, tmp_path):
    out = tmp_path / 'run'
    p = start_training(made / 'corpus.txt', out)
    try:
        wait_for(out / 'training_log.csv')              # an epoch done: it holds the lock (taken before any work)
        assert_one_line_error(script('_training.py', '--out', out, '--resume'), 'another training is running in')
    finally:
        p.kill()
        p.wait(timeout=60)
    # the lock dies with the process: a crashed run does not block the folder
    wait_for(out / 'ShakespeareOptimizer.npz')
    assert _training.main(['--out', str(out), '--resume', '--max-steps', '0', '--quiet']) == 0


# --- every option's mistyped values -----------------------------------------------------------------------------

BAD_VALUES = {
    '_sample.py': [('--length', ['0', '-5', 'ten', '1.5', '']), ('--temperature', ['-1', 'nan', 'inf', 'hot']),
                   ('--top-k', ['-1', '2.5', 'x']), ('--top-p', ['0', '1.5', '-0.1', 'nan']),
                   ('--seed', ['-1', '1.5', 'x']), ('--num-samples', ['0', '-2', 'x']),
                   ('--start', ['']), ('--stop', ['']), ('--start-file', ['no/such.txt']),
                   ('--weights', ['no/such.npz', '']), ('--lookup', ['no/such.json', ''])],
    '_training.py': [('--lr', ['0', '-1', 'nan', 'x']), ('--rho', ['0', '1', '1.5']), ('--eps', ['0', '-1']),
                     ('--clip', ['-1', 'inf']), ('--weight-decay', ['-0.1']), ('--dropout', ['1', '-0.1', '2']),
                     ('--weight-drop', ['1', '-1']), ('--variational', ['maybe', '']), ('--lr-decay', ['0', '-1']),
                     ('--decay-after', ['-1', '2.5']),
                     ('--epochs', ['0', '-1']), ('--ema', ['1', '-0.5']), ('--dtype', ['float16', '']),
                     ('--seed', ['-1', '1.5']), ('--threads', ['0', '-1']), ('--max-steps', ['-1']),
                     ('--layers', ['0']), ('--hidden', ['0', '-8']), ('--chunks', ['0']), ('--window', ['0']),
                     ('--val-fraction', ['0', '1', '1.5']), ('--val-chars', ['-1']),
                     ('--checkpoint-minutes', ['-1', 'nan']), ('--sample-length', ['-1']),
                     ('--corpus', ['no/such.txt', ''])],
    '_evaluate.py': [('--val-fraction', ['0', '1', 'x']), ('--text', ['no/such.txt', '']),
                     ('--corpus', ['no/such.txt']), ('--weights', ['no/such.npz'])],
    '_visualize.py': [('--layer', ['0', '-1', '3']), ('--state', ['x']), ('--neuron', ['-1', '16', 'x']),
                      ('--html-chars', ['0']), ('--top', ['0']), ('--text', ['no/such.txt', ''])],
    '_plot.py': [('--out', ['']), ('--ymax', ['0', '-1', 'nan', 'x']), ('--compare', ['no/such.csv', ''])],
    '_benchmark.py': [('--threads', ['0']), ('--rounds', ['0']), ('--hidden', ['0']), ('--sample-length', ['0']),
                      ('--warmup', ['-1'])],
}


@pytest.mark.parametrize('name', sorted(BAD_VALUES))
def test_every_option_refuses_its_mistyped_values(made, tmp_path, name):
    run = made / 'run'
    model = ['--weights', run / 'ShakespeareNet.npz', '--lookup', run / 'ShakespeareLookup.json']
    base = {'_sample.py': model + ['--length', '5'], '_evaluate.py': model + ['--text', made / 'corpus.txt'],
            '_visualize.py': model + ['--text', made / 'corpus.txt', '--find'],
            '_training.py': ['--corpus', made / 'corpus.txt', '--out', tmp_path / 'out', *TRAIN],
            '_plot.py': [run / 'training_log.csv', '--out', tmp_path / 'x.svg'],
            '_benchmark.py': ['--hidden', '8', '--chunks', '2', '--window', '3', '--rounds', '1', '--no-torch']}[name]
    for option, values in BAD_VALUES[name]:
        for value in values:
            args = [a for a in base]
            if option in args:                          # the bad value replaces the good one
                k = args.index(option)
                args[k + 1] = value
            else:
                args += [option, value]
            r = script(name, *args)
            assert_one_line_error(r)
            assert (option in r.stderr or 'does not exist' in r.stderr or 'empty' in r.stderr), (option, value,
                                                                                               r.stderr)
    assert not (tmp_path / 'out').exists() and not (tmp_path / 'x.svg').exists()
