"""The n-gram baseline: proper distributions, the unigram entropy, and the streamed scoring."""

import numpy as np
import pytest

from extras import ngram
from helpers import tiny_corpus
import data


def contexts(train, test, n):
    """Every context number, per order, at every position of test (as fit_score numbers them)."""
    ngram.NGram(n, 1)
    seq = np.concatenate([train, test]).astype(np.int64)
    start = np.where(np.arange(len(seq)) < len(train), 0, len(train))
    cid = np.zeros(len(seq), dtype=np.int64)
    out = [cid.copy()]
    for k in range(1, n):
        raw = ngram._extend(cid, seq, k, start)
        cid = np.full(len(seq), -1, dtype=np.int64)
        ok = raw >= 0
        _, cid[ok] = np.unique(raw[ok], return_inverse=True)
        out.append(cid.copy())
    return [o[len(train) :] for o in out]


@pytest.mark.parametrize('n', [1, 2, 3, 5])
def test_every_context_gives_a_distribution_and_scoring_agrees(n):
    text = tiny_corpus(3000)
    chars = data.build_lookup(text + 'xyz')  # three characters never seen: smoothing must cover them
    ids = data.encode(text, chars).astype(np.int64)
    train, test = ids[:2500], ids[2500:]
    model = ngram.NGram(n, len(chars))
    losses = model.fit_score(train, test)
    assert losses.shape == (len(test) - 1,)
    ctx = contexts(train, test, n)
    for t in range(1, len(test)):
        p = ngram.distribution(model, [c[t] for c in ctx])
        assert p.sum() == pytest.approx(1.0, abs=1e-12) and (p > 0).all()
        assert -np.log(p[test[t]]) == pytest.approx(losses[t - 1], rel=1e-12)
    # and every context the training text has, at every order
    for k, (pair, pair_count, C, N1) in enumerate(model.tables):
        for h in np.flatnonzero(C)[:50]:
            orders = [-1] * n
            orders[k] = h
            assert ngram.distribution(model, orders).sum() == pytest.approx(1.0, abs=1e-12)


def test_unigram_scores_the_unigram_entropy():
    rng = np.random.default_rng(0)
    p = np.array([0.5, 0.25, 0.125, 0.0625, 0.0625])
    train = rng.choice(5, size=200000, p=p)
    test = rng.choice(5, size=200000, p=p)
    loss = ngram.NGram(1, 5).fit_score(train, test).mean()
    entropy = -(p * np.log(p)).sum()
    assert loss == pytest.approx(entropy, abs=3e-3)
    # and more context helps exactly where the text has it: a deterministic cycle is learned by a bigram
    cycle = np.tile(np.arange(5), 2000)
    assert ngram.NGram(2, 5).fit_score(cycle, cycle).mean() < 0.01
    assert ngram.NGram(1, 5).fit_score(cycle, cycle).mean() == pytest.approx(np.log(5), abs=1e-3)
