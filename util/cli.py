"""What the runnable scripts share: an argument parser whose errors are one line, and checked option types.

Every error a script can foresee is reported as one line on stderr, `script: error: what is wrong and how to
fix it`, with exit status 2 and no traceback.
"""

import argparse
import errno
import io
import os
import signal
import sys

from util import files
from util.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository
SAVES = os.path.join(ROOT, 'saves')


class Parser(argparse.ArgumentParser):
    """argparse, but an error is one line (no usage block): the message says what to fix; and an option is
    its whole name (no abbreviations, which another option added later would make ambiguous or change)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message):
        raise UserError(f'{message}{self._whole_names(message)} (see --help)')

    def _whole_names(self, message):
        """For an unrecognized option that begins an option's name: that name, as it must be given."""
        if not message.startswith('unrecognized arguments:'):
            return ''
        for word in message.split(':', 1)[1].split():
            given = word.split('=', 1)[0]
            names = sorted(
                o for o in self._option_string_actions if given.startswith('--') and o.startswith(given)
            )
            if names:
                whole = names[0] if len(names) == 1 else ', '.join(names[:-1]) + ' or ' + names[-1]
                return f'; give an option by its whole name: {whole}'
        return ''


def run(main):
    """Run a script's main() and exit with its status.

    When whoever reads the output goes away early (`python _visualize.py --find | head`), the script stops
    quietly, as if it had printed everything, instead of ending on a BrokenPipeError traceback. Ctrl-C stops
    it with one line and exit status 130. A UserError raised anywhere is one line on stderr and exit status 2,
    as is memory running out (the GPU's or the host's).
    Output that cannot be written (a full disk, `> /dev/full`, a closed stdout) is one line on stderr and exit
    status 2; stderr that cannot be written is left out, the exit status kept. What the console's encoding
    cannot show is written as a backslash escape.
    """
    _guard_output()
    status = 0
    try:
        startup = sys.modules.get('util.startup')  # imported first by every script
        came = startup.release() if startup is not None else None
        _stop_on_termination()
        if came is not None:  # a signal came while the script started
            raise KeyboardInterrupt if came == signal.SIGINT else Terminated(came)
        try:
            status = main()
        except SystemExit as e:  # --help, or an error: its output must still be flushed
            status = e.code
        except UserError as e:  # what the user must fix, raised anywhere: one line
            _say(f'error: {e}')
            status = 2
        except Exception as e:  # memory that ran out where the checks said it would fit: one line too
            line = _out_of_memory(e)
            if not line:
                raise
            _say(f'error: {line}')
            status = 2
        sys.stdout.flush()
    except BrokenPipeError:
        _stdout_to_devnull()
    except OutputError as e:
        _stdout_to_devnull()
        if not status:
            _say(f'error: {e.strerror}')
            status = 2
    except KeyboardInterrupt:
        status = _interrupted()
    except Terminated as e:
        status = _interrupted(e.signum)
    sys.exit(status)


class Terminated(BaseException):
    """SIGTERM or SIGHUP, raised where the script is, as Ctrl-C raises KeyboardInterrupt: what it was doing is
    undone on the way out (a temporary file removed, a folder made for nothing removed), then one line and the
    status of a process stopped by that signal. _training.py turns them into a checkpoint instead, while it
    trains."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def _terminate(signum, frame):
    raise Terminated(signum)


def _stop_on_termination():
    """SIGTERM and SIGHUP raise Terminated, where they would end the process at once (not where ignored)."""
    for s in (signal.SIGTERM, signal.SIGHUP):
        if signal.getsignal(s) == signal.SIG_DFL:
            signal.signal(s, _terminate)


def _interrupted(signum=signal.SIGINT):
    """Say that Ctrl-C (or SIGTERM, SIGHUP) stopped the script, in one line; the exit status of a process
    stopped by that signal, 128 + its number."""
    signal.signal(signum, signal.SIG_IGN)  # a second one while it stops says nothing more
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        _stdout_to_devnull()
    raw = getattr(getattr(sys.stdout, 'buffer', None), 'raw', None)
    if isinstance(raw, _Output) and raw.line_open and raw.isatty() and sys.stderr.isatty():
        sys.stderr.write('\n')  # the line stopped half-way, on the same screen: the message on its own
    _say('interrupted (Ctrl-C)' if signum == signal.SIGINT else f'stopped by {signal.Signals(signum).name}')
    return 128 + signum


def write(text):
    """Print progress that nobody has to read: if stdout cannot take it (a closed pipe, a full disk), the work
    goes on without it (after one line on stderr, unless the reader simply went away)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        _stdout_to_devnull()
    except (
        OSError,
        ValueError,
        AttributeError,
    ) as e:  # ValueError: a closed file; AttributeError: stdout None
        _stdout_to_devnull()
        _say(f'warning: {getattr(e, "strerror", None) or e}: going on without printing')


