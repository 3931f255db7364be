"""A model's weights: saved and loaded in this repo's .npz format or the original's .json (util/original.py),
checked whole (every array there, of the shapes the model needs, finite, in one floating-point type) and
cast."""

import numpy as np

from util import npz, original
from util.files import ModelFileError


def save_params(path, params, meta=None, chars=None):
    """Save the weights, named lstm1.W, lstm1.b, ..., dense.W, dense.b, in their dtype (float32 by default).
    chars, the model's lookup table, is stored in the metadata as `alphabet`, so that a loader can refuse
    another table."""
    if chars is not None:
        meta = dict(meta or {}, alphabet=list(chars))
    npz.save(path, params, meta)


def load_params(path, V=None, dtype=None, chars=None):
    """Load and check weights saved by save_params, or by the original project (a .json file: see
    original.py). V, if given, is the lookup table's size; chars, if given, the lookup table itself (V is then
    its size): it must be the alphabet saved with the weights, where they hold one (older files do not).

    dtype None keeps the weights' own precision: float64 for float64 weights (the original's models), float32
    for the rest. Returns (params, meta; {} for the original's files, which hold none). Raises ModelFileError
    with a one-line reason on any problem.
    """
    if chars is not None:
        V = len(chars)
    if original.is_original(path):
        params = original.read(path, V)
        dtype = original.own_dtype(params) if dtype is None else dtype
        return cast_params(params, dtype, path), {}
    arrays, meta = npz.load(path, 'weights')
    if dtype is None:
        dtype = (
            np.float64
            if any(getattr(a, 'dtype', None) == np.float64 for a in arrays.values())
            else np.float32
        )
    params = check_params(arrays, path, V, dtype)
    if chars is not None and 'alphabet' in meta:
        check_alphabet(meta['alphabet'], chars, path)
    return params, meta


def check_alphabet(alphabet, chars, path):
    """Refuse a lookup table that is not the alphabet saved with the weights, naming the first difference."""
    if not isinstance(alphabet, list) or not all(isinstance(ch, str) and len(ch) == 1 for ch in alphabet):
        raise ModelFileError(
            f'weights file {path} has unreadable metadata: its alphabet is not a list of characters'
        )
    if list(chars) == alphabet:
        return
    k = next((k for k, (a, b) in enumerate(zip(alphabet, chars)) if a != b), min(len(alphabet), len(chars)))
    shown = [repr(x[k]) if k < len(x) else 'nothing' for x in (alphabet, chars)]
    raise ModelFileError(
        f'weights file {path} was trained with another lookup table: character {k} is {shown[0]} '
        f'in the weights\' alphabet but {shown[1]} in the lookup table given: leave --lookup out (the '
        'weights hold their own table)'
    )


def check_params(arrays, path, V, dtype, what='weights file'):
    """Check that named arrays form a model of this repo; return them as contiguous arrays of dtype. what:
    how messages name the file ('checkpoint')."""
    for key in ('dense.W', 'dense.b', 'lstm1.W', 'lstm1.b'):
        if key not in arrays and f'weights.{key}' in arrays:  # a run's checkpoint, not its weights file
            raise ModelFileError(
                f'{what} {path} is a training checkpoint: give the weights file saved beside it, '
                'ShakespeareNet.npz'
            )
        if key not in arrays:
            raise ModelFileError(f'{what} {path} has no array {key}: it is not a model of this repo')
    n_layers = 0
    while f'lstm{n_layers + 1}.W' in arrays:
        n_layers += 1
    expected = {'dense.W', 'dense.b'} | {f'lstm{n}.{p}' for n in range(1, n_layers + 1) for p in 'Wb'}
    extra = sorted(set(arrays) - expected)
    if extra:
        raise ModelFileError(f'{what} {path} has unexpected arrays {extra}')
    Wd = arrays['dense.W']
    if Wd.ndim != 2:
        raise ModelFileError(f'{what} {path}: dense.W should be 2-D (H, V), not {Wd.shape}')
    H, Vw = Wd.shape
    if H == 0 or Vw == 0:
        raise ModelFileError(
            f'{what} {path}: dense.W has shape {Wd.shape}: a model needs at least one hidden '
            'unit and one character'
        )
    shapes = {'dense.W': (H, Vw), 'dense.b': (Vw,)}
    D = Vw
    for n in range(1, n_layers + 1):
        shapes[f'lstm{n}.W'] = (D + H, 4 * H)
        shapes[f'lstm{n}.b'] = (4 * H,)
        D = H
    for key, shape in shapes.items():
        a = arrays[key]
        if a.shape != shape:
            raise ModelFileError(f'{what} {path}: {key} has shape {a.shape}, expected {shape}')
        if a.dtype.kind != 'f':
            raise ModelFileError(f'{what} {path}: {key} has dtype {a.dtype}, expected floats')
        if not np.all(np.isfinite(a)):
            raise ModelFileError(f'{what} {path}: {key} holds NaN or infinite values')
    if V is not None and V != Vw:
        raise ModelFileError(
            f'{what} {path} is for {Vw} characters but the lookup table has {V}: '
            'give the lookup table saved with these weights (--lookup)'
        )
    return cast_params({k: arrays[k] for k in shapes}, dtype, path)


def cast_params(params, dtype, path):
    """params as contiguous arrays of dtype. Refuses a value that dtype cannot hold (1e300 in float32 would
    become inf, a model that no loader takes), and weights so large that a layer's sums could overflow (its
    outputs would be inf or NaN, and a sample nonsense)."""
    with np.errstate(over='ignore'):
        out = {k: np.ascontiguousarray(v, dtype=dtype) for k, v in params.items()}
    for k, a in out.items():
        if not np.all(np.isfinite(a)):
            raise ModelFileError(
                f'weights file {path}: {k} holds values too large for {np.dtype(dtype)} '
                f'(largest {np.abs(params[k]).max():.3g}): keep them in float64'
            )
    for k in (k for k in out if k.endswith('.W')):  # every input of a layer is in [-1, 1] (one-hot, or h):
        with np.errstate(over='ignore'):  # |x W + b| <= sum |W| + |b|, column by column
            bound = np.abs(out[k]).sum(axis=0) + np.abs(out[k[:-1] + 'b'])
        if not np.all(np.isfinite(bound)):
            raise ModelFileError(
                f'weights file {path}: {k} holds values so large (up to '
                f'{np.abs(out[k]).max():.3g}) that the model\'s sums can overflow '
                f'{np.dtype(dtype)}: these are not trained weights'
            )
    return out
