"""Hostile cases of a training run, each a correct result or one line (exit 2) with nothing lost: its folder moved
while it trains, checkpoint arrays that load and break later, a path too long for best/, settings that are 0 or
infinite in float32, a loss that is not finite before any checkpoint, a checkpoint that no permission lets it
write; and what it prints: no progress line in a file, a sample primed with a line of the validation text."""
import errno
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import _training
from util import files
import lstm
from util import runs
from conftest import ROOT
from run_folder_helpers import ATOMIC_WRITE, TINY, assert_whole, fails, train
from run_folder_helpers import corpus  # noqa: F401  (a fixture)


# --- the run folder moved, removed or replaced while the training runs --------------------------------------------

@pytest.mark.parametrize('replaced', [False, True])
def test_a_folder_moved_while_training_is_not_made_again_and_the_run_resumes_where_it_went(
        tmp_path, corpus, monkeypatch, capsys, replaced):
    out, moved, real = tmp_path / 'run', tmp_path / 'moved', _training.train_window

    def train_window(run, chunked, threads):
        if run.pos['step'] == 40:                       # in epoch 2, after epoch 1's checkpoint
            os.rename(out, moved)
            if replaced:
                out.mkdir()                             # e.g. a --resume started there would make it again
        return real(run, chunked, threads)
    monkeypatch.setattr(_training, 'train_window', train_window)
    line = fails(capsys, '--corpus', corpus, '--out', out, '--epochs', '2', *TINY)
    assert 'was moved, removed or replaced while this training ran' in line
    assert not out.exists() or os.listdir(out) == []    # nothing written where the folder was
    monkeypatch.setattr(_training, 'train_window', real)
    assert train('--out', moved, '--resume', '--quiet', '--threads', '1') == 0     # the run goes on where it went
    assert_whole(moved)


# --- checkpoint arrays that load and break later ------------------------------------------------------------------

@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    d = tmp_path_factory.mktemp('checkpoint')
    (d / 'corpus.txt').write_text('to be or not\n  to be\n' * 80, encoding='utf-8')
    assert train('--corpus', d / 'corpus.txt', '--out', d / 'run', '--max-steps', '5', *TINY) == 0
    return files.load_npz(d / 'run' / runs.CHECKPOINT, 'checkpoint')


def damaged(arrays, name):
    a = arrays[name]
    return {
        'strings': a.astype('U8'), 'void': np.zeros(a.shape, dtype='V8'), 'complex': a.astype(np.complex128),
        'nan': np.where(np.arange(a.size).reshape(a.shape) == 0, np.nan, a), 'inf': a + np.inf,
        'beyond float32': a + 1e300, 'h beyond 1': a + 2.0, 'another shape': a[:1],
    }


@pytest.mark.parametrize('how', ['strings', 'void', 'complex', 'nan', 'inf', 'h beyond 1', 'another shape'])
def test_a_damaged_carried_state_is_one_line(checkpoint, tmp_path, capsys, how):
    arrays, meta = checkpoint
    arrays = dict(arrays, **{'state.h2': damaged(arrays, 'state.h2')[how]})
    out = tmp_path / 'run'
    files.save_npz(out / runs.CHECKPOINT, arrays, meta)
    before = (out / runs.CHECKPOINT).read_bytes()
    line = fails(capsys, '--out', out, '--resume')
    assert 'state' in line and 'Traceback' not in line, line
    assert (out / runs.CHECKPOINT).read_bytes() == before


@pytest.mark.parametrize('steps', [2 ** 63 - 1, 2 ** 64 - 1, -1])
def test_a_step_count_that_could_not_advance_is_one_line(checkpoint, tmp_path, capsys, steps):
    arrays, meta = checkpoint
    arrays = dict(arrays, steps=np.array(steps, dtype=np.uint64 if steps >= 2 ** 63 else np.int64))
    out = tmp_path / 'run'
    files.save_npz(out / runs.CHECKPOINT, arrays, meta)
    assert 'step count' in fails(capsys, '--out', out, '--resume')


