"""What the runnable scripts share: an argument parser whose errors are one line, and checked option types.

Every error a script can foresee is reported as one line on stderr, `script: error: what is wrong and how to fix
it`, with exit status 2 and no traceback.
"""
import argparse
import os
import sys

ROOT = os.path.dirname(os.path.abspath(__file__))
SAVES = os.path.join(ROOT, 'saves')


class Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (no usage block): the message says what to fix."""

    def error(self, message):
        fail(f'{message} (see --help)')


def run(main):
    """Run a script's main() and exit with its status.

    When whoever reads the output goes away early (`python _visualize.py --find | head`), the script stops quietly,
    as if it had printed everything, instead of ending on a BrokenPipeError traceback.
    """
    status = 0
    try:
        try:
            status = main()
        except SystemExit as e:                         # --help, or an error: its output must still be flushed
            status = e.code
        sys.stdout.flush()
    except BrokenPipeError:
        _stdout_to_devnull()
    sys.exit(status)


def write(text):
    """Print progress that nobody has to read: if stdout is a closed pipe, the work goes on without it."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        _stdout_to_devnull()


def _stdout_to_devnull():
    """Send what is still to be printed, including what sits in the buffer, nowhere (not to a closed pipe)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def fail(message):
    """Print `script: error: message` on stderr and exit with status 2."""
    sys.stderr.write(f'{os.path.basename(sys.argv[0])}: error: {message}\n')
    sys.exit(2)


def _number(kind, test, what):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'{text!r} is not {"an integer" if kind is int else "a number"}')
        if value != value or not test(value):                      # value != value: NaN
            raise argparse.ArgumentTypeError(f'{text} is not {what}')
        return value
    return parse


positive_int = _number(int, lambda v: v > 0, 'a positive integer')
non_negative_int = _number(int, lambda v: v >= 0, 'zero or a positive integer')
positive_float = _number(float, lambda v: 0 < v < float('inf'), 'a positive number')
non_negative_float = _number(float, lambda v: 0 <= v < float('inf'), 'zero or a positive number')
fraction = _number(float, lambda v: 0 <= v < 1, 'a fraction in [0, 1)')
open_fraction = _number(float, lambda v: 0 < v < 1, 'a fraction in (0, 1)')
half_open_fraction = _number(float, lambda v: 0 < v <= 1, 'a fraction in (0, 1]')


def path(text):
    """An option naming a file or folder: any non-empty text."""
    if not text:
        raise argparse.ArgumentTypeError('the path is empty: give a name')
    return text


def boolean(text):
    """true/false (also yes/no, 1/0)."""
    value = {'true': True, 'yes': True, '1': True, 'false': False, 'no': False, '0': False}.get(text.lower())
    if value is None:
        raise argparse.ArgumentTypeError(f'{text!r} is not true or false')
    return value


def choice(*values):
    """An option type that takes one of the given strings."""
    def parse(text):
        if text not in values:
            raise argparse.ArgumentTypeError(f'{text!r} is not one of {", ".join(values)}')
        return text
    return parse


def add_model_options(parser):
    """The option group naming a trained model: --weights and --lookup, the shipped model by default."""
    g = parser.add_argument_group('model')
    g.add_argument('--weights', type=path, default=os.path.join(SAVES, 'ShakespeareNet.npz'),
                   help='weights file (default saves/ShakespeareNet.npz)')
    g.add_argument('--lookup', type=path, default=os.path.join(SAVES, 'ShakespeareLookup.json'),
                   help='lookup table saved with the weights (default saves/ShakespeareLookup.json)')
    return g
