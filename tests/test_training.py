"""The training script: a resumed run continues exactly as if it had never stopped."""
import os

import numpy as np
import pytest

import _training
from util import cli
import data
from util import files
import lstm
from util import runs
from helpers import tiny_corpus
from optimizer import RMSprop


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / 'corpus.txt'
    path.write_text(tiny_corpus(5000), encoding='utf-8')
    return str(path)


def run(corpus, out, *extra):
    args = ['--corpus', corpus, '--out', str(out), '--hidden', '8', '--chunks', '4', '--window', '10',
            '--dtype', 'float64', '--dropout', '0.2', '--clip', '1', '--lr', '0.01', '--lr-decay', '0.5',
            '--ema', '0.9', '--weight-decay', '0.01', '--weight-drop', '0.3',
            '--quiet', '--sample-length', '0', *extra]
    assert _training.main(args) == 0


def load(out):
    return files.load_checkpoint(out / _training.CHECKPOINT, lambda p: RMSprop(p))


@pytest.mark.parametrize('variational', ['false', 'true'])
def test_resumed_run_equals_uninterrupted_run(tmp_path, corpus, variational):
    # 112 windows per epoch: 150 steps cross an epoch boundary, and the halves split inside epoch 1
    run(corpus, tmp_path / 'whole', '--epochs', '2', '--max-steps', '150', '--variational', variational)
    run(corpus, tmp_path / 'split', '--epochs', '2', '--max-steps', '75', '--variational', variational)
    run(corpus, tmp_path / 'split', '--epochs', '2', '--max-steps', '150', '--resume')
    p1, o1, s1, m1, e1 = load(tmp_path / 'whole')
    p2, o2, s2, m2, e2 = load(tmp_path / 'split')
    assert m1['position']['step'] == m2['position']['step'] == 150
    assert m1['position']['epoch'] == 1
    for k in p1:
        assert p1[k].dtype == np.float64
        np.testing.assert_array_equal(p1[k], p2[k])
        np.testing.assert_array_equal(o1.cache[k], o2.cache[k])
        np.testing.assert_array_equal(e1[k], e2[k])
        assert not np.array_equal(e1[k], p1[k])         # the average is not the weights
    for (h1, c1), (h2, c2) in zip(s1, s2):
        np.testing.assert_array_equal(h1, h2)
        np.testing.assert_array_equal(c1, c2)
    assert m1['rng'] == m2['rng']


def test_training_writes_the_run_folder(tmp_path, corpus, capsys):
    out = tmp_path / 'run'
    run(corpus, out, '--epochs', '1', '--sample-length', '50')
    assert capsys.readouterr().out == ''                # --quiet prints nothing, not even the epoch's sample
    for name in ('ShakespeareNet.npz', 'ShakespeareOptimizer.npz', 'ShakespeareLookup.json', 'training_log.csv',
                 'best/ShakespeareNet.npz', 'best/ShakespeareOptimizer.npz', 'best/ShakespeareLookup.json'):
        assert (out / name).is_file(), name
    log = (out / 'training_log.csv').read_text().splitlines()
    assert log[0].startswith('epoch,step,train_loss,val_loss')
    assert log[1].split(',')[0] == '1'
    params, meta = files.load_params(out / 'ShakespeareNet.npz', dtype=np.float64)
    assert meta['val_loss'] == pytest.approx(float(log[1].split(',')[3]), abs=1e-4)
    _, _, _, _, ema = load(out)
    for k in params:                                    # the weights file holds the average
        np.testing.assert_array_equal(params[k], ema[k])


def test_a_stop_before_any_step_logs_no_training_loss(tmp_path, corpus):
    out = tmp_path / 'run'
    run(corpus, out, '--max-steps', '5')
    run(corpus, out, '--max-steps', '5', '--resume')   # nothing left to do: a row, but no training loss
    rows = [line.split(',') for line in (out / 'training_log.csv').read_text().splitlines()[1:]]
    assert [r[1] for r in rows] == ['5', '5'] and all('--max-steps 5 reached' in r[7] for r in rows)
    assert float(rows[0][2]) > 0 and rows[1][2] == ''


def test_val_chars_limits_the_validation_text(tmp_path, corpus):
    run(corpus, tmp_path / 'run', '--epochs', '1', '--val-chars', '50')
    log = (tmp_path / 'run' / 'training_log.csv').read_text().splitlines()
    params, meta = files.load_params(tmp_path / 'run' / 'ShakespeareNet.npz', dtype=np.float64)
    ids, _ = data.read_corpus(corpus)
    val = data.split(ids, 0.1)[1][:50]
    assert meta['val_loss'] == pytest.approx(lstm.evaluate(params, val), rel=1e-12)
    assert float(log[1].split(',')[3]) == pytest.approx(meta['val_loss'], abs=1e-4)


