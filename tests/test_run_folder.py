"""The run folder keeps its promises: one writer, only its own temporary files removed, every path it writes
checked before work, SIGHUP and a stop during validation or the sample handled; and what else was seen."""
import os
import signal
import subprocess
import sys
import time

import pytest

from util import cli
import lstm
from util import runs
from helpers import ROOT
from run_folder_helpers import TINY, assert_same_run, assert_whole, fails, load, train
from run_folder_helpers import corpus  # noqa: F401  (a fixture)


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
    (tmp_path / 'run').mkdir()
    (tmp_path / 'run' / 'best').symlink_to(cli.SAVES)   # best/ of a run, a link to the shipped model
    for out in ('saves', './saves', cli.SAVES, cli.SAVES + '/', tmp_path / 'saves_link', 'saves/sub', 'saves/..//saves',
                tmp_path / 'run'):
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
    (out / 'best').mkdir()                              # an empty best/ is nobody's
    (out / 'best' / runs.WEIGHTS).write_bytes(b'my own weights')
    assert 'holds best/ShakespeareNet.npz but no checkpoint' in fails(capsys, '--corpus', corpus, '--out', out, *TINY)
    (out / 'best' / runs.WEIGHTS).rename(out / runs.WEIGHTS)
    assert 'holds ShakespeareNet.npz but no checkpoint' in fails(capsys, '--corpus', corpus, '--out', out, *TINY)
    assert (out / runs.WEIGHTS).read_bytes() == b'my own weights'
    (out / runs.WEIGHTS).unlink()
    assert train('--corpus', corpus, '--out', out, '--max-steps', '1', *TINY) == 0


# --- signals: SIGHUP as SIGTERM; a stop during validation or the sample is at once ------------------------------

def test_sighup_writes_a_checkpoint_like_sigterm(tmp_path, corpus):
    out = tmp_path / 'run'
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, '_training.py'), '--corpus', str(corpus), '--out',
                          str(out), '--epochs', '100000', *TINY], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    try:
        while not (out / runs.LOG).exists():            # the first epoch is done: the loop is running
            assert p.poll() is None, p.stderr.read()
            time.sleep(0.05)
        p.send_signal(signal.SIGHUP)
        assert p.wait(timeout=120) == 128 + signal.SIGHUP     # the status of a program stopped by SIGHUP
    finally:
        p.kill()
    assert 'Traceback' not in p.stderr.read()
    _, _, _, meta, _ = load(out)
    assert meta['saved'] == 'interrupted' and meta['log'][-1][-1] == 'SIGHUP received'


def test_ctrl_c_during_validation_stops_at_the_next_window_and_loses_nothing(tmp_path, corpus, monkeypatch):
    real, windows_read = lstm.evaluate, []

    def evaluate(params, ids, *, window=1000, progress=None, device=None):
        os.kill(os.getpid(), signal.SIGINT)             # Ctrl-C as validation starts
        return real(params, ids, window=10, progress=lambda done: (windows_read.append(done), progress(done)),
                    device=device)
    monkeypatch.setattr(lstm, 'evaluate', evaluate)
    out = tmp_path / 'run'
    assert train('--corpus', corpus, '--out', out, '--epochs', '2', *TINY) == 130     # as a stopped program
    assert len(windows_read) == 1                       # stopped after the first of 15 windows
    _, _, _, meta, _ = load(out)
    assert meta['position']['epoch'] == 0 and meta['position']['window'] == 33    # trained, not yet validated
    assert [row[-1] for row in meta['log']] == ['SIGINT received']
    monkeypatch.setattr(lstm, 'evaluate', real)
    assert train('--out', out, '--resume', '--quiet', '--threads', '1') == 0
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
    assert train('--corpus', corpus, '--out', out, '--epochs', '3', *args) == 130
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


def test_a_stop_before_any_step_logs_the_learning_rate_of_its_epoch(tmp_path, corpus):
    out = tmp_path / 'run'
    assert train('--corpus', corpus, '--out', out, '--max-steps', '70', '--lr', '0.01', '--lr-decay', '0.5',
                 *TINY) == 0                            # two epochs of 33 steps, and 4 of the third
    assert train('--out', out, '--resume', '--max-steps', '70', '--quiet') == 0
    rows = runs.read_log(out / runs.LOG)
    assert [r[4] for r in rows] == ['0.01', '0.005', '0.0025', '0.0025'], rows