def is_stdout(path):
    """Whether writing path writes where stdout goes: /dev/stdout, /dev/fd/1, or the very file or pipe that
    stdout is (`--out c.svg > c.svg`). A script then prints its status lines on stderr (status_stream), not
    into its output. /dev/null is never stdout here: what goes into it is lost either way."""
    try:
        if os.path.samefile(path, os.devnull):
            return False
    except (OSError, ValueError):
        return False
    return files.own_descriptor(path) == 1


def status_stream(*outputs):
    """Where a script prints what it did and where (`wrote page.html`): stdout, or stderr where one of outputs
    (the files it writes; None for none) is stdout itself (is_stdout), so that no such line ends up inside the
    page or the picture written there. Ask before writing: a file replaced by its new version is no longer
    stdout."""
    return sys.stderr if any(p is not None and is_stdout(p) for p in outputs) else sys.stdout


def _out_of_memory(e):
    """The line to say for an exception that is memory running out, else None: the GPU's (CuPy's error), or
    the host's beyond what the checks foresaw (a limit set by ulimit, other programs)."""
    devices = sys.modules.get('util.devices')  # loaded where a GPU is used
    line = devices and devices.out_of_memory(e)
    if line or not isinstance(e, MemoryError):
        return line
    return f'out of memory ({str(e) or "no more could be had"}): use smaller inputs or sizes'


def _say(text):
    """Write `script: text` on stderr, one line (a newline in a file name shown as \\n), if it can be written
    (2>/dev/full: it cannot, and nothing else changes)."""
    text = text.replace('\n', '\\n').replace('\r', '\\r')
    try:
        sys.stderr.write(f'{os.path.basename(sys.argv[0])}: {text}\n')
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass


class OutputError(OSError):
    """stdout could not be written: its message (strerror) says so, in words."""


class _Output(io.RawIOBase):
    """The file descriptor under stdout or stderr. A write that fails raises OutputError (stdout) or is
    dropped (stderr, or stdout once its reader is gone)."""

    def __init__(self, fd, name, closed):
        self.fd, self.name, self.is_closed, self.discard = fd, name, closed, False
        self.line_open = False  # whether what was written last ends inside a line

    def writable(self):
        return True

    def fileno(self):
        return self.fd

    def isatty(self):
        return not self.is_closed and os.isatty(self.fd)

    def write(self, b):
        if self.discard or (self.is_closed and self.name == 'stderr'):
            return len(b)
        if self.is_closed:
            raise OutputError(errno.EBADF, f'cannot write the output: {self.name} is closed')
        try:
            n = os.write(self.fd, b)
            self.line_open = bytes(b[n - 1 : n]) != b'\n' if n else self.line_open
            return n
        except OSError as e:
            if self.name == 'stderr':  # nowhere left to say anything: go on
                return len(b)
            if isinstance(e, BrokenPipeError):
                raise
            raise OutputError(e.errno, f'cannot write the output to {self.name}: {e.strerror or e}') from None


def _guard_output():
    """Put stdout and stderr on _Output, with backslash escapes for what their encoding cannot show. A closed
    descriptor (`>&-`) is first opened on /dev/null, so that no file the script opens can take its number."""
    for fd, name in ((1, 'stdout'), (2, 'stderr')):
        old = getattr(sys, name)
        if isinstance(old, io.TextIOWrapper) and isinstance(getattr(old.buffer, 'raw', None), _Output):
            continue  # already done
        try:
            os.fstat(fd)
            closed = False
        except OSError:
            closed = True
            devnull = os.open(os.devnull, os.O_WRONLY)
            if devnull != fd:
                os.dup2(devnull, fd)
                os.close(devnull)
        try:
            if old is not None:
                old.flush()
        except (OSError, ValueError):
            pass
        encoding = getattr(old, 'encoding', None) or 'utf-8'
        line_buffering = name == 'stderr' or bool(getattr(old, 'line_buffering', False))
        setattr(
            sys,
            name,
            io.TextIOWrapper(
                io.BufferedWriter(_Output(fd, name, closed)),
                encoding=encoding,
                errors='backslashreplace',
                line_buffering=line_buffering,
            ),
        )


