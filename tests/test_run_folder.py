"""The run folder keeps its promises: one writer, a whole checkpoint whatever happens (kills, signals, full disks,
racing starts), damaged metadata refused in one line, and only its own temporary files removed."""
import errno
import io
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import _training
import cli
import engine
import files
import lstm
import runs
from helpers import ROOT, assert_one_line_error, script, tiny_corpus
from optimizer import RMSprop

TINY = ['--hidden', '8', '--chunks', '4', '--window', '10', '--dtype', 'float64', '--dropout', '0.2',
        '--threads', '1', '--quiet', '--sample-length', '0']


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / 'corpus.txt'
    path.write_text(tiny_corpus(1500), encoding='utf-8')   # 33 steps per epoch
    return path


@pytest.fixture(autouse=True)
def plain_products(monkeypatch):
    """Fixed block widths: a run and its reference compute the same products whatever the timings measured."""
    monkeypatch.setattr(engine, 'FORWARD_BLOCK', 0)
    monkeypatch.setattr(engine, 'BACKWARD_BLOCK', 0)


def train(*args):
    return _training.main([str(a) for a in args])


def fails(capsys, *args):
    """Run _training.main expecting one line on stderr and exit status 2; return the line."""
    with pytest.raises(SystemExit) as e:
        train(*args)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


def load(folder):
    return files.load_checkpoint(folder / runs.CHECKPOINT, lambda p: RMSprop(p))


def assert_same_run(a, b):
    """Two run folders hold the same run: checkpoint arrays, random state and the log's epochs, bit for bit."""
    (p1, o1, s1, m1, e1), (p2, o2, s2, m2, e2) = load(a), load(b)
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
    weights, wmeta = files.load_params(folder / runs.WEIGHTS, dtype=np.float64)
    assert wmeta['commit'] == meta['commit'] and wmeta['step'] == meta['position']['step']
    assert json.loads((folder / runs.LOOKUP).read_text()) == meta['chars']
    assert (folder / runs.LOG).read_text() == runs.log_text(meta['log'])
    pos = meta['position']
    if pos.get('best_step') is not None:
        _, _, _, best, _ = load(folder / runs.BEST)
        assert best['position']['step'] == pos['best_step'] and best['position']['val_loss'] == pos['best_val']
    assert not [n for d in (folder, folder / runs.BEST) if d.exists() for n in os.listdir(d) if n.endswith('.tmp')]


# --- one writer: the lock comes first ------------------------------------------------------------------------------

def test_the_lock_is_taken_before_anything_is_read(tmp_path, corpus, capsys):
    out = tmp_path / 'run'
    out.mkdir()
    held = runs.Lock(str(out))
    try:                                                # the corpus, the checkpoint: neither is read while locked
        assert 'another training is running' in fails(capsys, '--corpus', tmp_path / 'nosuch.txt', '--out', out)
        (out / runs.CHECKPOINT).write_bytes(b'damaged')
        assert 'another training is running' in fails(capsys, '--out', out, '--resume')
    finally:
        held.file.close()
    assert 'is not an .npz file' in fails(capsys, '--out', out, '--resume')


def test_two_runs_started_together_give_one_run(tmp_path, corpus):
    out = tmp_path / 'run'
    cmd = [sys.executable, os.path.join(ROOT, '_training.py'), '--corpus', str(corpus), '--out', str(out),
           '--epochs', '2', *TINY]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 2], results
    err = next(e for code, e in results if code == 2).strip().splitlines()
    assert len(err) == 1 and ('another training is running' in err[0] or 'already holds a run' in err[0])
    assert [r[0] for r in runs.read_log(out / runs.LOG)] == ['1', '2']


