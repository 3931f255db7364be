"""The shipped files (saves/): the model, its lookup table and sample agree with each other and with the
corpus, and the model scores on the validation split what its file says."""

import os

import numpy as np
import pytest

import data
import lstm
from util.weights import load_params

from background import finished_script
from helpers import SAVES


CORPUS = os.path.join(SAVES, 'shakespeare.txt')


def test_shipped_files_are_consistent():
    chars = data.load_lookup(os.path.join(SAVES, 'ShakespeareLookup.json'))
    params, meta = load_params(os.path.join(SAVES, 'ShakespeareNet.npz'), V=len(chars))
    assert lstm.sizes(params) == (65, 512, 2)
    assert params['lstm1.W'].dtype == np.float32
    with np.load(os.path.join(SAVES, 'ShakespeareNet.npz'), allow_pickle=False) as z:
        assert all(z[k].dtype == np.float32 for k in z.files if k != 'meta')
    assert meta['epoch'] >= 1
    text = open(os.path.join(SAVES, 'sample.txt'), encoding='utf-8').read()
    data.encode(text, chars)  # every character of the sample is known


def test_shipped_lookup_is_the_corpus_lookup():
    _, chars = data.read_corpus(CORPUS)
    assert chars == data.load_lookup(os.path.join(SAVES, 'ShakespeareLookup.json'))


SCORE = ('_evaluate.py', '--corpus', CORPUS)  # the README's command: started with the session (conftest.py)


@pytest.mark.slow
def test_shipped_model_validation_loss_is_what_its_file_says():
    """The README's command, on the real validation split: the figure recorded at training is reproduced."""
    r = finished_script(*SCORE)
    assert r.returncode == 0, r.stderr
    assert 'the validation split' in r.stdout and '111,539 characters predicted' in r.stdout
    nats = float(r.stdout.split('loss ')[1].split()[0])
    _, meta = load_params(os.path.join(SAVES, 'ShakespeareNet.npz'))
    assert nats == pytest.approx(meta['val_loss'], abs=2e-4)
