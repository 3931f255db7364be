"""The training script: a resumed run continues exactly as if it had never stopped."""
import numpy as np
import pytest

import _training
import data
import lstm
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
    return lstm.load_checkpoint(out / _training.CHECKPOINT, lambda p: RMSprop(p))


def test_resumed_run_equals_uninterrupted_run(tmp_path, corpus):
    # 112 windows per epoch: 150 steps cross an epoch boundary, and the halves split inside epoch 1
    run(corpus, tmp_path / 'whole', '--epochs', '2', '--max-steps', '150')
    run(corpus, tmp_path / 'split', '--epochs', '2', '--max-steps', '75')
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


def test_training_writes_the_run_folder(tmp_path, corpus):
    out = tmp_path / 'run'
    run(corpus, out, '--epochs', '1')
    for name in ('ShakespeareNet.npz', 'ShakespeareOptimizer.npz', 'ShakespeareLookup.json', 'training_log.csv',
                 'best/ShakespeareNet.npz', 'best/ShakespeareOptimizer.npz', 'best/ShakespeareLookup.json'):
        assert (out / name).is_file(), name
    log = (out / 'training_log.csv').read_text().splitlines()
    assert log[0].startswith('epoch,step,train_loss,val_loss')
    assert log[1].split(',')[0] == '1'
    params, meta = lstm.load_params(out / 'ShakespeareNet.npz', dtype=np.float64)
    assert meta['val_loss'] == pytest.approx(float(log[1].split(',')[3]), abs=1e-4)
    _, _, _, _, ema = load(out)
    for k in params:                                    # the weights file holds the average
        np.testing.assert_array_equal(params[k], ema[k])


def test_val_chars_limits_the_validation_text(tmp_path, corpus):
    run(corpus, tmp_path / 'run', '--epochs', '1', '--val-chars', '50')
    log = (tmp_path / 'run' / 'training_log.csv').read_text().splitlines()
    params, meta = lstm.load_params(tmp_path / 'run' / 'ShakespeareNet.npz', dtype=np.float64)
    ids, _ = data.read_corpus(corpus)
    val = data.split(ids, 0.1)[1][:50]
    assert meta['val_loss'] == pytest.approx(lstm.evaluate(params, val), rel=1e-12)
    assert float(log[1].split(',')[3]) == pytest.approx(meta['val_loss'], abs=1e-4)
