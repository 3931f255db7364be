"""What pytest loads first: the `slow` mark and the fixtures that several test files share. It imports
helpers.py (which puts the repository on the import path); helpers.py never imports this file."""

import json
import signal

import numpy as np
import pytest

from background import start_script, stop_started
from helpers import TINY, tiny_corpus, train
from original_files import original_layers, write_original
import data
import lstm
from util.weights import save_params


# A shell starts a background job with Ctrl-C (SIGINT) ignored, and every process it starts inherits that; the
# tests that press Ctrl-C in a script they start need the ordinary disposition, so give it back to the
# scripts.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_collection_finish(session):
    """The shipped model's score takes about 25 s of one core: where it is among the tests to run, it starts
    now, in its own process, and runs beside the others (its test waits for its result)."""
    if any(item.name == 'test_shipped_model_validation_loss_is_what_its_file_says' for item in session.items):
        from test_shipped_model import SCORE

        start_script(*SCORE)


def pytest_sessionfinish(session):
    stop_started()


def pytest_configure(config):
    config.addinivalue_line(
        'markers',
        'slow: a long test (the shipped model\'s score, the stress test of a run '
        'folder, the sweep of every option\'s mistyped values); leave them out with -m "not slow"',
    )


@pytest.fixture(scope='module')
def small_model(tmp_path_factory):
    """A tiny model in the trained format (untrained weights) and its lookup table, for fast script runs:
    (weights path, lookup path, chars)."""
    d = tmp_path_factory.mktemp('model')
    chars = data.build_lookup(tiny_corpus(3000))
    params = lstm.init_params(len(chars), 16, 2, rng=np.random.default_rng(0))
    save_params(d / 'w.npz', params)
    data.save_lookup(d / 'l.json', chars)
    return d / 'w.npz', d / 'l.json', chars


@pytest.fixture(scope='module')
def model_dir(small_model):
    """The folder of small_model, with text.txt, a text it can read (helpers.model_args names the model)."""
    d = small_model[0].parent
    (d / 'text.txt').write_text(tiny_corpus(3000), encoding='utf-8')
    return d


@pytest.fixture
def corpus(tmp_path):
    """A corpus for the tiny training (TINY): 33 steps per epoch."""
    path = tmp_path / 'corpus.txt'
    path.write_text(tiny_corpus(1500), encoding='utf-8')
    return path


@pytest.fixture(scope='module')
def made(tmp_path_factory):
    """A finished tiny run (one epoch of TINY on tiny_corpus(3000)): corpus.txt and the run folder run/, whose
    weights, lookup table, checkpoint and log are valid files to damage."""
    d = tmp_path_factory.mktemp('made')
    (d / 'corpus.txt').write_text(tiny_corpus(3000), encoding='utf-8')
    assert train('--corpus', d / 'corpus.txt', '--out', d / 'run', '--epochs', '1', *TINY) == 0
    return d


@pytest.fixture(scope='module')
def original_model(tmp_path_factory):
    """A tiny model of the original project (original_files.py), float64, with an unsorted lookup table:
    (weights, lookup, chars, layers)."""
    d = tmp_path_factory.mktemp('original')
    chars = data.build_lookup(tiny_corpus(2000))
    np.random.default_rng(3).shuffle(chars)  # the original's own order: whatever it found first
    assert chars != sorted(chars)
    layers_, _ = original_layers(np.random.default_rng(0), len(chars), 6, 2)
    (d / 'lookup.json').write_text(json.dumps(chars))
    return write_original(d / 'net.json', layers_), d / 'lookup.json', chars, layers_