def test_the_best_folder_of_a_run_is_not_a_run_folder(tmp_path, corpus, capsys):
    out = tmp_path / 'run'
    assert train('--corpus', corpus, '--out', out, '--epochs', '1', *TINY) == 0
    for extra in (['--resume'], ['--corpus', corpus, *TINY]):
        assert 'the best/ folder of the run' in fails(capsys, '--out', out / 'best', *extra)
    (tmp_path / 'link').symlink_to(out)
    assert 'the best/ folder of the run' in fails(capsys, '--out', tmp_path / 'link' / 'best', '--resume')


def test_the_shipped_model_folder_is_refused_however_named(tmp_path, corpus, capsys, monkeypatch):
    (tmp_path / 'saves_link').symlink_to(cli.SAVES)
    for out in ('saves', './saves', cli.SAVES, cli.SAVES + '/', tmp_path / 'saves_link', 'saves/sub'):
        assert '--overwrite-shipped-model' in fails(capsys, '--corpus', corpus, '--out', out, '--resume')
    monkeypatch.setattr(cli, 'SAVES', str(tmp_path / 'shipped'))   # said explicitly: written (never the real one)
    assert train('--corpus', corpus, '--out', tmp_path / 'shipped', '--max-steps', '1', *TINY,
                 '--overwrite-shipped-model') == 0
    assert (tmp_path / 'shipped' / runs.CHECKPOINT).exists()


# --- temporaries and the paths the run writes ------------------------------------------------------------------

def test_only_this_repos_temporary_files_are_removed(tmp_path, corpus):
    out = tmp_path / 'run'
    assert train('--corpus', corpus, '--out', out, '--max-steps', '1', *TINY) == 0
    (out / 'best').mkdir()
    ours = [out / '.ShakespeareNet.npz.ab12cd_9.tmp', out / 'best' / '.ShakespeareOptimizer.npz.zzzzzzzz.tmp']
    theirs = [out / '.my-notes.tmp', out / 'notes.tmp', out / '.ShakespeareNet.npz.tmp']
    for path in ours + theirs:
        path.write_text('x')
    (out / 'x.tmp').mkdir()
    (out / '.training_log.csv.abcdefgh.tmp').mkdir()   # a folder, even of our pattern, is not ours
    assert train('--out', out, '--resume', '--max-steps', '2', '--quiet') == 0
    assert not any(p.exists() for p in ours)
    assert all(p.read_text() == 'x' for p in theirs)
    assert (out / 'x.tmp').is_dir() and (out / '.training_log.csv.abcdefgh.tmp').is_dir()


@pytest.mark.parametrize('make, words', [
    (lambda out: (out / 'best').write_text('mine'), 'best is a file'),
    (lambda out: (out / runs.WEIGHTS).mkdir(), 'ShakespeareNet.npz is a folder'),
    (lambda out: (out / runs.LOG).mkdir(), 'training_log.csv is a folder'),
    (lambda out: (out / 'best' / runs.CHECKPOINT).mkdir(parents=True), 'ShakespeareOptimizer.npz is a folder'),
])
def test_what_the_run_writes_is_checked_before_the_corpus_is_read(tmp_path, capsys, make, words):
    out = tmp_path / 'run'
    out.mkdir()
    make(out)
    assert words in fails(capsys, '--corpus', tmp_path / 'nosuch.txt', '--out', out, *TINY)


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes read-only files')
def test_a_read_only_log_is_refused_before_any_work(tmp_path, corpus, capsys):
    out = tmp_path / 'run'
    assert train('--corpus', corpus, '--out', out, '--max-steps', '1', *TINY) == 0
    (out / runs.LOG).chmod(0o444)
    assert 'training_log.csv is read-only' in fails(capsys, '--out', out, '--resume', '--corpus', 'nosuch.txt')


def test_an_out_that_is_a_file_is_reported_before_the_corpus(tmp_path, capsys):
    (tmp_path / 'f').write_text('x')
    assert 'a file of that name is in the way' in fails(capsys, '--corpus', tmp_path / 'nosuch.txt', '--out',
                                                        tmp_path / 'f')


