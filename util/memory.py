"""Sizes no machine has, refused before any work: how much memory the model needs, and the check against the
machine's memory (the GPU's is checked in util/devices.py)."""

import os

from util.errors import UserError


def machine_bytes():
    """The machine's physical memory in bytes; None where the system does not say."""
    try:
        return os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')
    except (ValueError, OSError, AttributeError):
        return None


def model_bytes(V, H, layers, B, T, itemsize=4, training=False):
    """About how much memory the LSTM needs with V characters, H units per layer, B streams side by side and T
    steps at a time: its weights (in training also their gradients, the optimizer's mean square and the
    update), and the activations of the T steps (in training kept for the backward pass: gates before and
    after their nonlinearity, h, c and tanh(c) per layer; the logits, probabilities and their gradient)."""
    # The weights: lstm*.W, lstm*.b and the dense layer's.
    weights = (V + H) * 4 * H + (layers - 1) * (2 * H) * 4 * H + layers * 4 * H + H * V + V
    if training:
        return itemsize * (4 * weights + T * B * (layers * 11 * H + 3 * V))
    return itemsize * (2 * weights + T * B * (layers * 6 * H + 2 * V))


def check_fits(needed, what, fix='choose smaller sizes'):
    """Refuse, with one line, what would need more memory than the machine has: `what needs about ...`."""
    have = machine_bytes()
    if have is not None and needed > have:
        raise UserError(
            f'{what} needs about {in_words(needed)} of memory, more than this machine\'s {in_words(have)}: '
            f'{fix}'
        )


def in_words(n):
    """A number of bytes in words: '512 MiB', '299 GiB', '1.2e+09 TiB'."""
    if n >= 1 << 1000:
        return 'more than 1e+289 TiB'
    for unit in ('bytes', 'KiB', 'MiB', 'GiB'):
        if n < 1024:
            return f'{n:.0f} {unit}' if unit == 'bytes' else f'{n:.3g} {unit}'
        n /= 1024
    return f'{n:.3g} TiB'
