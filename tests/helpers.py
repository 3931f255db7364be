"""Small shared pieces of the tests."""
import numpy as np


def numeric_grad(f, x, h=1e-5):
    """Centred differences of the scalar f() with respect to the array x, changed in place and restored."""
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=['multi_index'])
    for _ in it:
        ix = it.multi_index
        old = x[ix]
        x[ix] = old + h
        plus = f()
        x[ix] = old - h
        minus = f()
        x[ix] = old
        grad[ix] = (plus - minus) / (2 * h)
    return grad


def rel_error(a, b):
    """The difference relative to the size of the two arrays (not element by element: a tiny element's
    centred difference carries rounding noise of the order of the loss times 1e-11)."""
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-30))


def tiny_corpus(n=6000, seed=0):
    """A learnable text: a few words repeated in random order, with line breaks."""
    rng = np.random.default_rng(seed)
    words = ['to', 'be', 'or', 'not', 'that', 'is', 'the', 'question', 'KING:', 'ROMEO:']
    out = []
    while sum(len(w) + 1 for w in out) < n:
        out.append(words[rng.integers(len(words))])
    text = ''
    for k, w in enumerate(out):
        text += w + ('\n' if k % 7 == 6 else ' ')
    return text[:n]