def test_an_optimizer_state_beyond_float32_is_one_line(tmp_path, corpus, capsys):
    out = tmp_path / 'run'
    assert train('--corpus', corpus, '--out', out, '--max-steps', '2', *TINY, '--dtype', 'float32') == 0
    arrays, meta = files.load_npz(out / runs.CHECKPOINT, 'checkpoint')
    arrays['cache.dense.W'] = arrays['cache.dense.W'].astype(np.float64) + 1e300    # inf once cast to float32
    files.save_npz(out / runs.CHECKPOINT, arrays, meta)
    assert 'optimizer state holds values too large for float32' in fails(capsys, '--out', out, '--resume')


def test_a_checkpoint_with_two_members_of_one_name_is_refused(checkpoint, tmp_path, capsys):
    arrays, meta = checkpoint
    out = tmp_path / 'run'
    files.save_npz(out / runs.CHECKPOINT, arrays, meta)
    with zipfile.ZipFile(out / runs.CHECKPOINT, 'a') as z, pytest.warns(UserWarning, match='Duplicate name'):
        z.writestr('state.c1.npy', z.read('state.c1.npy'))    # numpy would silently load the last one
    line = fails(capsys, '--out', out, '--resume')
    assert 'two arrays named state.c1' in line


# --- limits the system sets: a path too long, a permission refused ------------------------------------------------

def test_a_path_too_long_for_best_is_refused_before_any_work(tmp_path, corpus, capsys):
    path_max = os.pathconf(tmp_path, 'PC_PATH_MAX')
    length = path_max - 42             # its own files fit (+39 bytes), best/'s do not (+44)
    parent = tmp_path
    while len(str(parent)) < length - 250:
        parent = parent / ('d' * 200)
    out = parent / ('r' * (length - len(str(parent)) - 1))
    assert len(str(out)) == length
    parent.mkdir(parents=True)
    line = fails(capsys, '--corpus', corpus, '--out', out, '--epochs', '1', *TINY)
    assert 'too long' in line and 'choose a shorter --out path' in line
    assert not (out / runs.CHECKPOINT).exists()


def test_a_checkpoint_refused_for_lack_of_permission_is_not_called_a_full_disk(tmp_path, corpus, monkeypatch,
                                                                               capsys):
    written = []

    def append_only(path, write):                       # as chattr +a: the first checkpoint, then EPERM
        if os.path.basename(path) == runs.CHECKPOINT and written:
            raise files.ModelFileError(f'cannot write {path}: {os.strerror(errno.EPERM)}', errno.EPERM)
        written.append(path)
        return ATOMIC_WRITE(path, write)
    monkeypatch.setattr(files, 'atomic_write', append_only)
    out = tmp_path / 'run'
    line = fails(capsys, '--corpus', corpus, '--out', out, '--epochs', '2', *TINY)
    assert 'Operation not permitted' in line and 'permission' in line and 'space' not in line, line


# --- settings that float32 cannot hold; a loss that is not finite ----------------------------------------------

@pytest.mark.parametrize('option, value, words', [
    ('--eps', '5e-324', '--eps 5e-324 is 0 in float32'), ('--lr', '1e-50', '--lr 1e-50 is 0 in float32'),
    ('--lr', '1e39', 'is inf in float32'), ('--clip', '1e-46', '--clip'), ('--weight-decay', '1e-45', 'times --lr'),
    ('--rho', '0.999999999', 'rounds to 1'), ('--ema', '0.999999999', 'rounds to 1'),
    ('--lr-decay', '1e-30', 'decays to 0'), ('--epochs', str(2 ** 64), 'more than 2**53'),
])
def test_a_setting_that_is_0_or_infinite_in_float32_is_refused_before_any_work(tmp_path, corpus, capsys, option,
                                                                               value, words):
    out = tmp_path / 'run'
    args = ['--epochs', '3'] if option == '--lr-decay' else []
    line = fails(capsys, '--corpus', corpus, '--out', out, option, value, *args, *TINY, '--dtype', 'float32')
    assert words in line, line
    assert not out.exists()


def test_the_same_settings_in_float64_and_on_resume(tmp_path, corpus, capsys):
    assert train('--corpus', corpus, '--out', tmp_path / 'f64', '--max-steps', '2', '--eps', '1e-300', *TINY) == 0
    out = tmp_path / 'run'
    assert train('--corpus', corpus, '--out', out, '--max-steps', '2', *TINY, '--dtype', 'float32') == 0
    before = (out / runs.CHECKPOINT).read_bytes()
    assert 'is 0 in float32' in fails(capsys, '--out', out, '--resume', '--eps', '1e-46')
    assert (out / runs.CHECKPOINT).read_bytes() == before


