"""Training runs: what a run writes and prints, the settings it refuses, its learning-rate schedule and best
epoch, the corpus it names, and a resumed run that continues exactly as if it had never stopped."""

import os

import numpy as np
import pytest

import _training
import data
import lstm
from optimizer import RMSprop
from util import checkpoint, cli, position, runs, settings
from util.weights import load_params

from helpers import (
    TINY,
    TINY_LOUD,
    assert_one_line_error,
    fails,
    load,
    run_here,
    tiny_corpus,
    train,
)

# Every option of the training on, over TINY: clipping, a decaying learning rate, the moving average, weight
# decay and weight drop.
EVERY_OPTION = [
    '--clip',
    '1',
    '--lr',
    '0.01',
    '--lr-decay',
    '0.5',
    '--ema',
    '0.9',
    '--weight-decay',
    '0.01',
    '--weight-drop',
    '0.3',
]


def run(corpus, out, *extra, measured=False):
    assert train('--corpus', corpus, '--out', out, *TINY, *EVERY_OPTION, *extra, measured=measured) == 0


@pytest.mark.parametrize('variational', ['false', 'true'])
def test_resumed_run_equals_uninterrupted_run(tmp_path, variational):
    corpus = tmp_path / 'corpus.txt'  # 112 windows per epoch: 150 steps cross an epoch boundary,
    corpus.write_text(tiny_corpus(5000), encoding='utf-8')  # and the halves split inside epoch 1
    # the block widths measured, as in a user's run: the resumed half computes with the widths of the first
    run(
        corpus,
        tmp_path / 'whole',
        '--epochs',
        '2',
        '--max-steps',
        '150',
        '--variational',
        variational,
        measured=True,
    )
    run(
        corpus,
        tmp_path / 'split',
        '--epochs',
        '2',
        '--max-steps',
        '75',
        '--variational',
        variational,
        measured=True,
    )
    run(corpus, tmp_path / 'split', '--epochs', '2', '--max-steps', '150', '--resume', measured=True)
    p1, o1, s1, m1, e1 = load(tmp_path / 'whole')
    p2, o2, s2, m2, e2 = load(tmp_path / 'split')
    assert m1['position']['step'] == m2['position']['step'] == 150
    assert m1['position']['epoch'] == 1
    for k in p1:
        assert p1[k].dtype == np.float64
        np.testing.assert_array_equal(p1[k], p2[k])
        np.testing.assert_array_equal(o1.cache[k], o2.cache[k])
        np.testing.assert_array_equal(e1[k], e2[k])
        assert not np.array_equal(e1[k], p1[k])  # the average is not the weights
    for (h1, c1), (h2, c2) in zip(s1, s2):
        np.testing.assert_array_equal(h1, h2)
        np.testing.assert_array_equal(c1, c2)
    assert m1['rng'] == m2['rng']


def test_training_writes_the_run_folder(tmp_path, corpus, capsys):
    out = tmp_path / 'run'
    run(corpus, out, '--epochs', '1', '--sample-length', '50')
    assert capsys.readouterr().out == ''  # --quiet prints nothing, not even the epoch's sample
    for name in (
        'ShakespeareNet.npz',
        'ShakespeareOptimizer.npz',
        'ShakespeareLookup.json',
        'training_log.csv',
        'best/ShakespeareNet.npz',
        'best/ShakespeareOptimizer.npz',
        'best/ShakespeareLookup.json',
    ):
        assert (out / name).is_file(), name
    log = (out / 'training_log.csv').read_text().splitlines()
    assert log[0].startswith('epoch,step,train_loss,val_loss')
    assert log[1].split(',')[0] == '1'
    params, meta = load_params(out / 'ShakespeareNet.npz', dtype=np.float64)
    assert meta['val_loss'] == pytest.approx(float(log[1].split(',')[3]), abs=1e-4)
    _, _, _, _, ema = load(out)
    for k in params:  # the weights file holds the average
        np.testing.assert_array_equal(params[k], ema[k])