def test_learning_rate_schedule():
    s = dict(lr=0.002, lr_decay=0.9, decay_after=3)
    assert [_training.lr_at(s, e) for e in range(6)] == pytest.approx([0.002, 0.002, 0.002, 0.002, 0.0018,
                                                                        0.00162], rel=1e-12)
    assert _training.lr_at(dict(lr=0.001, lr_decay=1.0, decay_after=0), 50) == 0.001


def test_best_is_strictly_lower():
    assert _training.is_best(2.0, None)
    assert _training.is_best(1.9, 2.0)
    assert not _training.is_best(2.0, 2.0)
    assert not _training.is_best(2.1, 2.0)


def test_best_folder_is_written_only_when_validation_improves(tmp_path, corpus, monkeypatch):
    losses = iter([2.0, 2.5, 1.5, 1.7])                 # epochs 1..4: best, worse, best, worse
    monkeypatch.setattr(lstm, 'evaluate', lambda params, ids, **progress: next(losses))
    out = tmp_path / 'run'
    run(corpus, out, '--epochs', '4')
    log = [line.split(',') for line in (out / 'training_log.csv').read_text().splitlines()[1:]]
    assert [row[-1] for row in log] == ['best', 'epoch', 'best', 'epoch']
    _, _, _, meta, _ = files.load_checkpoint(out / 'best' / _training.CHECKPOINT, RMSprop)
    assert meta['position']['epoch'] == 3 and meta['position']['val_loss'] == 1.5
    _, best_meta = files.load_params(out / 'best' / _training.WEIGHTS)
    assert best_meta['val_loss'] == 1.5
    _, _, _, last, _ = files.load_checkpoint(out / _training.CHECKPOINT, RMSprop)
    assert last['position']['epoch'] == 4 and last['position']['best_val'] == 1.5


def test_default_threads(monkeypatch):
    monkeypatch.delenv('OPENBLAS_NUM_THREADS', raising=False)
    monkeypatch.setattr(_training.os, 'cpu_count', lambda: 8)
    assert _training.default_threads() == 2             # one thread per layer of the default model
    monkeypatch.setattr(_training.os, 'cpu_count', lambda: 1)
    assert _training.default_threads() == 1
    monkeypatch.setattr(_training.os, 'cpu_count', lambda: None)
    assert _training.default_threads() == 1
    monkeypatch.setattr(_training.os, 'cpu_count', lambda: 8)
    monkeypatch.setenv('OPENBLAS_NUM_THREADS', '1')    # training beside other work: one core
    assert _training.default_threads() == 1


def test_the_corpus_a_checkpoint_names_is_found_again(tmp_path, monkeypatch):
    """stored_corpus names a corpus so that Run.corpus_file finds the same file from anywhere: None for the shipped
    tiny Shakespeare, a path relative to the repo inside it, an absolute path outside it."""
    here = lambda stored, chars=None: runs.Run({'corpus': stored}, corpus_chars=chars).corpus_file()
    shipped = data.TINY_SHAKESPEARE_PATH
    assert runs.stored_corpus(None) is None and here(None) == shipped
    assert runs.stored_corpus(shipped) is None
    readme = os.path.join(cli.ROOT, 'README.md')        # a file inside the repo: relative, found from anywhere
    assert runs.stored_corpus(readme) == 'README.md'
    outside = tmp_path / 'my corpus.txt'
    outside.write_text('abc', encoding='utf-8')
    monkeypatch.chdir(tmp_path)                         # a relative path is read where it was given
    stored = runs.stored_corpus('my corpus.txt')
    assert stored == str(outside)
    monkeypatch.chdir(cli.ROOT)
    for path in (readme, str(outside)):
        assert os.path.samefile(here(runs.stored_corpus(path)), path)
    # a checkpoint written elsewhere that names its own copy of tiny Shakespeare resumes on the shipped one; any
    # other missing file stays named, for load_data to report
    assert here('/elsewhere/shakespeare.txt', data.TINY_SHAKESPEARE_CHARS) == shipped
    assert here('/elsewhere/shakespeare.txt', 1000) == '/elsewhere/shakespeare.txt'
    assert here('/elsewhere/poems.txt', data.TINY_SHAKESPEARE_CHARS) == '/elsewhere/poems.txt'


def test_a_run_on_a_corpus_elsewhere_resumes_from_another_folder(tmp_path, corpus, monkeypatch):
    run(corpus, tmp_path / 'run', '--max-steps', '3')
    _, _, _, meta, _ = load(tmp_path / 'run')
    assert meta['settings']['corpus'] == corpus         # absolute: the corpus is outside the repo
    (tmp_path / 'elsewhere').mkdir()
    monkeypatch.chdir(tmp_path / 'elsewhere')
    assert _training.main(['--out', str(tmp_path / 'run'), '--resume', '--max-steps', '5', '--quiet']) == 0
    assert load(tmp_path / 'run')[3]['position']['step'] == 5