def test_a_loss_not_finite_before_any_checkpoint_says_there_is_none(tmp_path, corpus, monkeypatch, capsys):
    real = lstm.loss_and_grads
    monkeypatch.setattr(lstm, 'loss_and_grads', lambda *a, **k: (float('nan'),) + real(*a, **k)[1:])
    out = tmp_path / 'run'
    line = fails(capsys, '--corpus', corpus, '--out', out, '--epochs', '1', *TINY)
    assert 'no checkpoint was saved yet; start the run again with a lower --lr' in line
    assert not (out / runs.CHECKPOINT).exists()
    monkeypatch.setattr(lstm, 'loss_and_grads', real)
    assert train('--corpus', corpus, '--out', out, '--max-steps', '1', *TINY) == 0
    monkeypatch.setattr(lstm, 'loss_and_grads', lambda *a, **k: (float('nan'),) + real(*a, **k)[1:])
    line = fails(capsys, '--out', out, '--resume', '--quiet')
    assert 'the last good checkpoint is kept; resume it with a lower --lr' in line


# --- what it prints ---------------------------------------------------------------------------------------------

def test_no_progress_line_in_a_file_and_a_sample_primed_with_a_line_of_the_validation_text(tmp_path):
    corpus = tmp_path / 'indented.txt'
    corpus.write_text(''.join(f'        line {k} of an indented text\n' for k in range(120)), encoding='utf-8')
    args = [a for a in TINY if a != '--quiet']
    args[args.index('--sample-length') + 1] = '60'
    r = subprocess.run([sys.executable, os.path.join(ROOT, '_training.py'), '--corpus', str(corpus), '--out',
                        str(tmp_path / 'run'), '--epochs', '2', *args], capture_output=True, text=True, cwd=ROOT,
                       timeout=600)
    assert r.returncode == 0, r.stderr
    assert '\r' not in r.stdout and '\n\n' not in r.stdout       # no progress line, no blank line left by one
    assert "--- sample (temperature 0.5) after '        line 109 of an indented text\\n', from the validation " \
           "text ---" in r.stdout
    sample = r.stdout.split('from the validation text ---\n')[1].split('\n---')[0]
    assert all(line.startswith('| ') or line == '| ' for line in sample.split('\n'))     # a blank line shows


# --- the benchmark: the threads training would use, and figures it cannot trust ------------------------------------

def test_the_benchmark_honours_openblas_num_threads_as_training_does(monkeypatch):
    import _benchmark
    monkeypatch.setenv('OPENBLAS_NUM_THREADS', '1')
    assert _benchmark.parse_args([]).threads == 1 == _training.default_threads()
    monkeypatch.delenv('OPENBLAS_NUM_THREADS')
    assert _benchmark.parse_args([]).threads == (os.cpu_count() or 1)


def test_the_benchmark_says_when_its_rounds_disagree(monkeypatch, capsys):
    import _benchmark
    assert _benchmark.spread([1.0, 1.1, 1.05]) == pytest.approx(0.1 / 1.05)
    slow = iter([0.0, 1.0] + [0.0, 0.001] * 10_000)     # the first timed step 1000 times the rest: a busy moment
    monkeypatch.setattr(_benchmark.time, 'perf_counter', lambda: next(slow))
    times, spreads = _benchmark.side_by_side([lambda: None], rounds=3, per_round=1)
    assert spreads[0] > _benchmark.UNRELIABLE


def test_the_benchmark_warns_in_one_line_when_figures_are_unreliable(monkeypatch, capsys):
    import _benchmark
    monkeypatch.setattr(_benchmark, 'UNRELIABLE', -1.0)  # every spread counts as too wide
    assert _benchmark.main(['--hidden', '8', '--chunks', '2', '--window', '3', '--rounds', '2', '--no-torch',
                            '--sample-length', '10', '--threads', '1']) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('warning: these figures are unreliable: training varied by'), err
