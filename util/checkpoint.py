"""The training checkpoint, one .npz file: its schema and its checks, in one place.

Its arrays (save, load): the weights in their training dtype (`weights.*`), RMSprop's state (`cache.*`,
`steps`), the hidden state carried into the next window (`state.h1`, `state.c1`, ...), the moving average of
the weights where one is kept (`ema.*`). Its metadata, JSON (check_meta): the settings, each as its
command-line option would take it (util/settings.py); the position in the data, which must be a place in the
run that can still advance; the random state; the lookup table, sorted as data.read_corpus makes it; the log.
check_against_arrays holds the two to each other. Every problem is one ModelFileError naming what is wrong
(runs.load_run calls check_meta before any array is used).
"""

import json
import math
import re

import numpy as np

import lstm
from util import npz, weights
from util.files import ModelFileError
from util.position import check_position, finite, whole
from util.settings import DEFAULTS, KINDS

LOG_HEADER = ['epoch', 'step', 'train_loss', 'val_loss', 'lr', 'seconds', 'chars_per_s', 'event']


def _short_json(value):
    """A field's value as a message shows it: its JSON, cut at 60 characters."""
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + '...'


def in_order(chars):
    """Whether a lookup table lists its characters in code-point order, as data.read_corpus builds it from a
    corpus (a table in another order would encode the corpus with other indices than the weights learned)."""
    return all(a < b for a, b in zip(chars, chars[1:]))


def _setting_problem(value, default, kind):
    """Why a saved setting is not a value its command-line option accepts (kind parses the option's text), or
    None. The JSON type must be the default's."""
    if default is None or isinstance(default, str):
        if not isinstance(value, str) and not (default is None and value is None):
            return 'not text' if default is not None else 'not a file name'
        text = value
    elif isinstance(default, bool):
        return None if isinstance(value, bool) else 'not true or false'
    elif isinstance(default, int):
        if not whole(value):
            return 'not an integer from 0 to 2**53'
        text = str(value)
    else:
        if not finite(value):
            return 'not a finite number'
        text = repr(float(value))
    if text is None:
        return None
    try:
        kind(text)
    except Exception as e:  # the option's own reason, e.g. '0 is not a positive integer'
        return str(e) or type(e).__name__
    return None


def _is_alphabet(v):
    """A lookup table as a corpus gives it: distinct single characters in code-point order, no lone
    surrogate."""
    return (
        isinstance(v, list)
        and bool(v)
        and len(set(v)) == len(v)
        and all(isinstance(c, str) and len(c) == 1 and not '\ud800' <= c <= '\udfff' for c in v)
        and in_order(v)
    )


def _number(text, blank=False, finite_only=True):
    """A log field is a number, finite unless said (a validation loss may overflow where the weights do not),
    or '' where blank is allowed."""
    if blank and text == '':
        return True
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) or not finite_only


def _is_log_row(r):
    """A row of the log as _training.py writes it (LOG_HEADER): epoch, step, the losses ('' where none), the
    learning rate, the seconds, the speed ('' where none) and the event, each a one-line text."""
    return (
        isinstance(r, list)
        and len(r) == len(LOG_HEADER)
        and all(isinstance(x, str) and '\n' not in x and '\r' not in x for x in r)
        and _number(r[0])
        and r[1].isdigit()
        and all(_number(x, blank=True, finite_only=False) for x in r[2:4])
        and all(_number(x) for x in r[4:6])
        and _number(r[6], blank=True)
    )


def _is_log(v):
    """The log's rows: each as _is_log_row says."""
    return isinstance(v, list) and all(_is_log_row(r) for r in v)


# The other fields of the metadata: the test each passes where it is present, and what it is otherwise.
FIELDS = {
    'corpus_chars': (lambda v: v is None or whole(v, 2), 'not a number of characters >= 2'),
    'corpus_fingerprint': (
        lambda v: v is None or (isinstance(v, str) and re.fullmatch('[0-9a-f]{64}', v) is not None),
        'not a SHA-256 in hex',
    ),
    'windows_per_epoch': (lambda v: whole(v, 1), 'not a whole number >= 1'),
    'commit': (lambda v: whole(v), 'not a whole number >= 0'),
    'block_widths': (lambda v: isinstance(v, list), 'not a list'),
    'saved': (lambda v: isinstance(v, str), 'not text'),
    'chars': (
        _is_alphabet,
        'not a list of distinct single characters in code-point order, as a corpus gives them, none '
        'a lone surrogate',
    ),
    'log': (_is_log, f'not a list of rows of {len(LOG_HEADER)} one-line texts, as {",".join(LOG_HEADER)}'),
}