def test_a_resume_with_no_step_left_logs_no_second_row(tmp_path, corpus):
    out = tmp_path / 'run'
    run(corpus, out, '--max-steps', '5')
    run(corpus, out, '--max-steps', '5', '--resume')  # nothing left to do: no row
    rows = [line.split(',') for line in (out / 'training_log.csv').read_text().splitlines()[1:]]
    assert [r[1] for r in rows] == ['5'] and '--max-steps 5 reached' in rows[0][7]
    assert float(rows[0][2]) > 0


def test_val_chars_limits_the_validation_text(tmp_path, corpus):
    run(corpus, tmp_path / 'run', '--epochs', '1', '--val-chars', '50')
    log = (tmp_path / 'run' / 'training_log.csv').read_text().splitlines()
    params, meta = load_params(tmp_path / 'run' / 'ShakespeareNet.npz', dtype=np.float64)
    ids, _ = data.read_corpus(corpus)
    val = data.split(ids, 0.1)[1][:50]
    assert meta['val_loss'] == pytest.approx(lstm.evaluate(params, val), rel=1e-12)
    assert float(log[1].split(',')[3]) == pytest.approx(meta['val_loss'], abs=1e-4)


def test_learning_rate_schedule():
    s = dict(lr=0.002, lr_decay=0.9, decay_after=3)
    assert [_training.lr_at(s, e) for e in range(6)] == pytest.approx(
        [0.002, 0.002, 0.002, 0.002, 0.0018, 0.00162], rel=1e-12
    )
    assert _training.lr_at(dict(lr=0.001, lr_decay=1.0, decay_after=0), 50) == 0.001


def test_best_is_strictly_lower():
    assert position.is_best(2.0, None)
    assert position.is_best(1.9, 2.0)
    assert not position.is_best(2.0, 2.0)
    assert not position.is_best(2.1, 2.0)


def test_best_folder_is_written_only_when_validation_improves(tmp_path, corpus, monkeypatch):
    losses = iter([2.0, 2.5, 1.5, 1.7])  # epochs 1..4: best, worse, best, worse
    monkeypatch.setattr(lstm, 'evaluate', lambda params, ids, **progress: next(losses))
    out = tmp_path / 'run'
    run(corpus, out, '--epochs', '4')
    log = [line.split(',') for line in (out / 'training_log.csv').read_text().splitlines()[1:]]
    assert [row[-1] for row in log] == ['best', 'epoch', 'best', 'epoch']
    _, _, _, meta, _ = checkpoint.load(out / 'best' / runs.CHECKPOINT, RMSprop)
    assert meta['position']['epoch'] == 3 and meta['position']['val_loss'] == 1.5
    _, best_meta = load_params(out / 'best' / runs.WEIGHTS)
    assert best_meta['val_loss'] == 1.5
    _, _, _, last, _ = checkpoint.load(out / runs.CHECKPOINT, RMSprop)
    assert last['position']['epoch'] == 4 and last['position']['best_val'] == 1.5


def test_default_threads(monkeypatch):
    monkeypatch.delenv('OPENBLAS_NUM_THREADS', raising=False)
    monkeypatch.setattr(_training.os, 'cpu_count', lambda: 8)
    assert _training.default_threads() == 2  # two at most, whatever the number of cores
    monkeypatch.setattr(_training.os, 'cpu_count', lambda: 1)
    assert _training.default_threads() == 1
    monkeypatch.setattr(_training.os, 'cpu_count', lambda: None)
    assert _training.default_threads() == 1
    monkeypatch.setattr(_training.os, 'cpu_count', lambda: 8)
    monkeypatch.setenv('OPENBLAS_NUM_THREADS', '1')  # training beside other work: one core
    assert _training.default_threads() == 1