def test_a_refused_new_run_leaves_no_folder_and_files_of_no_run_are_kept(tmp_path, corpus, capsys):
    assert 'does not exist' in fails(capsys, '--corpus', tmp_path / 'nosuch.txt', '--out', tmp_path / 'new')
    assert not (tmp_path / 'new').exists()
    out = tmp_path / 'mine'
    out.mkdir()
    (out / runs.WEIGHTS).write_bytes(b'my own weights')
    assert 'but no checkpoint' in fails(capsys, '--corpus', corpus, '--out', out, *TINY)
    assert (out / runs.WEIGHTS).read_bytes() == b'my own weights'


# --- a whole checkpoint, whatever stops it -----------------------------------------------------------------------

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
        assert 'No space left on device' in fails(capsys, *command, '--out', out)
        monkeypatch.setattr(files, 'atomic_write', ATOMIC_WRITE)     # space freed
        if (out / runs.CHECKPOINT).exists():            # the disk filled after the first commit: continue it
            assert 'already holds a run' in fails(capsys, *command, '--out', out)
            assert train(*command, '--out', out, '--resume') == 0
        else:                                           # a first checkpoint never completed: a new folder
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
    ('', 'commit', -3, 'commit = -3'),
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


# --- signals: SIGHUP as SIGTERM; a stop during validation or the sample is at once ------------------------------

def test_sighup_writes_a_checkpoint_like_sigterm(tmp_path, corpus):
    out = tmp_path / 'run'
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, '_training.py'), '--corpus', str(corpus), '--out',
                          str(out), '--epochs', '100000', *TINY], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        while not (out / runs.LOG).exists():            # the first epoch is done: the loop is running
            assert p.poll() is None, p.stderr.read()
            subprocess.run(['sleep', '0.05'])
        p.send_signal(signal.SIGHUP)
        assert p.wait(timeout=120) == 0
    finally:
        p.kill()
    assert 'Traceback' not in p.stderr.read()
    _, _, _, meta, _ = load(out)
    assert meta['saved'] == 'interrupted' and meta['log'][-1][-1] == 'SIGHUP received'


def test_ctrl_c_during_validation_stops_at_the_next_window_and_loses_nothing(tmp_path, corpus, monkeypatch):
    real, windows_read = lstm.evaluate, []

    def evaluate(params, ids, *, window=1000, progress=None):
        os.kill(os.getpid(), signal.SIGINT)             # Ctrl-C as validation starts
        return real(params, ids, window=10, progress=lambda done: (windows_read.append(done), progress(done)))
    monkeypatch.setattr(lstm, 'evaluate', evaluate)
    out = tmp_path / 'run'
    assert train('--corpus', corpus, '--out', out, '--epochs', '2', *TINY) == 0
    assert len(windows_read) == 1                       # stopped after the first of 15 windows
    _, _, _, meta, _ = load(out)
    assert meta['position']['epoch'] == 0 and meta['position']['window'] == 33    # trained, not yet validated
    assert [row[-1] for row in meta['log']] == ['SIGINT received']
    monkeypatch.setattr(lstm, 'evaluate', real)
    assert train('--out', out, '--resume', '--quiet') == 0
    assert train('--corpus', corpus, '--out', tmp_path / 'whole', '--epochs', '2', *TINY) == 0
    assert_same_run(out, tmp_path / 'whole')
    assert_whole(out)


def test_ctrl_c_during_the_sample_stops_it_and_keeps_the_epoch(tmp_path, corpus, monkeypatch, capsys):
    real, drawn = lstm.sample, []

    def sample(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)             # Ctrl-C as the sample starts
        for ix in real(*args, **kwargs):
            drawn.append(ix)
            yield ix
    monkeypatch.setattr(lstm, 'sample', sample)
    out = tmp_path / 'run'
    args = [a for a in TINY if a not in ('--quiet',)]
    args[args.index('--sample-length') + 1] = '100000'
    assert train('--corpus', corpus, '--out', out, '--epochs', '3', *args) == 0
    assert len(drawn) == 1
    assert 'SIGINT received: checkpoint saved' in capsys.readouterr().out
    _, _, _, meta, _ = load(out)
    assert meta['position']['epoch'] == 1 and [row[-1] for row in meta['log']] == ['best', 'SIGINT received']
    assert_whole(out)


