"""The checkpoint file and its validation: damaged metadata (one line naming the field) and arrays that load
but break later (carried state, step count, optimizer state, two members of one name) are refused before any
work, and the file is left as it was."""

import zipfile

import numpy as np
import pytest

import data
from util import npz, runs

from helpers import TINY, fails, train, assert_one_line_error, script, tiny_corpus


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    d = tmp_path_factory.mktemp('checkpoint')
    (d / 'corpus.txt').write_text('to be or not\n  to be\n' * 80, encoding='utf-8')
    assert train('--corpus', d / 'corpus.txt', '--out', d / 'run', '--max-steps', '5', *TINY) == 0
    return npz.load(d / 'run' / runs.CHECKPOINT, 'checkpoint')


def damaged(arrays, name):
    a = arrays[name]
    return {
        'strings': a.astype('U8'),
        'void': np.zeros(a.shape, dtype='V8'),
        'complex': a.astype(np.complex128),
        'nan': np.where(np.arange(a.size).reshape(a.shape) == 0, np.nan, a),
        'inf': a + np.inf,
        'beyond float32': a + 1e300,
        'h beyond 1': a + 2.0,
        'another shape': a[:1],
    }


@pytest.mark.parametrize('how', ['strings', 'void', 'complex', 'nan', 'inf', 'h beyond 1', 'another shape'])
def test_a_damaged_carried_state_is_one_line(checkpoint, tmp_path, capsys, how):
    arrays, meta = checkpoint
    arrays = dict(arrays, **{'state.h2': damaged(arrays, 'state.h2')[how]})
    out = tmp_path / 'run'
    npz.save(out / runs.CHECKPOINT, arrays, meta)
    before = (out / runs.CHECKPOINT).read_bytes()
    line = fails(capsys, '--out', out, '--resume')
    assert 'state' in line and 'Traceback' not in line, line
    assert (out / runs.CHECKPOINT).read_bytes() == before


@pytest.mark.parametrize('steps', [2**63 - 1, 2**64 - 1, -1])
def test_a_step_count_that_could_not_advance_is_one_line(checkpoint, tmp_path, capsys, steps):
    arrays, meta = checkpoint
    arrays = dict(arrays, steps=np.array(steps, dtype=np.uint64 if steps >= 2**63 else np.int64))
    out = tmp_path / 'run'
    npz.save(out / runs.CHECKPOINT, arrays, meta)
    assert 'step count' in fails(capsys, '--out', out, '--resume')


def test_an_optimizer_state_beyond_float32_is_one_line(tmp_path, corpus, capsys):
    out = tmp_path / 'run'
    assert train('--corpus', corpus, '--out', out, '--max-steps', '2', *TINY, '--dtype', 'float32') == 0
    arrays, meta = npz.load(out / runs.CHECKPOINT, 'checkpoint')
    arrays['cache.dense.W'] = arrays['cache.dense.W'].astype(np.float64) + 1e300  # inf once cast to float32
    npz.save(out / runs.CHECKPOINT, arrays, meta)
    assert 'optimizer state holds values too large for float32' in fails(capsys, '--out', out, '--resume')


def test_a_checkpoint_with_two_members_of_one_name_is_refused(checkpoint, tmp_path, capsys):
    arrays, meta = checkpoint
    out = tmp_path / 'run'
    npz.save(out / runs.CHECKPOINT, arrays, meta)
    with zipfile.ZipFile(out / runs.CHECKPOINT, 'a') as z, pytest.warns(UserWarning, match='Duplicate name'):
        z.writestr('state.c1.npy', z.read('state.c1.npy'))  # numpy would silently load the last one
    line = fails(capsys, '--out', out, '--resume')
    assert 'two arrays named state.c1' in line


