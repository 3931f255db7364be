"""A character n-gram language model with interpolated Witten-Bell smoothing: the classical baseline that the
LSTM is compared with (as in Karpathy, Johnson and Fei-Fei, 2015).

The probability of character c after the context h (the n - 1 characters before it) mixes the counts of h with
the estimate from the context one character shorter, h', down to the uniform distribution over V characters:

    P(c | h) = (C(h c) + N1(h) P(c | h')) / (C(h) + N1(h))        (P(c | h) = P(c | h') where C(h) = 0)

where C(h c) counts c after h in the training text, C(h) = sum of C(h c) over c, and N1(h) is the number of
distinct characters seen after h. Every P(. | h) sums to 1. Counting and scoring are numpy operations over the
whole text, one per order: contexts are numbered by extending the numbers of the shorter ones.
"""

import numpy as np


def _extend(cid, seq, k, start):
    """Context numbers of length k from those of length k - 1: the context seq[t - k:t] is the character
    seq[t - k] followed by the context of length k - 1 at t. Positions whose context would reach before
    `start` (the beginning of their text) get -1."""
    out = np.full(len(seq), -1, dtype=np.int64)
    t = np.arange(len(seq))
    ok = (t - k >= start) & (cid >= 0)
    out[ok] = cid[ok] * (int(seq.max()) + 1) + seq[t[ok] - k]
    return out


class NGram:
    """Counts of an n-gram model of order n (contexts of up to n - 1 characters) over V characters, smoothed
    by interpolated Witten-Bell (the formula above): no free parameter to tune, and every character keeps a
    chance."""

    def __init__(self, n, V):
        self.n, self.V = n, V

    def fit_score(self, train, test, progress=None):
        """Count on train; return -ln P of every character of test after the first, streamed: test[t] is
        predicted from test[:t] only (its first characters have shorter contexts), like the LSTM's score.
        progress, if given, is called with the number of orders done so far (of n)."""
        train, test = np.asarray(train, np.int64), np.asarray(test, np.int64)
        seq = np.concatenate([train, test])
        start = np.where(np.arange(len(seq)) < len(train), 0, len(train))  # each text's first position
        is_train = np.arange(len(seq)) < len(train)
        cid = np.zeros(len(seq), dtype=np.int64)  # the empty context
        p = np.full(len(seq), 1.0 / self.V)  # order -1: uniform
        self.tables = []
        for k in range(self.n):  # contexts of length k
            if k > 0:
                raw = _extend(cid, seq, k, start)
                cid = np.full(len(seq), -1, dtype=np.int64)
                ok = raw >= 0
                _, cid[ok] = np.unique(raw[ok], return_inverse=True)  # renumber 0 .. (distinct contexts - 1)
            table = self._count(cid[is_train & (cid >= 0)], seq[is_train & (cid >= 0)], cid.max() + 1)
            self.tables.append(table)
            p = self._mix(table, cid, seq, p)
            if progress is not None:
                progress(k + 1)
        return -np.log(p[len(train) + 1 :])

    def _count(self, h, c, n_contexts):
        pair, pair_count = np.unique(h * self.V + c, return_counts=True)
        C = np.bincount(h, minlength=n_contexts).astype(np.float64)  # C(h)
        N1 = np.bincount(pair // self.V, minlength=n_contexts).astype(np.float64)  # N1(h)
        return pair, pair_count.astype(np.float64), C, N1

    def _mix(self, table, cid, seq, p_shorter):
        pair, pair_count, C, N1 = table
        ok = cid >= 0
        h, c = cid[ok], seq[ok]
        key = h * self.V + c
        j = np.minimum(np.searchsorted(pair, key), len(pair) - 1)
        Chc = np.where(pair[j] == key, pair_count[j], 0.0)
        seen = C[h] > 0
        p = p_shorter.copy()
        q = p_shorter[ok]
        p[ok] = np.where(seen, (Chc + N1[h] * q) / np.maximum(C[h] + N1[h], 1), q)
        return p


def distribution(model, contexts_by_order):
    """P(. | h) over all V characters, for a context given by its number at each order (-1 where that order's
    context is unknown): the same recursion as the scoring, for every character at once (for tests)."""
    p = np.full(model.V, 1.0 / model.V)
    for (pair, pair_count, C, N1), h in zip(model.tables, contexts_by_order):
        if h < 0 or h >= len(C) or C[h] == 0:
            continue
        keys = h * model.V + np.arange(model.V)
        j = np.minimum(np.searchsorted(pair, keys), len(pair) - 1)
        Chc = np.where(pair[j] == keys, pair_count[j], 0.0)
        p = (Chc + N1[h] * p) / (C[h] + N1[h])
    return p
