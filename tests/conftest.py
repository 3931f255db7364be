"""What pytest loads first: the repository on the import path, ROOT, the `slow` mark, and the fixtures that
several test files share. Plain helpers (no fixtures) are in helpers.py."""
import os
import signal
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))    # the repository's folder
sys.path.insert(0, ROOT)

import data  # noqa: E402  (needs ROOT on the path)
from util import files  # noqa: E402
import lstm  # noqa: E402


# A shell starts a background job with Ctrl-C (SIGINT) ignored, and every process it starts inherits that; the
# tests that press Ctrl-C in a script they start need the ordinary disposition, so give it back to the scripts.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_configure(config):
    config.addinivalue_line('markers', 'slow: a long test (the shipped model\'s score, the stress test of a run '
                            'folder); leave them out with -m "not slow"')


@pytest.fixture(scope='module')
def small_model(tmp_path_factory):
    """A tiny model in the trained format (untrained weights) and its lookup table, for fast script runs:
    (weights path, lookup path, chars)."""
    from helpers import tiny_corpus                     # here: helpers.py imports ROOT from this file
    d = tmp_path_factory.mktemp('model')
    chars = data.build_lookup(tiny_corpus(3000))
    params = lstm.init_params(len(chars), 16, 2, rng=np.random.default_rng(0))
    files.save_params(d / 'w.npz', params)
    data.save_lookup(d / 'l.json', chars)
    return d / 'w.npz', d / 'l.json', chars
