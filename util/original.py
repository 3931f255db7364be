"""Models saved by the original project (BendeguzToth/NeuralLanguageModel): read its weights file into this
repo's parameters, and write this repo's parameters in its format, so that a model goes either way.

Its weights file (`ShakespeareNet.json`) is a JSON list with one entry per trained layer, every number a
float64:
    [[w, b], [w, b], ..., [[w, b]]]
- each LSTM layer, in order: w (4H, D + H), b (4H, 1). The rows of w are the gate blocks i, f, o, g (the same
  order as here), its columns the layer's input first, then h_prev; so w is the transpose of this repo's
  W (D + H, 4H), and b a column where this repo has a flat (4H,).
- then the output layer, wrapped once more by the original's TimeDistributed: [[w, b]], w (V, H), b (V, 1).
Its lookup table (`ShakespeareLookup.json`) is a JSON list of the characters in the order the original
happened to find them (not sorted); index i is row i of the one-hot input and of the output. data.load_lookup
reads it as it is: this repo never assumes a sorted table.

The original computes in float64, so its models are read as float64 (and give its results here); a model that
went out from this repo (every value a float32) comes back as float32, so that a round trip changes nothing.
"""

import json
import os

import numpy as np

from util import files, reading

SUFFIXES = ('.json', '.nn')  # the original's training loop names its files *.nn


def is_original(path):
    """True when path names a weights file in the original's format: a .json (or .nn) name, or a regular file
    whose first character is '[' (JSON) rather than the zip header of an .npz."""
    if os.fspath(path).lower().endswith(SUFFIXES):
        return True
    if not os.path.isfile(path):  # a pipe is not read here: what is read is gone
        return False
    try:
        with open(path, 'rb') as f:
            return f.read(64).lstrip().startswith(b'[')
    except OSError:
        return False


def _read_json(path):
    """The JSON value held by path. Raises ModelFileError on a missing, unreadable or non-JSON file."""
    raw = reading.read_bytes(path, 'weights file', first=lambda block: _json_start(block, path))
    try:
        return json.loads(raw.decode('utf-8-sig'))  # -sig: a byte-order mark, as some editors write
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise files.ModelFileError(
            f'weights file {path} is not valid JSON: it should be a model saved by the '
            'original, [[w, b], ..., [[w, b]]]'
        ) from None


def _json_start(block, path):
    """Refuse a file whose first bytes cannot start JSON (an endless /dev/zero among them)."""
    if block[:2] == b'PK':
        raise files.ModelFileError(f'weights file {path} is an .npz file, not JSON: name it *.npz')
    start = block.lstrip(b'\xef\xbb\xbf \t\r\n')[:1]  # after a byte-order mark and blanks
    if start and start < b' ':  # a control character (NUL, ...) starts no JSON
        raise files.ModelFileError(
            f'weights file {path} is not valid JSON: it should be a model saved by the '
            'original, [[w, b], ..., [[w, b]]]'
        )


def _matrix(value, path, what):
    """value as a (rows, columns) float64 array: a non-empty list of equally long, non-empty lists of numbers
    (JSON true/false are not numbers), every one finite. Raises ModelFileError naming `what` otherwise."""
    where = f'weights file {path}: {what}'
    if not isinstance(value, list) or not value:
        raise files.ModelFileError(f'{where} should be a non-empty list of rows')
    for row in value:
        if not isinstance(row, list) or not row:
            raise files.ModelFileError(f'{where} should be a list of rows, each a non-empty list of numbers')
        if len(row) != len(value[0]):
            raise files.ModelFileError(
                f'{where} is ragged: its rows have {len(value[0])} and {len(row)} numbers'
            )
        if not set(map(type, row)) <= {float, int}:
            raise files.ModelFileError(f'{where} holds something that is not a number')
    try:
        a = np.array(value, dtype=np.float64)
    except OverflowError:
        a = np.array([np.inf])  # an integer too large for a float64
    if not np.all(np.isfinite(a)):
        raise files.ModelFileError(f'{where} holds NaN or infinite values')
    return a


def _pair(entry, path, what):
    """An entry [w, b] of the file as two float64 arrays."""
    if not isinstance(entry, list) or len(entry) != 2:
        raise files.ModelFileError(f'weights file {path}: {what} should be a pair [w, b]')
    return _matrix(entry[0], path, f'{what}\'s w'), _matrix(entry[1], path, f'{what}\'s b')