def test_the_corpus_a_checkpoint_names_is_found_again(tmp_path, monkeypatch):
    """stored_corpus names a corpus so that Run.corpus_file finds the same file from anywhere: None for the
    shipped tiny Shakespeare, a path relative to the repo inside it, an absolute path outside it."""
    here = lambda stored, chars=None: runs.Run({'corpus': stored}, corpus_chars=chars).corpus_file()
    shipped = data.TINY_SHAKESPEARE_PATH
    assert settings.stored_corpus(None) is None and here(None) == shipped
    assert settings.stored_corpus(shipped) is None
    readme = os.path.join(cli.ROOT, 'README.md')  # a file inside the repo: relative, found from anywhere
    assert settings.stored_corpus(readme) == 'README.md'
    outside = tmp_path / 'my corpus.txt'
    outside.write_text('abc', encoding='utf-8')
    monkeypatch.chdir(tmp_path)  # a relative path is read where it was given
    stored = settings.stored_corpus('my corpus.txt')
    assert stored == str(outside)
    monkeypatch.chdir(cli.ROOT)
    for path in (readme, str(outside)):
        assert os.path.samefile(here(settings.stored_corpus(path)), path)
    # a checkpoint written elsewhere that names its own copy of tiny Shakespeare resumes on the shipped one;
    # any other missing file stays named, for load_data to report
    assert here('/elsewhere/shakespeare.txt', data.TINY_SHAKESPEARE_CHARS) == shipped
    assert here('/elsewhere/shakespeare.txt', 1000) == '/elsewhere/shakespeare.txt'
    assert here('/elsewhere/poems.txt', data.TINY_SHAKESPEARE_CHARS) == '/elsewhere/poems.txt'


def test_a_run_on_a_corpus_elsewhere_resumes_from_another_folder(tmp_path, corpus, monkeypatch):
    run(corpus, tmp_path / 'run', '--max-steps', '3')
    _, _, _, meta, _ = load(tmp_path / 'run')
    assert meta['settings']['corpus'] == str(corpus)  # absolute: the corpus is outside the repo
    (tmp_path / 'elsewhere').mkdir()
    monkeypatch.chdir(tmp_path / 'elsewhere')
    assert _training.main(['--out', str(tmp_path / 'run'), '--resume', '--max-steps', '5', '--quiet']) == 0
    assert load(tmp_path / 'run')[3]['position']['step'] == 5


def test_training_saves_the_alphabet_with_the_weights(tmp_path):
    text = tiny_corpus(3000)
    (tmp_path / 'c.txt').write_text(text, encoding='utf-8')
    r = run_here(
        '_training.py', '--corpus', tmp_path / 'c.txt', '--out', tmp_path / 'run', *TINY, '--max-steps', 1
    )
    assert r.returncode == 0, r.stderr
    _, meta = load_params(tmp_path / 'run' / 'ShakespeareNet.npz')
    assert meta['alphabet'] == data.build_lookup(text)


def test_training_refuses_bad_options(tmp_path, made):
    for args, words in (
        (['--lr', '-1'], '--lr'),
        (['--dropout', '1'], '--dropout'),
        (['--window', '0'], '--window'),
        (['--dtype', 'float16'], '--dtype'),
    ):
        r = run_here('_training.py', '--corpus', made / 'corpus.txt', '--out', tmp_path / 'run', *args)
        assert_one_line_error(r, words)
    r = run_here('_training.py', '--out', tmp_path / 'nothing', '--resume')
    assert_one_line_error(r, 'cannot resume')
    r = run_here('_training.py', '--corpus', made / 'corpus.txt', '--out', made / 'run', *TINY)
    assert_one_line_error(r, 'already holds a run')
    (tmp_path / 'other.txt').write_text(tiny_corpus(4000), encoding='utf-8')
    r = run_here('_training.py', '--corpus', tmp_path / 'other.txt', '--out', made / 'run', '--resume')
    assert_one_line_error(r, 'same --corpus')
    r = run_here('_training.py', '--out', made / 'run', '--resume', '--hidden', '16')
    assert_one_line_error(r, '--hidden 16', 'cannot change')