def _stdout_to_devnull():
    """Send what is still to be printed, including what sits in the buffer, nowhere (not to a closed pipe)."""
    raw = getattr(getattr(sys.stdout, 'buffer', None), 'raw', None)
    if isinstance(raw, _Output):
        raw.discard = True
        return
    if sys.stdout is None:
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _number(kind, test, what):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f'{text!r} is not {"an integer" if kind is int else "a number"}')
        if value != value or not test(value):  # value != value: NaN
            raise argparse.ArgumentTypeError(f'{text} is not {what}')
        return value

    return parse


positive_int = _number(int, lambda v: v > 0, 'a positive integer')
non_negative_int = _number(int, lambda v: v >= 0, 'zero or a positive integer')
positive_float = _number(float, lambda v: 0 < v < float('inf'), 'a positive number')
non_negative_float = _number(float, lambda v: 0 <= v < float('inf'), 'zero or a positive number')
zero_to_below_one = _number(float, lambda v: 0 <= v < 1, 'a fraction in [0, 1)')  # named for what they accept
above_zero_below_one = _number(float, lambda v: 0 < v < 1, 'a fraction in (0, 1)')
above_zero_to_one = _number(float, lambda v: 0 < v <= 1, 'a fraction in (0, 1]')
one_or_two = _number(int, lambda v: v in (1, 2), '1 or 2')


def path(text):
    """An option naming a file or folder: any non-empty text."""
    if not text:
        raise argparse.ArgumentTypeError('the path is empty: give a name')
    return text


def output_file(text):
    """An option naming a file to write: any non-empty text, - for stdout."""
    return '/dev/stdout' if text == '-' else path(text)


def count(n, word):
    """n things in words: '1 epoch', '2 epochs', '1,024 characters'."""
    return f'{n:,} {word}{"" if n == 1 else "s"}'


def option_name(dest):
    """The option of an argparse destination: 'dynamic_lr' -> '--dynamic-lr'."""
    return '--' + dest.replace('_', '-')


def boolean(text):
    """true/false (also yes/no, 1/0)."""
    value = {'true': True, 'yes': True, '1': True, 'false': False, 'no': False, '0': False}.get(text.lower())
    if value is None:
        raise argparse.ArgumentTypeError(f'{text!r} is not true or false')
    return value


def choice(*values):
    """An option type that takes one of the given strings; its metavar ('{a,b}') shows them in --help."""

    def parse(text):
        if text not in values:
            raise argparse.ArgumentTypeError(f'{text!r} is not one of {", ".join(values)}')
        return text

    parse.metavar = '{' + ','.join(values) + '}'
    return parse


# The options naming a model and where it runs, and their defaults: the shipped model, on the CPU; the lookup
# table the weights hold, or the one beside them (util/model.py).
MODEL_DEFAULTS = {'weights': os.path.join(SAVES, 'ShakespeareNet.npz'), 'lookup': None, 'device': 'cpu'}


def add_model_options(parser):
    """The option group naming a trained model: --weights and --lookup, the shipped model by default."""
    g = parser.add_argument_group('model')
    g.add_argument(
        '--weights',
        type=path,
        default=MODEL_DEFAULTS['weights'],
        help='weights file: an .npz of this repo, or a .json saved by the original project (default '
        'saves/ShakespeareNet.npz)',
    )
    g.add_argument(
        '--lookup',
        type=path,
        default=MODEL_DEFAULTS['lookup'],
        help='lookup table saved with the weights (default: the one the weights file holds, as this '
        'repo\'s training saves it, else ShakespeareLookup.json beside the weights; the original\'s .json '
        'weights need it)',
    )
    g.add_argument(
        '--device',
        type=choice('cpu', 'cuda'),
        default=MODEL_DEFAULTS['device'],
        metavar='{cpu,cuda}',
        help='run the model on the CPU or on an NVIDIA GPU through CuPy (default %(default)s). The GPU '
        'is for training and for many streams side by side (--num-samples, --blocks); one stream at a time '
        '(a sample, a streamed score) is a chain of tiny steps that leaves a GPU idle: the CPU is the better '
        'choice for it',
    )
    return g


def open_device(name):
    """What --device name runs on (devices.open_device: None for the CPU); a UserError if it cannot be used.
    Call it before any work."""
    from util import devices  # here: only the scripts that run the model need it

    return devices.open_device(name)
