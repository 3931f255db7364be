"""The settings of a training run that its floating-point type cannot hold. RMSprop computes in the run's
dtype (float32 by default): a learning rate, epsilon, clipping norm or weight decay that is 0 there silently
does nothing (an epsilon of 0 divides by zero: NaN at the first step), one that is infinite overflows, and a
decay that rounds to 1 never decays. Such settings are refused before any work, with the range that the dtype
holds.
"""

import numpy as np

from util.cli import option_name as _option

COUNT_MAX = 2**53  # an integer setting beyond it is no run's


def held(dtype):
    """The positive numbers a dtype holds, in words: 'float32 holds 1.4e-45 to 3.4e+38'."""
    info = np.finfo(dtype)
    return f'{np.dtype(dtype)} holds {info.smallest_subnormal:.3g} to {info.max:.3g}'


def as_held(value, dtype):
    """value as a number of dtype: 0 below its range, inf above."""
    with np.errstate(over='ignore', under='ignore'):
        return float(np.dtype(dtype).type(value))


def problem(settings, lr_at, resumed=False):
    """Why the run cannot hold one of its settings, as one line saying what to give instead, or None.
    lr_at(settings, epoch) is the learning rate of an epoch (counted from 0). resumed: the dtype is the saved
    run's, which cannot change, so --dtype float64 is not offered."""
    dtype = np.dtype(settings['dtype'])
    cast = dtype.type
    for name in ('epochs', 'decay_after', 'val_chars', 'seed'):  # the sizes: _training.py's memory check
        value = settings[name]
        if value > COUNT_MAX:
            return (
                f'{_option(name)} {value} is more than 2**53, more than any run counts: give a smaller number'
            )
    with np.errstate(over='ignore', under='ignore'):
        for name, value in (
            ('lr', settings['lr']),
            ('eps', settings['eps']),
            ('clip', settings['clip']),
            ('weight_decay', settings['weight_decay']),
        ):
            product = value * settings['lr'] if name == 'weight_decay' else value  # RMSprop uses lr x decay
            if value > 0 and not 0 < cast(product) < np.inf:
                what = 'times --lr ' if name == 'weight_decay' else ''
                got = as_held(product, dtype)
                other = ', or --dtype float64' if dtype == np.float32 and not resumed else ''
                return (
                    f'{_option(name)} {value} {what}is {got:g} in {dtype} ({held(dtype)}): give a value in '
                    f'that range{other}'
                )
        for name in ('rho', 'ema'):
            value = settings[name]
            if 0 < value < 1 and cast(value) == 1:
                return (
                    f'{_option(name)} {value} rounds to 1 in {dtype}, where it would never decay: give at '
                    f'most {float(np.nextafter(cast(1), cast(0))):.10g}'
                )
        last = settings['epochs'] - 1
        if not 0 < cast(lr_at(settings, last)):
            return (
                f'the learning rate decays to 0 in {dtype} by epoch {last + 1} (--lr {settings["lr"]} x '
                f'--lr-decay {settings["lr_decay"]} per epoch after --decay-after '
                f'{settings["decay_after"]}): '
                'give fewer --epochs or a slower decay'
            )
    return None