def test_a_non_finite_loss_stops_training_and_keeps_the_last_checkpoint(made, tmp_path):
    out = tmp_path / 'run'  # float32: --lr 1e38 overflows it
    assert (
        train('--corpus', made / 'corpus.txt', '--out', out, '--epochs', '1', *TINY, '--dtype', 'float32')
        == 0
    )
    before = (out / 'ShakespeareOptimizer.npz').read_bytes()
    r = run_here('_training.py', '--out', out, '--resume', '--epochs', '2', '--lr', '1e38', '--quiet')
    assert_one_line_error(r, 'the loss became non-finite', 'last good checkpoint')
    assert (out / 'ShakespeareOptimizer.npz').read_bytes() == before


@pytest.mark.parametrize(
    'option, value, words',
    [
        ('--eps', '5e-324', '--eps 5e-324 is 0 in float32'),
        ('--lr', '1e-50', '--lr 1e-50 is 0 in float32'),
        ('--lr', '1e39', 'is inf in float32'),
        ('--clip', '1e-46', '--clip'),
        ('--weight-decay', '1e-45', 'times --lr'),
        ('--rho', '0.999999999', 'rounds to 1'),
        ('--ema', '0.999999999', 'rounds to 1'),
        ('--lr-decay', '1e-30', 'decays to 0'),
        ('--epochs', str(2**64), 'more than 2**53'),
    ],
)
def test_a_setting_that_is_0_or_infinite_in_float32_is_refused_before_any_work(
    tmp_path, corpus, capsys, option, value, words
):
    out = tmp_path / 'run'
    args = ['--epochs', '3'] if option == '--lr-decay' else []
    line = fails(capsys, '--corpus', corpus, '--out', out, option, value, *args, *TINY, '--dtype', 'float32')
    assert words in line, line
    assert not out.exists()


def test_the_same_settings_in_float64_and_on_resume(tmp_path, corpus, capsys):
    assert (
        train('--corpus', corpus, '--out', tmp_path / 'f64', '--max-steps', '2', '--eps', '1e-300', *TINY)
        == 0
    )
    out = tmp_path / 'run'
    assert train('--corpus', corpus, '--out', out, '--max-steps', '2', *TINY, '--dtype', 'float32') == 0
    before = (out / runs.CHECKPOINT).read_bytes()
    line = fails(capsys, '--out', out, '--resume', '--eps', '1e-46')
    assert 'is 0 in float32' in line and "the saved run's settings" in line and '--dtype' not in line
    assert (out / runs.CHECKPOINT).read_bytes() == before


def test_a_loss_not_finite_before_any_checkpoint_says_there_is_none(tmp_path, corpus, monkeypatch, capsys):
    real = lstm.loss_and_grads
    monkeypatch.setattr(lstm, 'loss_and_grads', lambda *a, **k: (float('nan'),) + real(*a, **k)[1:])
    out = tmp_path / 'run'
    line = fails(capsys, '--corpus', corpus, '--out', out / 'deeper', '--epochs', '1', *TINY)
    assert 'no checkpoint was saved yet; start the run again with a lower --lr' in line
    assert not out.exists()  # the folders it made for nothing go with it
    out.mkdir()
    (out / 'notes.txt').write_text('mine')
    fails(capsys, '--corpus', corpus, '--out', out, '--epochs', '1', *TINY)
    assert sorted(p.name for p in out.iterdir()) == ['notes.txt']  # a folder that was there, as it was
    monkeypatch.setattr(lstm, 'loss_and_grads', real)
    assert train('--corpus', corpus, '--out', out, '--max-steps', '1', *TINY) == 0
    monkeypatch.setattr(lstm, 'loss_and_grads', lambda *a, **k: (float('nan'),) + real(*a, **k)[1:])
    line = fails(capsys, '--out', out, '--resume', '--quiet')
    assert 'the last good checkpoint is kept; resume it with a lower --lr' in line