DAMAGED = [
    ('settings', 'chunks', 0, 'settings.chunks = 0'),
    ('settings', 'chunks', 5, 'settings.chunks is 5'),
    ('', 'settings', 'fast', 'settings = "fast"'),
    ('settings', 'lr', 'fast', 'settings.lr = "fast"'),
    ('settings', 'lr', -1, 'settings.lr = -1'),
    ('settings', 'lr', float('inf'), 'settings.lr = Infinity'),
    ('settings', 'corpus', 123, 'settings.corpus = 123'),
    ('settings', 'variational', 'yes', 'settings.variational'),
    ('settings', 'dtype', 'float16', 'settings.dtype'),
    ('settings', 'hidden', 16, 'settings.hidden is 16'),
    ('settings', 'layers', 3, 'settings.layers is 3'),
    ('settings', 'epochs', True, 'settings.epochs = true'),
    ('settings', 'rho', 1.5, 'settings.rho = 1.5'),
    ('settings', 'colour', 1, 'settings.colour'),
    ('', 'position', [0, 1, 2], 'position = [0, 1, 2]'),
    ('position', 'window', None, 'position.window = null'),
    ('position', 'window', 1e9, 'position.window = 1000000000.0'),
    ('position', 'window', 10**9, 'position.window = 1000000000'),
    ('position', 'step', -1, 'position.step'),
    ('position', 'best_val', 'low', 'position.best_val'),
    ('position', 'seconds', float('nan'), 'position.seconds'),
    ('position', 'best_step', 10**6, 'position.best_step'),
    ('position', 'epoch_steps', 2.5, 'epoch_loss_sum'),
    ('rng', 'state', None, 'rng = '),
    ('rng', 'bit_generator', 'MT19937', 'rng.bit_generator = "MT19937"'),
    ('', 'rng', 'random', 'rng = "random"'),
    ('', 'corpus_chars', 1, 'corpus_chars = 1'),
    ('', 'corpus_fingerprint', 'abc', 'not a SHA-256'),
    ('', 'chars', ['a', 'a'], 'chars'),
    ('', 'chars', ['\ud800', 'b'], 'none a lone surrogate'),
    ('', 'chars', list('abc'), 'lookup table\'s size is 3'),
    ('rng', 'state', {'state': 1}, 'not a whole PCG64'),
    ('', 'log', 'rows', 'log = "rows"'),
    ('', 'windows_per_epoch', 0, 'windows_per_epoch = 0'),
    ('', 'block_widths', 7, 'block_widths = 7'),
    ('', 'block_widths', [[1, 2]], 'block widths'),
    ('', 'commit', -3, 'commit = -3'),
    ('position', 'epoch', 10**30, 'position.epoch = 10000000000000'),
    ('position', 'step', 39, 'position.step = 39'),
    ('position', 'window', 34, 'position.window = 34 (more than'),
    ('', 'log', [['1', '2']], 'rows of 8 one-line texts'),
    ('', 'log', [['1\n'] * 8], 'rows of 8 one-line'),
    ('', 'log', [['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']] * 3, 'as epoch,step,train_loss'),
    ('', 'log', [['1', '2.5', '', '', '0.001', '3', '', 'epoch']], 'as epoch,step,train_loss'),
    ('', 'log', [['1e400', '2', '', '', '0.001', '3', '', 'epoch']], 'as epoch,step,train_loss'),
    ('', 'log', [['1', '2', '', '', 'inf', '3', '', 'epoch']], 'as epoch,step,train_loss'),
    # loaded once, then broken later: a reversed lookup table (the corpus encoded with other indices), counts
    # that cannot advance, a clock or a sum that overflows as it runs
    ('', 'chars', data.build_lookup(tiny_corpus(1500))[::-1], 'in code-point order'),
    (
        'settings',
        'epochs',
        2**63 - 1,
        'settings.epochs = 9223372036854775807 (not an integer from 0 to 2**53)',
    ),
    ('position', 'step', 2**63 - 1, 'position.step = 9223372036854775807'),
    ('position', 'seconds', 1e300, 'position.seconds = 1e+300'),
    ('position', 'epoch_loss_sum', 1.7e308, 'position.epoch_loss_sum'),
]


@pytest.fixture(scope='module')
def saved_run(tmp_path_factory):
    d = tmp_path_factory.mktemp('saved')
    (d / 'corpus.txt').write_text(tiny_corpus(1500), encoding='utf-8')
    assert train('--corpus', d / 'corpus.txt', '--out', d / 'run', '--max-steps', '40', *TINY) == 0
    return d / 'run'


@pytest.mark.parametrize('where, field, value, words', DAMAGED)
def test_damaged_metadata_is_refused_in_one_line_naming_the_field(
    saved_run, tmp_path, capsys, where, field, value, words
):
    arrays, meta = npz.load(saved_run / runs.CHECKPOINT, 'checkpoint')
    if where:
        if value is None:
            del meta[where][field]
        else:
            meta[where][field] = value
    else:
        meta[field] = value
    out = tmp_path / 'run'
    npz.save(out / runs.CHECKPOINT, arrays, meta)
    before = (out / runs.CHECKPOINT).read_bytes()
    line = fails(capsys, '--out', out, '--resume')
    assert words in line and 'Traceback' not in line, line
    assert (out / runs.CHECKPOINT).read_bytes() == before


def test_damaged_metadata_in_a_real_process_is_one_line(saved_run, tmp_path):
    arrays, meta = npz.load(saved_run / runs.CHECKPOINT, 'checkpoint')
    meta['position'] = {'epoch': 0, 'step': 3}
    npz.save(tmp_path / 'run' / runs.CHECKPOINT, arrays, meta)
    assert_one_line_error(script('_training.py', '--out', tmp_path / 'run', '--resume'), 'position.window')
