"""A run folder is whole whatever stops it: a full disk in any file of any checkpoint, a kill between the files,
damaged metadata (one line naming the field), and a stress test of kills, signals, full disks and racing starts."""
import io
import signal

import numpy as np
import pytest

import data
from util import files
from util import runs
from helpers import assert_one_line_error, script, tiny_corpus
from run_folder_helpers import (ATOMIC_WRITE, TINY, FullDisk, assert_same_run, assert_whole, fails, load, start,
                                stopped, train, written_files)
from run_folder_helpers import corpus  # noqa: F401  (a fixture)


def test_a_full_disk_at_any_file_of_any_checkpoint_loses_nothing(tmp_path, corpus, monkeypatch, capsys):
    """The disk fills in the middle of each file the run writes, in turn; after space is freed, the same command
    (--resume once a checkpoint exists) finishes the run exactly as if nothing had happened. (The periodic
    checkpoints are the same writes: the stress test has them.)"""
    command = ['--corpus', corpus, '--epochs', '2', *TINY]
    whole = tmp_path / 'whole'
    calls = written_files(monkeypatch, *command, '--out', whole)
    names = [name for name, _ in calls]
    assert names[:7] == [runs.CHECKPOINT, runs.WEIGHTS, runs.LOOKUP, runs.LOG, 'best/' + runs.WEIGHTS,
                         'best/' + runs.LOOKUP, 'best/' + runs.CHECKPOINT]
    offsets = np.cumsum([0] + [size for _, size in calls])
    for k in range(len(calls)):
        out = tmp_path / f'full{k}'
        monkeypatch.setattr(files, 'atomic_write', FullDisk(int(offsets[k] + calls[k][1] // 2)))
        line = fails(capsys, *command, '--out', out)
        assert 'No space left on device' in line
        monkeypatch.setattr(files, 'atomic_write', ATOMIC_WRITE)     # space freed
        if (out / runs.CHECKPOINT).exists():            # the disk filled after the first commit: continue it
            assert 'continue with --resume' in line
            assert 'already holds a run' in fails(capsys, *command, '--out', out)
            assert train(*command, '--out', out, '--resume') == 0
        else:                                           # a first checkpoint never completed: a new folder
            assert 'run the same command again' in line and 'previous checkpoint' not in line
            assert train(*command, '--out', out) == 0
        assert_same_run(out, whole)
        assert_whole(out)
        for name in (runs.WEIGHTS, runs.CHECKPOINT):
            files.load_npz(out / 'best' / name, 'best')   # best/ whole, and of the best epoch (assert_whole)


def test_a_resume_completes_what_a_stop_left_half_done(tmp_path, corpus, monkeypatch, capsys):
    """Killed between the checkpoint of the best epoch and its other files: the log row, the weights and best/
    are written by the resume, before it trains."""
    out = tmp_path / 'run'
    assert train('--corpus', corpus, '--out', out, '--epochs', '1', *TINY) == 0
    done = {p: p.read_bytes() for p in out.rglob('*') if p.is_file() and p.name != runs.LOCK}
    _, meta = files.load_npz(out / runs.CHECKPOINT, 'checkpoint', only_meta=True)
    assert meta['position']['best_step'] == meta['position']['step'] == 33 and len(meta['log']) == 1
    (out / runs.LOG).write_text(runs.log_text([]))      # as a kill right after the commit leaves them
    (out / runs.WEIGHTS).unlink()
    (out / runs.LOOKUP).unlink()
    for name in (runs.CHECKPOINT, runs.WEIGHTS):
        (out / 'best' / name).unlink()
    assert train('--out', out, '--resume', '--max-steps', '33', '--quiet') == 0
    for path, raw in done.items():                     # the same files again (.npz: the same arrays)
        if path.suffix == '.npz' and (path.name != runs.CHECKPOINT or path.parent.name == 'best'):
            a, b = np.load(path), np.load(io.BytesIO(raw))
            assert sorted(a.files) == sorted(b.files), path
            assert all(np.array_equal(a[k], b[k]) for k in a.files if path.parent.name == 'best' or k != 'meta')
        elif path.name == runs.LOG:                     # the epoch's row, then the row of this stop
            assert path.read_text().startswith(raw.decode())
        elif path.name == runs.LOOKUP:
            assert path.read_bytes() == raw
    assert runs.read_log(out / runs.LOG)[0] == meta['log'][0]
    assert_whole(out)


def test_a_full_disk_while_a_resume_completes_the_files_is_one_line_and_the_next_resume_works(tmp_path, corpus,
                                                                                             monkeypatch, capsys):
    out = tmp_path / 'run'
    assert train('--corpus', corpus, '--out', out, '--epochs', '1', *TINY) == 0
    for name in (runs.CHECKPOINT, runs.WEIGHTS):        # killed while best/ was written
        (out / 'best' / name).unlink()
    monkeypatch.setattr(files, 'atomic_write', FullDisk(100))
    line = fails(capsys, '--out', out, '--resume', '--epochs', '2')
    assert 'No space left on device' in line and 'is whole: free some space and resume again' in line
    monkeypatch.setattr(files, 'atomic_write', ATOMIC_WRITE)  # space freed
    assert train('--out', out, '--resume', '--epochs', '2') == 0
    assert_whole(out)
    assert [r[0] for r in runs.read_log(out / runs.LOG)] == ['1', '2']


# --- the checkpoint's metadata ---------------------------------------------------------------------------------

DAMAGED = [
    ('settings', 'chunks', 0, 'settings.chunks = 0'), ('settings', 'chunks', 5, 'settings.chunks is 5'),
    ('', 'settings', 'fast', 'settings = "fast"'), ('settings', 'lr', 'fast', 'settings.lr = "fast"'),
    ('settings', 'lr', -1, 'settings.lr = -1'), ('settings', 'lr', float('inf'), 'settings.lr = Infinity'),
    ('settings', 'corpus', 123, 'settings.corpus = 123'), ('settings', 'variational', 'yes', 'settings.variational'),
    ('settings', 'dtype', 'float16', 'settings.dtype'), ('settings', 'hidden', 16, 'settings.hidden is 16'),
    ('settings', 'layers', 3, 'settings.layers is 3'), ('settings', 'epochs', True, 'settings.epochs = true'),
    ('settings', 'rho', 1.5, 'settings.rho = 1.5'), ('settings', 'colour', 1, 'settings.colour'),
    ('', 'position', [0, 1, 2], 'position = [0, 1, 2]'), ('position', 'window', None, 'position.window = null'),
    ('position', 'window', 1e9, 'position.window = 1000000000.0'),
    ('position', 'window', 10 ** 9, 'position.window = 1000000000'), ('position', 'step', -1, 'position.step'),
    ('position', 'best_val', 'low', 'position.best_val'), ('position', 'seconds', float('nan'), 'position.seconds'),
    ('position', 'best_step', 10 ** 6, 'position.best_step'), ('position', 'epoch_steps', 2.5, 'epoch_loss_sum'),
    ('rng', 'state', None, 'rng = '), ('rng', 'bit_generator', 'MT19937', 'rng.bit_generator = "MT19937"'),
    ('', 'rng', 'random', 'rng = "random"'), ('', 'corpus_chars', 1, 'corpus_chars = 1'),
    ('', 'chars', ['a', 'a'], 'chars'), ('', 'chars', ['\ud800', 'b'], 'none a lone surrogate'),
    ('', 'chars', list('abc'), 'lookup table\'s size is 3'), ('rng', 'state', {'state': 1}, 'not a whole PCG64'),
    ('', 'log', 'rows', 'log = "rows"'), ('', 'windows_per_epoch', 0, 'windows_per_epoch = 0'),
    ('', 'block_widths', 7, 'block_widths = 7'), ('', 'block_widths', [[1, 2]], 'block widths'),
    ('', 'commit', -3, 'commit = -3'), ('position', 'epoch', 10 ** 30, 'position.epoch = 10000000000000'),
    ('position', 'step', 39, 'position.step = 39'), ('position', 'window', 34, 'position.window = 34 (more than'),
    ('', 'log', [['1', '2']], 'rows of 8 one-line texts'), ('', 'log', [['1\n'] * 8], 'rows of 8 one-line'),
    # loaded once, then broken later: a reversed lookup table (the corpus encoded with other indices), counts
    # that cannot advance, a clock or a sum that overflows as it runs
    ('', 'chars', data.build_lookup(tiny_corpus(1500))[::-1], 'in code-point order'),
    ('settings', 'epochs', 2 ** 63 - 1, 'settings.epochs = 9223372036854775807 (not an integer from 0 to 2**53)'),
    ('position', 'step', 2 ** 63 - 1, 'position.step = 9223372036854775807'),
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
def test_damaged_metadata_is_refused_in_one_line_naming_the_field(saved_run, tmp_path, capsys, where, field,
                                                                   value, words):
    arrays, meta = files.load_npz(saved_run / runs.CHECKPOINT, 'checkpoint')
    if where:
        if value is None:
            del meta[where][field]
        else:
            meta[where][field] = value
    else:
        meta[field] = value
    out = tmp_path / 'run'
    files.save_npz(out / runs.CHECKPOINT, arrays, meta)
    before = (out / runs.CHECKPOINT).read_bytes()
    line = fails(capsys, '--out', out, '--resume')
    assert words in line and 'Traceback' not in line, line
    assert (out / runs.CHECKPOINT).read_bytes() == before


def test_damaged_metadata_in_a_real_process_is_one_line(saved_run, tmp_path):
    arrays, meta = files.load_npz(saved_run / runs.CHECKPOINT, 'checkpoint')
    meta['position'] = {'epoch': 0, 'step': 3}
    files.save_npz(tmp_path / 'run' / runs.CHECKPOINT, arrays, meta)
    assert_one_line_error(script('_training.py', '--out', tmp_path / 'run', '--resume'), 'position.window')


@pytest.mark.slow
def test_stress_kills_signals_full_disks_and_racing_starts_then_the_same_run(tmp_path, corpus):
    command = ['--corpus', corpus, '--out', tmp_path / 'run', '--epochs', '6', '--checkpoint-minutes', '1e-9',
               *TINY]
    out, rng = tmp_path / 'run', np.random.default_rng(20)
    assert train(*command[:3], tmp_path / 'whole', *command[4:]) == 0
    size = sum(p.stat().st_size for p in (tmp_path / 'whole').iterdir() if p.is_file())
    for _ in range(14):
        action = rng.choice(['signal', 'disk', 'race'])
        if action == 'signal':
            sig = rng.choice([signal.SIGKILL, signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
            p = start(out, command)
            code = stopped(p, sig, rng.uniform(0.2, 3.0))
            assert code in (0, 130, -sig) and 'Traceback' not in p.stderr.read()
        elif action == 'disk':
            p = start(out, command, budget=int(rng.integers(0, 3 * size)))
            code, err = p.wait(timeout=300), p.stderr.read().strip().splitlines()
            assert code == 0 or (code == 2 and len(err) == 1 and 'No space left on device' in err[0]), err
        else:
            ps = [start(out, command) for _ in range(3)]
            codes = [stopped(p, signal.SIGKILL, rng.uniform(0.5, 3.0)) for p in ps]
            for p, code in zip(ps, codes):
                err = p.stderr.read().strip().splitlines()
                assert code in (0, -9) or (code == 2 and len(err) == 1 and (
                    'another training is running' in err[0] or 'already holds a run' in err[0])), err
        if (out / runs.CHECKPOINT).exists():
            load(out)                                   # always a whole checkpoint
    assert train(*command, '--resume') == 0 if (out / runs.CHECKPOINT).exists() else train(*command) == 0
    assert_same_run(out, tmp_path / 'whole')
    assert_whole(out)
