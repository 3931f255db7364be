"""What the benchmark says of the machine it measures: the CPU's name, a warning where OpenBLAS's kernel is
pinned by the environment (the figures would then not be those a user sees), and one where rounds disagree."""

import os
import sys

UNRELIABLE = 0.25  # a spread between rounds beyond which no figure is trusted


def cpu_model():
    """The CPU's model name, from /proc/cpuinfo (Linux) or the platform module."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or 'unknown CPU'


def warn_if_pinned():
    """Say on stderr when OPENBLAS_CORETYPE pins OpenBLAS's kernel; returns its value (None where unset)."""
    pinned = os.environ.get('OPENBLAS_CORETYPE')
    if pinned:
        print(
            f'warning: OPENBLAS_CORETYPE={pinned} pins OpenBLAS to that kernel, which may not be the one it '
            'would choose on this CPU; for the figures a user would see, run with '
            '`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python _benchmark.py`',
            file=sys.stderr,
        )
    return pinned


def warn_unreliable(varied, why, fix):
    """Say on stderr, in one line, which figures varied between rounds by more than UNRELIABLE: varied, (what,
    spread) pairs (none: nothing to say); why, what may have made them vary; fix, what to do about it."""
    if varied:
        print(
            'warning: these figures are unreliable: '
            + ', '.join(f'{what} varied by {100 * spread:.0f}%' for what, spread in varied)
            + f' between rounds ({why}): {fix}',
            file=sys.stderr,
        )
