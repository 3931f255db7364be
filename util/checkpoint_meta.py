"""A training checkpoint's metadata (the JSON beside its arrays), checked field by field when a run is resumed:
the settings, each as its command-line option would take it; the position in the data, which must be a place in
the run that can still advance; the random state; the lookup table, sorted as data.read_corpus makes it; the log.
Every problem is one ModelFileError naming the field (runs.load calls check_meta before any array is used).
"""
import json
import math

import numpy as np

from util import files

LOG_HEADER = ['epoch', 'step', 'train_loss', 'val_loss', 'lr', 'seconds', 'chars_per_s', 'event']
COUNT_MAX = 2 ** 53       # steps, epochs, windows and integer settings: beyond it a float or an int64 loses them
SECONDS_MAX = 1e12        # 30,000 years of training: a larger clock is damage (and would overflow as it runs)


def _shown(value):
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + '...'


def _whole(value, least=0):
    """Whether value is a JSON integer (not a boolean) from `least` to COUNT_MAX."""
    return isinstance(value, int) and not isinstance(value, bool) and least <= value <= COUNT_MAX


def in_order(chars):
    """Whether a lookup table lists its characters in code-point order, as data.read_corpus builds it from a
    corpus (a table in another order would encode the corpus with other indices than the weights learned)."""
    return all(a < b for a, b in zip(chars, chars[1:]))


def _finite(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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
        if not _whole(value):
            return 'not an integer from 0 to 2**53'
        text = str(value)
    else:
        if not _finite(value):
            return 'not a finite number'
        text = repr(float(value))
    if text is None:
        return None
    try:
        kind(text)
    except Exception as e:                              # the option's own reason, e.g. '0 is not a positive integer'
        return str(e) or type(e).__name__
    return None


def check_meta(meta, path, defaults, kinds):
    """Check a checkpoint's metadata field by field; raise ModelFileError naming the first damaged field.
    defaults and kinds: each setting's default and the function that parses its command-line text."""
    def bad(field, value, why):
        raise files.ModelFileError(f'checkpoint {path} has a damaged field: {field} = {_shown(value)} ({why})')

    settings, pos, rng = meta.get('settings'), meta.get('position'), meta.get('rng')
    if not isinstance(settings, dict) or not isinstance(pos, dict) or not isinstance(rng, dict):
        field = next(k for k in ('settings', 'position', 'rng') if not isinstance(meta.get(k), dict))
        if field not in meta:
            raise files.ModelFileError(f'checkpoint {path} has no {field}: it was not written by _training.py')
        bad(field, meta[field], 'not a table of fields')
    for name, value in settings.items():
        if name not in defaults:
            bad(f'settings.{name}', value, 'not a setting of this version')
        why = _setting_problem(value, defaults[name], kinds[name])
        if why:
            bad(f'settings.{name}', value, why)
    _check_position(pos, bad)
    if rng.get('bit_generator') != 'PCG64':
        bad('rng.bit_generator', rng.get('bit_generator'), 'not PCG64, the generator of numpy.random.default_rng')
    try:
        np.random.PCG64().state = rng
    except Exception:                                   # a missing or damaged part of the state
        bad('rng', rng, 'not a whole PCG64 state')
    checks = {'corpus_chars': (lambda v: v is None or _whole(v, 2), 'not a number of characters >= 2'),
              'windows_per_epoch': (lambda v: _whole(v, 1), 'not a whole number >= 1'),
              'commit': (lambda v: _whole(v), 'not a whole number >= 0'),
              'block_widths': (lambda v: isinstance(v, list), 'not a list'),
              'saved': (lambda v: isinstance(v, str), 'not text'),
              'chars': (lambda v: isinstance(v, list) and v and len(set(v)) == len(v) and all(
                  isinstance(c, str) and len(c) == 1 and not '\ud800' <= c <= '\udfff' for c in v) and in_order(v),
                        'not a list of distinct single characters in code-point order, as a corpus gives them, none '
                        'a lone surrogate'),
              'log': (lambda v: isinstance(v, list) and all(
                  isinstance(r, list) and len(r) == len(LOG_HEADER) and
                  all(isinstance(x, str) and '\n' not in x and '\r' not in x for x in r) for r in v),
                      f'not a list of rows of {len(LOG_HEADER)} one-line texts')}
    for name, (ok, why) in checks.items():
        if name in meta and not ok(meta[name]):
            bad(name, meta[name], why)
    n = meta.get('windows_per_epoch')                   # then the position must be a place in the run
    if n is not None and pos['window'] > n:
        bad('position.window', pos['window'], f'more than the {n} windows of an epoch')
    if n is not None and pos['step'] != pos['epoch'] * n + pos['window']:
        bad('position.step', pos['step'], f'not epoch x {n} windows + window, {pos["epoch"] * n + pos["window"]}')


def _check_position(pos, bad):
    """The position's fields: counts that the run can still advance (at most COUNT_MAX), finite losses, a clock."""
    for name in ('epoch', 'window', 'step'):
        if not _whole(pos.get(name)):
            bad(f'position.{name}', pos.get(name), 'not a whole number from 0 to 2**53')
    for name in ('best_val', 'val_loss'):
        if pos.get(name) is not None and not _finite(pos[name]):
            bad(f'position.{name}', pos[name], 'not a finite number')
    if not _finite(pos.get('seconds', 0.0)) or not 0 <= pos.get('seconds', 0.0) <= SECONDS_MAX:
        bad('position.seconds', pos['seconds'], f'not a number of seconds from 0 to {SECONDS_MAX:.0e}')
    if not _finite(pos.get('epoch_loss_sum', 0.0)) or abs(pos.get('epoch_loss_sum', 0.0)) > 1e300 or \
            not _whole(pos.get('epoch_steps', 0)):
        bad('position.epoch_loss_sum', [pos.get('epoch_loss_sum'), pos.get('epoch_steps')],
            'not a finite sum and a whole number of steps')
    if pos.get('best_step') is not None and not (_whole(pos['best_step']) and pos['best_step'] <= pos['step']):
        bad('position.best_step', pos['best_step'], 'not a step of the run')
