"""The run folder keeps its promises: one writer (the lock comes first), only its own temporary files removed,
every path it writes checked before work (pipes, devices, folders, paths too long), the folder moved while it
trains, and nothing lost whatever stops it: a full disk at any file of any checkpoint, a refused permission, a
stop that left it half done. (Signals: test_signals.py; the checkpoint's own validation:
test_checkpoint.py.)"""

import errno
import io
import os
import stat
import subprocess
import sys

import numpy as np
import pytest

import _training
from util import cli, files, npz, run_folder, runs

from helpers import (
    ROOT,
    TINY,
    assert_one_line_error,
    assert_same_run,
    assert_whole,
    fails,
    run_here,
    tiny_corpus,
    train,
    written_files,
)
from interrupted import ATOMIC_WRITE, FullDisk, start_training, wait_for


def test_the_lock_is_taken_before_anything_is_read(tmp_path, corpus, capsys):
    out = tmp_path / 'run'
    out.mkdir()
    held = run_folder.Lock(str(out))
    try:  # the corpus, the checkpoint: neither is read while locked
        assert 'another training is running' in fails(
            capsys, '--corpus', tmp_path / 'nosuch.txt', '--out', out
        )
        (out / runs.CHECKPOINT).write_bytes(b'damaged')
        assert 'another training is running' in fails(capsys, '--out', out, '--resume')
    finally:
        held.file.close()
    assert 'is not an .npz file' in fails(capsys, '--out', out, '--resume')