def _check_shape(a, shape, path, what):
    if a.shape != shape:
        raise files.ModelFileError(f'weights file {path}: {what} has shape {a.shape}, expected {shape}')


def read(path, V=None):
    """Read and check a weights file saved by the original. V, if given, is the lookup table's size.

    Returns this repo's parameters (lstm1.W, lstm1.b, ..., dense.W, dense.b) as float64 arrays.
    Raises ModelFileError with a one-line reason on any problem.
    """
    layers = _read_json(path)
    if isinstance(layers, list) and layers and all(isinstance(ch, str) for ch in layers):
        raise files.ModelFileError(
            f'weights file {path} holds a lookup table (a list of characters), not a '
            'model\'s weights: a script takes it with --lookup'
        )
    if isinstance(layers, dict) and 'cache' in layers:
        raise files.ModelFileError(
            f'weights file {path} holds the original\'s optimizer state (its RMSprop cache), '
            'not its weights: give the weights file (ShakespeareNet.json)'
        )
    if not isinstance(layers, list) or len(layers) < 2:
        raise files.ModelFileError(
            f'weights file {path} is not a model saved by the original: that is a JSON '
            'list of layers, [[w, b], ..., [[w, b]]], at least one LSTM and the output'
        )
    out = layers[-1]
    if not (isinstance(out, list) and len(out) == 1):
        raise files.ModelFileError(
            f'weights file {path}: the last entry, the output layer, should be wrapped once '
            'more, [[w, b]], as the original\'s TimeDistributed saves it'
        )
    w, b = _pair(layers[0], path, 'layer 1')
    if w.shape[0] % 4 or w.shape[1] <= w.shape[0] // 4:
        raise files.ModelFileError(
            f'weights file {path}: layer 1\'s w has shape {w.shape}, not (4H, D + H) of an LSTM layer'
        )
    H = w.shape[0] // 4
    D = w.shape[1] - H  # the one-hot input: the alphabet's size
    params = {}
    for n, entry in enumerate(layers[:-1], start=1):
        if n > 1:
            w, b = _pair(entry, path, f'layer {n}')
            if w.shape[0] != 4 * H:
                raise files.ModelFileError(
                    f'weights file {path}: layer {n} has {w.shape[0] // 4} units where '
                    f'layer 1 has {H}: this repo\'s LSTM layers all have the same size'
                )
        _check_shape(w, (4 * H, (D if n == 1 else H) + H), path, f'layer {n}\'s w')
        _check_shape(b, (4 * H, 1), path, f'layer {n}\'s b')
        params[f'lstm{n}.W'], params[f'lstm{n}.b'] = w.T, b[:, 0]
    w, b = _pair(out[0], path, 'the output layer')
    _check_shape(w, (D, H), path, 'the output layer\'s w')
    _check_shape(b, (D, 1), path, 'the output layer\'s b')
    params['dense.W'], params['dense.b'] = w.T, b[:, 0]
    if V is not None and V != D:
        raise files.ModelFileError(
            f'weights file {path} is for {D} characters but the lookup table has {V}: '
            'give the lookup table saved with these weights (--lookup)'
        )
    return {k: np.ascontiguousarray(v) for k, v in params.items()}


def own_dtype(params):
    """float32 when every value is a float32 value (a model that went out from this repo), else float64."""
    with np.errstate(over='ignore'):  # 1e300 becomes inf in float32: not exact, no warning
        exact = all(np.array_equal(v, v.astype(np.float32)) for v in params.values())
    return np.dtype(np.float32 if exact else np.float64)


def to_json(params):
    """The original's weights file for this repo's parameters, as text: every value written as the float64 it
    is (a float32 value is exact in float64, and Python writes the shortest text that reads back the same)."""
    n_layers = sum(1 for k in params if k.startswith('lstm') and k.endswith('.W'))
    column = lambda b: np.asarray(b, dtype=np.float64)[:, None].tolist()  # noqa: E731
    layers = [
        [np.asarray(params[f'lstm{n}.W'], dtype=np.float64).T.tolist(), column(params[f'lstm{n}.b'])]
        for n in range(1, n_layers + 1)
    ]
    layers.append([[np.asarray(params['dense.W'], dtype=np.float64).T.tolist(), column(params['dense.b'])]])
    return json.dumps(layers)


def write(path, params):
    """Write this repo's parameters as a weights file of the original, atomically."""
    files.write_text(path, to_json(params))