def check_meta(meta, path, defaults=DEFAULTS, kinds=KINDS):
    """Check a checkpoint's metadata field by field; raise ModelFileError naming the first damaged field.
    defaults and kinds: each setting's default and the function that parses its command-line text."""

    def bad(field, value, why):
        raise ModelFileError(f'checkpoint {path} has a damaged field: {field} = {_short_json(value)} ({why})')

    settings, pos, rng = meta.get('settings'), meta.get('position'), meta.get('rng')
    if not isinstance(settings, dict) or not isinstance(pos, dict) or not isinstance(rng, dict):
        field = next(k for k in ('settings', 'position', 'rng') if not isinstance(meta.get(k), dict))
        if field not in meta:
            raise ModelFileError(f'checkpoint {path} has no {field}: it was not written by _training.py')
        bad(field, meta[field], 'not a table of fields')
    for name, value in settings.items():
        if name not in defaults:
            bad(f'settings.{name}', value, 'not a setting of this version')
        why = _setting_problem(value, defaults[name], kinds[name])
        if why:
            bad(f'settings.{name}', value, why)
    check_position(pos, bad)
    _check_rng(rng, bad)
    for name, (ok, why) in FIELDS.items():
        if name in meta and not ok(meta[name]):
            bad(name, meta[name], why)
    n = meta.get('windows_per_epoch')  # then the position must be a place in the run
    if n is not None and pos['window'] > n:
        bad('position.window', pos['window'], f'more than the {n} windows of an epoch')
    if n is not None and pos['step'] != pos['epoch'] * n + pos['window']:
        expected = pos['epoch'] * n + pos['window']
        bad('position.step', pos['step'], f'not epoch x {n} windows + window, {expected}')


def _check_rng(rng, bad):
    """The random state: numpy.random.default_rng's generator, whole."""
    if rng.get('bit_generator') != 'PCG64':
        bad(
            'rng.bit_generator',
            rng.get('bit_generator'),
            'not PCG64, the generator of numpy.random.default_rng',
        )
    try:
        np.random.PCG64().state = rng
    except Exception:  # a missing or damaged part of the state
        bad('rng', rng, 'not a whole PCG64 state')


def check_against_arrays(path, settings, params, state, chars, pos, windows):
    """The metadata held to the arrays: the sizes the settings name are those of the weights and the carried
    state, the lookup table has a character per output, the position is inside an epoch. Raises
    ModelFileError."""
    V, H, layers = lstm.sizes(params)
    for field, saved, actual in (
        ('settings.layers', settings['layers'], layers),
        ('settings.hidden', settings['hidden'], H),
        ('settings.dtype', settings['dtype'], str(params['dense.W'].dtype)),
        ('settings.chunks', settings['chunks'], state[0][0].shape[0]),
        ('the lookup table\'s size', len(chars), V),
    ):
        if saved != actual:
            raise ModelFileError(f'checkpoint {path}: {field} is {saved}, but its arrays are of {actual}')
    if windows is not None and pos['window'] > windows:
        raise ModelFileError(
            f'checkpoint {path} has a damaged field: position.window = {pos["window"]} '
            f'(an epoch has {windows} windows)'
        )


# --- the arrays ---------------------------------------------------------------------------------------------


def save(path, params, optimizer, state, meta, ema=None):
    """Everything a resumed run needs, in one file: the weights in their training dtype, the optimizer's
    state, the hidden state carried into the next window (h1, c1, h2, c2, ...), the running average of the
    weights if one is kept (ema), and `meta` (position, settings, random state) as JSON. One file, so that a
    crash can never leave weights and optimizer state out of step."""
    arrays = {f'weights.{k}': v for k, v in params.items()}
    if ema is not None:
        arrays.update({f'ema.{k}': v for k, v in ema.items()})
    arrays.update(optimizer.state_arrays())
    for n, (h, c) in enumerate(state, start=1):
        arrays[f'state.h{n}'] = h
        arrays[f'state.c{n}'] = c
    npz.save(path, arrays, meta)