def test_two_runs_started_together_give_one_run(tmp_path, corpus):
    out = tmp_path / 'run'
    procs = [start_training(corpus, out, '--epochs', '2') for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    assert sorted(code for code, _ in results) == [0, 2], results
    err = next(e for code, e in results if code == 2).strip().splitlines()
    assert len(err) == 1 and ('another training is running' in err[0] or 'already holds a run' in err[0])
    assert [r[0] for r in runs.log_rows(out / runs.LOG)] == ['1', '2']


def test_the_best_folder_of_a_run_is_not_a_run_folder(tmp_path, corpus, capsys):
    out = tmp_path / 'run'
    assert train('--corpus', corpus, '--out', out, '--epochs', '1', *TINY) == 0
    for extra in (['--resume'], ['--corpus', corpus, *TINY]):
        assert 'the best/ folder of the run' in fails(capsys, '--out', out / 'best', *extra)
    (tmp_path / 'link').symlink_to(out)
    assert 'the best/ folder of the run' in fails(capsys, '--out', tmp_path / 'link' / 'best', '--resume')


def test_the_shipped_model_folder_is_refused_however_named(tmp_path, corpus, capsys, monkeypatch):
    (tmp_path / 'saves_link').symlink_to(cli.SAVES)
    (tmp_path / 'run').mkdir()
    (tmp_path / 'run' / 'best').symlink_to(cli.SAVES)  # best/ of a run, a link to the shipped model
    for out in (
        'saves',
        './saves',
        cli.SAVES,
        cli.SAVES + '/',
        tmp_path / 'saves_link',
        'saves/..//saves',
        tmp_path / 'run',
    ):
        assert '--overwrite-shipped-model' in fails(capsys, '--corpus', corpus, '--out', out, '--resume')
    for flag in ([], ['--overwrite-shipped-model']):  # below saves/: never a run's folder
        line = fails(capsys, '--corpus', corpus, '--out', 'saves/sub', *flag)
        assert 'inside the shipped model\'s folder' in line, line
    # Said explicitly: written (never the real one).
    monkeypatch.setattr(cli, 'SAVES', str(tmp_path / 'shipped'))
    assert (
        train(
            '--corpus',
            corpus,
            '--out',
            tmp_path / 'shipped',
            '--max-steps',
            '1',
            *TINY,
            '--overwrite-shipped-model',
        )
        == 0
    )
    assert (tmp_path / 'shipped' / runs.CHECKPOINT).exists()


def test_only_this_repos_temporary_files_are_removed(tmp_path, corpus):
    out = tmp_path / 'run'
    assert train('--corpus', corpus, '--out', out, '--max-steps', '1', *TINY) == 0
    (out / 'best').mkdir()
    ours = [out / '.ShakespeareNet.npz.ab12cd_9.tmp', out / 'best' / '.ShakespeareOptimizer.npz.zzzzzzzz.tmp']
    theirs = [out / '.my-notes.tmp', out / 'notes.tmp', out / '.ShakespeareNet.npz.tmp']
    for path in ours + theirs:
        path.write_text('x')
    (out / 'x.tmp').mkdir()
    (out / '.training_log.csv.abcdefgh.tmp').mkdir()  # a folder, even of our pattern, is not ours
    assert train('--out', out, '--resume', '--max-steps', '2', '--quiet') == 0
    assert not any(p.exists() for p in ours)
    assert all(p.read_text() == 'x' for p in theirs)
    assert (out / 'x.tmp').is_dir() and (out / '.training_log.csv.abcdefgh.tmp').is_dir()


@pytest.mark.parametrize(
    'make, words',
    [
        (lambda out: (out / 'best').write_text('mine'), 'best is a file'),
        (lambda out: (out / runs.WEIGHTS).mkdir(), 'ShakespeareNet.npz is a folder'),
        (lambda out: (out / runs.LOG).mkdir(), 'training_log.csv is a folder'),
        (
            lambda out: (out / 'best' / runs.CHECKPOINT).mkdir(parents=True),
            'ShakespeareOptimizer.npz is a folder',
        ),
    ],
)
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
    assert 'training_log.csv is read-only' in fails(
        capsys, '--out', out, '--resume', '--corpus', 'nosuch.txt'
    )


def test_an_out_that_is_a_file_is_reported_before_the_corpus(tmp_path, capsys):
    (tmp_path / 'f').write_text('x')
    assert 'a file of that name is in the way' in fails(
        capsys, '--corpus', tmp_path / 'nosuch.txt', '--out', tmp_path / 'f'
    )


def test_a_refused_new_run_leaves_no_folder_and_files_of_no_run_are_kept(tmp_path, corpus, capsys):
    assert 'does not exist' in fails(capsys, '--corpus', tmp_path / 'nosuch.txt', '--out', tmp_path / 'new')
    assert not (tmp_path / 'new').exists()
    out = tmp_path / 'mine'
    out.mkdir()
    (out / 'best').mkdir()  # an empty best/ is nobody's
    (out / 'best' / runs.WEIGHTS).write_bytes(b'my own weights')
    assert 'holds best/ShakespeareNet.npz but no checkpoint' in fails(
        capsys, '--corpus', corpus, '--out', out, *TINY
    )
    (out / 'best' / runs.WEIGHTS).rename(out / runs.WEIGHTS)
    assert 'holds ShakespeareNet.npz but no checkpoint' in fails(
        capsys, '--corpus', corpus, '--out', out, *TINY
    )
    assert (out / runs.WEIGHTS).read_bytes() == b'my own weights'
    (out / runs.WEIGHTS).unlink()
    assert train('--corpus', corpus, '--out', out, '--max-steps', '1', *TINY) == 0


@pytest.mark.parametrize('name', [runs.LOG, runs.CHECKPOINT, 'best/' + runs.WEIGHTS])
def test_a_pipe_or_a_device_in_a_run_folder_is_refused_in_one_line_not_waited_on(tmp_path, name):
    """A FIFO where the run reads its log or checkpoint made --resume wait for ever; a link to /dev/null where
    it writes would lose the file. Both are refused before anything is read or written."""
    (tmp_path / 'corpus.txt').write_text(tiny_corpus(1500), encoding='utf-8')
    run = tmp_path / 'run'
    assert train('--corpus', tmp_path / 'corpus.txt', '--out', run, '--epochs', '1', *TINY) == 0
    for make in (os.mkfifo, lambda path: os.symlink(os.devnull, path)):
        os.replace(run / name, tmp_path / 'kept')
        make(run / name)
        r = subprocess.run(
            [
                sys.executable,
                os.path.join(ROOT, '_training.py'),
                '--out',
                str(run),
                '--resume',
                '--epochs',
                '2',
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert_one_line_error(r, str(run / name), 'is not a file')
        os.remove(run / name)
        os.replace(tmp_path / 'kept', run / name)
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
    assert train('--out', run, '--resume', '--epochs', '2', *TINY) == 0  # the run continues once it is back


def test_a_second_training_into_the_same_folder_is_refused(made, tmp_path):
    out = tmp_path / 'run'
    p = start_training(made / 'corpus.txt', out)
    try:
        wait_for(out / 'training_log.csv')  # an epoch done: it holds the lock (taken before any work)
        assert_one_line_error(
            run_here('_training.py', '--out', out, '--resume'), 'another training is running in'
        )
    finally:
        p.kill()
        p.wait(timeout=60)
    # the lock dies with the process: a crashed run does not block the folder
    wait_for(out / 'ShakespeareOptimizer.npz')
    assert train('--out', out, '--resume', '--max-steps', '0', '--quiet') == 0


@pytest.mark.parametrize('replaced', [False, True])
def test_a_folder_moved_while_training_is_not_made_again_and_the_run_resumes_where_it_went(
    tmp_path, corpus, monkeypatch, capsys, replaced
):
    out, moved, real = tmp_path / 'run', tmp_path / 'moved', _training.train_window

    def train_window(run, chunked, threads):
        if run.pos.step == 40:  # in epoch 2, after epoch 1's checkpoint
            os.rename(out, moved)
            if replaced:
                out.mkdir()  # e.g. a --resume started there would make it again
        return real(run, chunked, threads)

    monkeypatch.setattr(_training, 'train_window', train_window)
    line = fails(capsys, '--corpus', corpus, '--out', out, '--epochs', '2', *TINY)
    assert 'was moved, removed or replaced while this training ran' in line
    assert not out.exists() or os.listdir(out) == []  # nothing written where the folder was
    monkeypatch.setattr(_training, 'train_window', real)
    # The run goes on where it went.
    assert train('--out', moved, '--resume', '--quiet', '--threads', '1') == 0
    assert_whole(moved)


def test_a_path_too_long_for_best_is_refused_before_any_work(tmp_path, corpus, capsys):
    path_max = os.pathconf(tmp_path, 'PC_PATH_MAX')
    length = path_max - 42  # its own files fit (+39 bytes), best/'s do not (+44)
    parent = tmp_path
    while len(str(parent)) < length - 250:
        parent = parent / ('d' * 200)
    out = parent / ('r' * (length - len(str(parent)) - 1))
    assert len(str(out)) == length
    parent.mkdir(parents=True)
    line = fails(capsys, '--corpus', corpus, '--out', out, '--epochs', '1', *TINY)
    assert 'too long' in line and 'choose a shorter path' in line
    assert not (out / runs.CHECKPOINT).exists()
    assert not out.exists()  # the folder it made is not left behind


def test_a_checkpoint_refused_for_lack_of_permission_is_not_called_a_full_disk(
    tmp_path, corpus, monkeypatch, capsys
):
    written = []

    def append_only(path, write):  # as chattr +a: the first checkpoint, then EPERM
        if os.path.basename(path) == runs.CHECKPOINT and written:
            raise files.ModelFileError(f'cannot write {path}: {os.strerror(errno.EPERM)}', errno.EPERM)
        written.append(path)
        return ATOMIC_WRITE(path, write)

    monkeypatch.setattr(files, 'atomic_write', append_only)
    out = tmp_path / 'run'
    line = fails(capsys, '--corpus', corpus, '--out', out, '--epochs', '2', *TINY)
    assert 'Operation not permitted' in line and 'permission' in line and 'space' not in line, line


def test_a_full_disk_at_any_file_of_any_checkpoint_loses_nothing(tmp_path, corpus, monkeypatch, capsys):
    """The disk fills in the middle of each file the run writes, in turn; after space is freed, the same
    command (--resume once a checkpoint exists) finishes the run exactly as if nothing had happened. (The
    periodic checkpoints are the same writes: the stress test has them.)"""
    command = ['--corpus', corpus, '--epochs', '2', *TINY]
    whole = tmp_path / 'whole'
    calls = written_files(monkeypatch, *command, '--out', whole)
    names = [name for name, _ in calls]
    assert names[:7] == [
        runs.CHECKPOINT,
        runs.WEIGHTS,
        runs.LOOKUP,
        runs.LOG,
        'best/' + runs.WEIGHTS,
        'best/' + runs.LOOKUP,
        'best/' + runs.CHECKPOINT,
    ]
    offsets = np.cumsum([0] + [size for _, size in calls])
    for k in range(len(calls)):
        out = tmp_path / f'full{k}'
        monkeypatch.setattr(files, 'atomic_write', FullDisk(int(offsets[k] + calls[k][1] // 2)))
        line = fails(capsys, *command, '--out', out)
        assert 'No space left on device' in line
        monkeypatch.setattr(files, 'atomic_write', ATOMIC_WRITE)  # space freed
        if (out / runs.CHECKPOINT).exists():  # the disk filled after the first commit: continue it
            assert 'continue with --resume' in line
            assert 'already holds a run' in fails(capsys, *command, '--out', out)
            assert train(*command, '--out', out, '--resume') == 0
        else:  # a first checkpoint never completed: the folder made for it is gone
            assert 'run the same command again' in line and 'previous checkpoint' not in line
            assert not out.exists()
            assert train(*command, '--out', out) == 0
        assert_same_run(out, whole)
        assert_whole(out)
        for name in (runs.WEIGHTS, runs.CHECKPOINT):
            npz.load(out / 'best' / name, 'best')  # best/ whole, and of the best epoch (assert_whole)


def test_a_resume_completes_what_a_stop_left_half_done(tmp_path, corpus, monkeypatch, capsys):
    """Killed between the checkpoint of the best epoch and its other files: the log row, the weights and best/
    are written by the resume, before it trains."""
    out = tmp_path / 'run'
    assert train('--corpus', corpus, '--out', out, '--epochs', '1', *TINY) == 0
    done = {p: p.read_bytes() for p in out.rglob('*') if p.is_file() and p.name != run_folder.LOCK}
    _, meta = npz.load(out / runs.CHECKPOINT, 'checkpoint', only_meta=True)
    assert meta['position']['best_step'] == meta['position']['step'] == 33 and len(meta['log']) == 1
    (out / runs.LOG).write_text(runs.log_text([]))  # as a kill right after the commit leaves them
    (out / runs.WEIGHTS).unlink()
    (out / runs.LOOKUP).unlink()
    for name in (runs.CHECKPOINT, runs.WEIGHTS):
        (out / 'best' / name).unlink()
    assert train('--out', out, '--resume', '--max-steps', '33', '--quiet') == 0
    for path, raw in done.items():  # the same files again (.npz: the same arrays)
        if path.suffix == '.npz' and (path.name != runs.CHECKPOINT or path.parent.name == 'best'):
            a, b = np.load(path), np.load(io.BytesIO(raw))
            assert sorted(a.files) == sorted(b.files), path
            assert all(
                np.array_equal(a[k], b[k]) for k in a.files if path.parent.name == 'best' or k != 'meta'
            )
        elif path.name == runs.LOG:  # the epoch's row, then the row of this stop
            assert path.read_text().startswith(raw.decode())
        elif path.name == runs.LOOKUP:
            assert path.read_bytes() == raw
    assert runs.log_rows(out / runs.LOG)[0] == meta['log'][0]
    assert_whole(out)


@pytest.mark.parametrize(
    'half_done', [False, True], ids=['at-its-next-checkpoint', 'while-it-completes-best']
)
def test_a_full_disk_in_a_resumed_run_is_one_line_keeps_the_checkpoint_and_the_next_resume_works(
    tmp_path, corpus, monkeypatch, capsys, half_done
):
    """The disk is full when a resumed run writes: at its next checkpoint (the folder whole), or while it
    completes what a kill left half done (best/ without its files). One line, the last checkpoint and its
    files as they were, no temporary file; once space is freed the same resume finishes the run."""
    out = tmp_path / 'run'
    assert train('--corpus', corpus, '--out', out, '--epochs', '1', *TINY) == 0
    if half_done:
        for name in (runs.CHECKPOINT, runs.WEIGHTS):  # killed while best/ was written
            (out / 'best' / name).unlink()
    kept = (runs.CHECKPOINT, runs.WEIGHTS, runs.LOOKUP)
    before = {name: (out / name).read_bytes() for name in kept}
    monkeypatch.setattr(files, 'atomic_write', FullDisk(100))
    line = fails(capsys, '--out', out, '--resume', '--epochs', '2')
    assert 'No space left on device' in line
    assert ('is whole: free some space and resume again' if half_done else 'previous checkpoint') in line, (
        line
    )
    assert {name: (out / name).read_bytes() for name in kept} == before
    assert not list(out.rglob('*.tmp'))
    monkeypatch.setattr(files, 'atomic_write', ATOMIC_WRITE)  # space freed
    assert train('--out', out, '--resume', '--epochs', '2') == 0
    assert_whole(out)
    assert [r[0] for r in runs.log_rows(out / runs.LOG)] == ['1', '2']


def test_a_folder_moved_before_its_first_checkpoint_says_to_start_again(
    tmp_path, corpus, monkeypatch, capsys
):
    out, real = tmp_path / 'run', _training.train_window

    def train_window(run, chunked, trainer=None):
        if run.pos.step == 5:  # in epoch 1: nothing saved yet
            os.rename(out, tmp_path / 'moved')
        return real(run, chunked, trainer)

    monkeypatch.setattr(_training, 'train_window', train_window)
    line = fails(capsys, '--corpus', corpus, '--out', out, '--epochs', '1', *TINY)
    assert 'no checkpoint had been saved yet: run the same command again' in line and '--resume' not in line
