"""Beam search: the likeliest continuation of a text under the model, found by keeping the N likeliest
continuations at every step instead of drawing one character at a time.

Temperature sampling picks each character well and the paragraph badly: it can get stuck where one unlikely
character would lead back to likely text (karpathy/char-rnn#138, the most requested sampling feature of
char-rnn). A beam of width N scores every continuation by the sum of the log-probabilities of its characters
under the model's own distribution (no temperature), and at each step keeps the N best of the N x V ways to
extend the N it had. Width 1 is greedy decoding, the same as sampling at temperature 0; a width that holds
every prefix is an exhaustive search. It costs one step of the N streams, as a batch, per character.
"""

import numpy as np

import layers
import lstm


def search(params, prime, length, width, stop=None, progress=None, device=None, prime_progress=None):
    """The likeliest continuation of the indices `prime` that the beam finds.

    Inputs:
    - prime: the priming text's indices, read first (not part of the continuation)
    - length: the most characters to add; width: the number of continuations kept, N
    - stop: indices; a continuation that ends with them is finished: it keeps its place in the beam as it is,
      ranked by its score among the others, and grows no more
    - progress: None, or a callable given the number of steps done, now and then; prime_progress: the same
      for the characters of the priming text read (lstm.primed)
    The search ends after `length` characters, or once every continuation kept is finished, or once the best
    is finished and scores above every unfinished one (whose scores only fall as they grow: the answer is
    settled).
    Ties are broken the same way every time: by the logit of the last character (so that width 1 takes the
    character that np.argmax takes), then by rank in the beam and index in the alphabet.

    Returns (ids, the likeliest continuation (n,), its total log-probability in nats).
    """
    prime = np.asarray(prime, dtype=np.intp)
    if prime.size == 0:
        raise ValueError('the priming text is empty: give at least one character')
    V = params['dense.W'].shape[1]
    N = min(width, V ** min(length, 64))  # no more rows than there are continuations to hold
    S = 0 if stop is None else len(stop)
    model, logits = lstm.primed(params, prime, N, device, progress=prime_progress)  # (N, V): N rows alike
    scores = np.full(N, -np.inf)
    scores[0] = 0.0  # so only the first row grows at the first step
    done = np.zeros(N, dtype=bool)
    tails = np.full((N, S), -1, dtype=np.intp)  # the last S characters of each continuation
    parents, chars = [], []  # per step: the row each row came from, its new character
    for step in range(1, length + 1):
        # (N, V): the score of every one-character extension.
        total = scores[:, None] + layers.log_softmax(logits)
        tie = np.asarray(logits, dtype=np.float64).copy()
        total[done], tie[done] = -np.inf, 0.0  # a finished row is kept as it is: one candidate, (row, 0)
        total[done, 0] = scores[done]
        best = np.lexsort((-tie.ravel(), -total.ravel()))[:N]  # stable: then by position
        row, ix = best // V, best % V
        kept = done[row]
        ix[kept] = -1  # a finished row adds no character
        scores, done = total.ravel()[best], kept.copy()
        if S:
            tails = np.where(kept[:, None], tails[row], np.concatenate([tails[row, 1:], ix[:, None]], axis=1))
            done |= np.all(tails == np.asarray(stop), axis=1)
        parents.append(row)
        chars.append(ix)
        if progress is not None:
            progress(step)
        if np.all(done | np.isneginf(scores)) or (done[0] and np.all(scores[~done] < scores[0])):
            break  # every row finished, or the best: a character added only lowers a score
        model.state = [(h[row], c[row]) for h, c in model.state]  # each row goes on from its parent
        logits = model(np.maximum(ix, 0)[None, :])[0]
    out, k = [], 0  # row 0 holds the best: follow its parents back
    for row, ix in zip(reversed(parents), reversed(chars)):
        if ix[k] >= 0:
            out.append(ix[k])
        k = row[k]
    return np.array(out[::-1], dtype=np.intp), float(scores[0])