def load(path, optimizer_factory):
    """Read a checkpoint written by save.

    optimizer_factory(params) makes the optimizer whose state is then restored.
    Returns (params, optimizer, state, meta, ema); ema is None where the checkpoint keeps no average.
    Raises ModelFileError with a one-line reason on any problem.
    """
    arrays, meta = npz.load(path, 'checkpoint')
    saved = {k[len('weights.') :]: v for k, v in arrays.items() if k.startswith('weights.')}
    if not saved:
        raise ModelFileError(
            f'checkpoint {path} holds no weights: it is not a training checkpoint of this repo'
        )
    dtypes = {v.dtype for v in saved.values()}
    if len(dtypes) != 1 or dtypes.pop() not in (np.float32, np.float64):
        raise ModelFileError(f'checkpoint {path}: the weights are not all float32 or all float64')
    dtype = next(iter(saved.values())).dtype
    params = weights.check_params(saved, str(path), None, dtype, 'checkpoint')
    steps = arrays.get('steps')
    if steps is not None and steps.shape == () and steps.dtype.kind in 'iu' and not 0 <= int(steps) < 2**53:
        raise ModelFileError(
            f'checkpoint {path}: the optimizer\'s step count {int(steps)} is not from 0 to 2**53 '
            '(at 2**63 the next checkpoint could not count it): the file is damaged'
        )
    optimizer = optimizer_factory(params)
    try:
        with np.errstate(over='ignore'):
            optimizer.load_state_arrays(arrays)
    except ValueError as e:
        raise ModelFileError(f'checkpoint {path}: {e}') from None
    if not all(np.all(np.isfinite(c)) for c in optimizer.cache.values()):  # e.g. float64 beyond float32
        raise ModelFileError(
            f'checkpoint {path}: the optimizer state holds values too large for {dtype}: the file is damaged'
        )
    _, H, n_layers = lstm.sizes(params)
    state = [_carried_state(arrays, n, H, dtype, path) for n in range(1, n_layers + 1)]
    if len({h.shape for h, _ in state}) != 1:
        raise ModelFileError(
            f'checkpoint {path}: the carried states of the layers are for different numbers of chunks'
        )
    ema = None
    if any(k.startswith('ema.') for k in arrays):
        ema = weights.check_params(
            {k[len('ema.') :]: v for k, v in arrays.items() if k.startswith('ema.')},
            f'{path} (its average weights)',
            None,
            dtype,
            'checkpoint',
        )
        if any(ema[k].shape != params[k].shape for k in params):
            raise ModelFileError(f'checkpoint {path}: the average weights do not match the weights')
    return params, optimizer, state, meta, ema


def _carried_state(arrays, n, H, dtype, path):
    """Layer n's carried state (h, c) from a checkpoint's arrays, as dtype: two real float arrays of one shape
    (chunks, H), finite, h within [-1, 1] (it is o * tanh(c)). Raises ModelFileError."""
    h, c = arrays.get(f'state.h{n}'), arrays.get(f'state.c{n}')
    if h is None or c is None or h.ndim != 2 or h.shape != c.shape or h.shape[1] != H or h.shape[0] == 0:
        raise ModelFileError(f'checkpoint {path} has no valid carried state for layer {n}')
    for name, a in ((f'state.h{n}', h), (f'state.c{n}', c)):
        if a.dtype.kind != 'f':
            raise ModelFileError(
                f'checkpoint {path}: {name} has dtype {a.dtype}, not real floats: the file is damaged'
            )
        if not np.all(np.isfinite(a)):
            raise ModelFileError(
                f'checkpoint {path}: {name} holds NaN or infinite values: the file is damaged'
            )
    with np.errstate(over='ignore'):
        h, c = h.astype(dtype), c.astype(dtype)
    if not np.all(np.isfinite(c)) or np.abs(h).max() > 1:
        raise ModelFileError(
            f'checkpoint {path}: the carried state of layer {n} is out of range for {dtype} '
            '(h must be within [-1, 1]): the file is damaged'
        )
    return h, c