def test_a_corpus_of_one_character_prints_no_negative_loss(tmp_path, capsys):
    (tmp_path / 'a.txt').write_text('a' * 600)
    args = list(TINY_LOUD)
    assert train('--corpus', tmp_path / 'a.txt', '--out', tmp_path / 'run', '--epochs', '1', *args) == 0
    out = capsys.readouterr().out
    assert 'validation loss 0.0000' in out and '-0.0000' not in out
    assert '-0.0000' not in (tmp_path / 'run' / runs.LOG).read_text()


def test_frequent_checkpoints_keep_the_training_speed(tmp_path, corpus):
    out = tmp_path / 'run'
    assert (
        train('--corpus', corpus, '--out', out, '--epochs', '2', '--checkpoint-minutes', '1e-9', *TINY) == 0
    )
    rows = runs.log_rows(out / runs.LOG)
    assert len(rows) == 2 and all(float(r[6]) > 0 for r in rows)


def test_resume_says_where_it_continues_and_what_changed(tmp_path, corpus, capsys):
    out = tmp_path / 'run'
    assert train('--corpus', corpus, '--out', out, '--max-steps', '40', *TINY) == 0
    assert (
        train(
            '--out',
            out,
            '--resume',
            '--max-steps',
            '41',
            '--lr',
            '0.0005',
            '--epochs',
            '4',
            '--sample-length',
            '0',
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    line = next(x for x in lines if x.startswith('resuming'))
    assert 'epoch 1.2121 (epoch 1, window 7/33), step 40' in line
    assert 'lr 0.001 -> 0.0005' in line and 'epochs 10 -> 4' in line and 'dropout' not in line
    assert train('--out', out, '--resume', '--max-steps', '41', '--sample-length', '0') == 0
    assert 'no setting changed' in capsys.readouterr().out


def test_a_stop_logs_the_rate_of_its_epoch_and_a_resume_with_nothing_to_do_logs_nothing(tmp_path, corpus):
    out = tmp_path / 'run'
    # Two epochs of 33 steps, and 4 of the third.
    args = ['--corpus', corpus, '--out', out, '--max-steps', '70', '--lr', '0.01', '--lr-decay', '0.5', *TINY]
    assert train(*args) == 0
    before = (out / runs.CHECKPOINT).read_bytes()
    for limit in ('70', '12'):  # where it stopped, or before
        r = run_here('_training.py', '--out', out, '--resume', '--max-steps', limit, '--lr', '0.02')
        assert r.returncode == 0, r.stderr
        assert f'at step 70 already (--max-steps {limit}): nothing to do' in r.stdout, r.stdout
        assert 'the checkpoint keeps its settings (lr 0.01 -> 0.02 not applied)' in r.stdout, r.stdout
    rows = runs.log_rows(out / runs.LOG)
    assert [r[4] for r in rows] == ['0.01', '0.005', '0.0025'], rows  # the third: the rate of epoch 3
    assert (out / runs.CHECKPOINT).read_bytes() == before


def test_max_steps_zero_saves_the_untrained_model(tmp_path):
    (tmp_path / 'c.txt').write_text(tiny_corpus(3000), encoding='utf-8')
    r = run_here(
        '_training.py',
        '--corpus',
        tmp_path / 'c.txt',
        '--out',
        tmp_path / 'run',
        '--hidden',
        8,
        '--max-steps',
        0,
    )
    assert r.returncode == 0, r.stderr
    params, meta = load_params(tmp_path / 'run' / 'ShakespeareNet.npz')
    init = lstm.init_params(len(data.build_lookup(tiny_corpus(3000))), 8, 2, rng=np.random.default_rng(0))
    assert meta['step'] == 0
    for k in params:
        np.testing.assert_array_equal(params[k], init[k])