# --- also seen ---------------------------------------------------------------------------------------------------

def test_a_corpus_of_one_character_prints_no_negative_loss(tmp_path, capsys):
    (tmp_path / 'a.txt').write_text('a' * 600)
    args = [a for a in TINY if a != '--quiet']
    assert train('--corpus', tmp_path / 'a.txt', '--out', tmp_path / 'run', '--epochs', '1', *args) == 0
    out = capsys.readouterr().out
    assert 'validation loss 0.0000' in out and '-0.0000' not in out
    assert '-0.0000' not in (tmp_path / 'run' / runs.LOG).read_text()


def test_frequent_checkpoints_keep_the_training_speed(tmp_path, corpus):
    out = tmp_path / 'run'
    assert train('--corpus', corpus, '--out', out, '--epochs', '2', '--checkpoint-minutes', '1e-9', *TINY) == 0
    rows = runs.read_log(out / runs.LOG)
    assert len(rows) == 2 and all(float(r[6]) > 0 for r in rows)


def test_resume_says_where_it_continues_and_what_changed(tmp_path, corpus, capsys):
    out = tmp_path / 'run'
    assert train('--corpus', corpus, '--out', out, '--max-steps', '40', *TINY) == 0
    assert train('--out', out, '--resume', '--max-steps', '41', '--lr', '0.0005', '--epochs', '4',
                 '--sample-length', '0') == 0
    lines = capsys.readouterr().out.splitlines()
    line = next(x for x in lines if x.startswith('resuming'))
    assert 'epoch 1.2121 (epoch 1, window 7/33), step 40' in line
    assert 'lr 0.001 -> 0.0005' in line and 'epochs 10 -> 4' in line and 'dropout' not in line
    assert train('--out', out, '--resume', '--max-steps', '41', '--sample-length', '0') == 0
    assert 'no setting changed' in capsys.readouterr().out


# --- the stress test: kills, signals, full disks and racing starts on one folder --------------------------------

def stress_main():
    """_training.py as the stress test runs it: a disk that fills after $FULL_DISK_BUDGET bytes, if set."""
    engine.FORWARD_BLOCK = engine.BACKWARD_BLOCK = 0
    if os.environ.get('FULL_DISK_BUDGET'):
        files.atomic_write = FullDisk(int(os.environ['FULL_DISK_BUDGET']))
    cli.run(_training.main)


def start(out, command, budget=None):
    env = dict(os.environ, FULL_DISK_BUDGET=str(budget) if budget is not None else '')
    args = [*command, '--resume'] if (out / runs.CHECKPOINT).exists() else command
    code = (f'import sys; sys.path[:0] = [{ROOT!r}, {os.path.join(ROOT, "tests")!r}]; sys.argv[0] = "_training.py"; '
            'import conftest, test_run_folder; test_run_folder.stress_main()')
    return subprocess.Popen([sys.executable, '-c', code, *map(str, args)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def stopped(p, sig, after):
    try:
        return p.wait(timeout=after)
    except subprocess.TimeoutExpired:
        p.send_signal(sig)
        return p.wait(timeout=120)


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


def test_a_stop_before_any_step_logs_the_learning_rate_of_its_epoch(tmp_path, corpus):
    out = tmp_path / 'run'
    assert train('--corpus', corpus, '--out', out, '--max-steps', '70', '--lr', '0.01', '--lr-decay', '0.5',
                 *TINY) == 0                            # two epochs of 33 steps, and 4 of the third
    assert train('--out', out, '--resume', '--max-steps', '70', '--quiet') == 0
    rows = runs.read_log(out / runs.LOG)
    assert [r[4] for r in rows] == ['0.01', '0.005', '0.0025', '0.0025'], rows
