"""Models of the original project (see util/original.py) written from its format's description, by the small
writer here, not by the original's code: its layers built gate by gate, its .json value, its forward pass, and
files with one thing wrong or one value at the edge of what a float holds."""

import json

import numpy as np

from util import original

from reference import tiny_model


def original_layers(rng, V, H, n_layers):
    """Weights laid out as the original keeps them, built gate by gate: per LSTM layer w = [[Wix Wih], [Wfx
    Wfh], [Wox Woh], [Wgx Wgh]] (4H, D + H), the input's columns first, and b (4H, 1); then the output layer's
    w (V, H) and b (V, 1). Returns ([(w, b), ...], the gate blocks [(Wx, Wh)] of the first layer)."""
    out, D = [], V
    for n in range(n_layers):
        gates = [(rng.standard_normal((H, D)) * 0.6, rng.standard_normal((H, H)) * 0.6) for _ in 'ifog']
        out.append((np.block([[Wx, Wh] for Wx, Wh in gates]), rng.standard_normal((4 * H, 1)) * 0.3))
        if n == 0:
            first = gates
        D = H
    out.append((rng.standard_normal((V, H)), rng.standard_normal((V, 1))))
    return out, first


def as_json(layers_):
    """The original's file: [[w, b], ..., [[w, b]]], the output layer wrapped once more, float64 numbers."""
    *lstms, (w, b) = layers_
    return [[w_.tolist(), b_.tolist()] for w_, b_ in lstms] + [[[w.tolist(), b.tolist()]]]


def write_original(path, layers_):
    path.write_text(json.dumps(as_json(layers_)))
    return path


def original_probs(layers_, ids, temperature=1.0):
    """The original's forward pass as its description reads: column vectors, the state starting at zero, z = w
    [x; h_prev] + b, i, f, o = sigmoid, g = tanh, c = f c_prev + i g, h = o tanh(c), and the softmax of the
    logits divided by the temperature. Returns (T, V) probabilities of the next character."""
    *lstms, (wd, bd) = layers_
    V = wd.shape[0]
    state = [(np.zeros((w.shape[0] // 4, 1)), np.zeros((w.shape[0] // 4, 1))) for w, _ in lstms]
    out = []
    for ix in ids:
        x = np.zeros((V, 1))
        x[ix] = 1.0
        for n, (w, b) in enumerate(lstms):
            H = w.shape[0] // 4
            h, c = state[n]
            z = w @ np.concatenate([x, h]) + b
            i, f, o = (1 / (1 + np.exp(-z[k * H : (k + 1) * H])) for k in range(3))
            c = f * c + i * np.tanh(z[3 * H :])
            h = o * np.tanh(c)
            state[n] = (h, c)
            x = h
        z = (wd @ x + bd)[:, 0] / temperature
        p = np.exp(z - z.max())
        out.append(p / p.sum())
    return np.array(out)


def damaged(kind):
    """The tiny model's JSON value with one thing wrong."""
    good, _ = original_layers(np.random.default_rng(0), 4, 2, 2)
    j = as_json(good)
    if kind == 'a dict':
        return {'layers': j}
    if kind == 'the optimizer':
        return {'n': 4, 'cache': j[:-1] + j[-1]}
    if kind == 'one entry':
        return j[-1:]
    if kind == 'output not wrapped':
        return j[:-1] + [j[-1][0]]
    if kind == 'a triple':
        j[0].append([[0.0]])
    elif kind == 'ragged':
        j[0][0][1] = j[0][0][1][:-1]
    elif kind == 'a string':
        j[1][0][0][0] = '0.5'
    elif kind == 'true':
        j[1][0][0][0] = True
    elif kind == 'null':
        j[0][1][0][0] = None
    elif kind == 'too deep':
        j[0][0][0][0] = [0.5]
    elif kind == 'flat bias':
        j[0][1] = [row[0] for row in j[0][1]]
    elif kind == 'rows not 4H':
        j[0][0] = j[0][0][:-1]
        j[0][1] = j[0][1][:-1]
    elif kind == 'layer 2 wider':
        j[1] = [[[0.1] * 5 for _ in range(12)], [[0.0]] * 12]
    elif kind == 'bias short':
        j[1][1] = j[1][1][:-1]
    elif kind == 'output V':
        j[-1][0][0] = j[-1][0][0][:-1]
    elif kind == 'output H':
        j[-1][0][0] = [row + [0.0] for row in j[-1][0][0]]
    elif kind == 'empty row':
        j[0][0][0] = []
    return j


def huge_model(tmp_path, value):
    """A tiny model in the original's format (as original.write writes it), every value a float32 value but
    one dense weight set to value."""
    params = {
        k: v.astype(np.float32).astype(np.float64)
        for k, v in tiny_model(np.random.default_rng(0), V=5, H=3).items()
    }
    params['dense.W'][0, 0] = value
    path = tmp_path / 'huge.json'
    original.write(path, params)
    return path
