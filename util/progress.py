"""The progress line of the scripts that read a long text (done, rate, time left), on a terminal only; and the
test of whether a stream is a terminal, which _training.py's own line (util/training_progress.py) uses too."""

import os
import sys
import time


class Progress:
    """A progress line on stderr (done, rate, time left), shown only when stderr is a terminal.

    In a pipe or a file nothing is written, so that what a script prints there is its result only. Call it
    with the count done so far, as often as is convenient (it redraws at most about 4 times a second), and
    close it (or use it in a `with` block) to clear the line.
    """

    interval = 0.25  # seconds between redraws

    def __init__(self, what, total, unit='chars', stream=None):
        self.what, self.total, self.unit = what, max(int(total), 1), unit
        self.stream = sys.stderr if stream is None else stream
        self.shown = is_terminal(self.stream)
        self.start = self.drawn = time.monotonic()
        self.width = 0  # of the line on screen, to clear it

    def __call__(self, done):
        now = time.monotonic()
        if not self.shown or now - self.drawn < self.interval:
            return
        self.drawn = now
        rate = done / max(now - self.start, 1e-9)
        left = f'{_duration((self.total - done) / rate)} left' if rate > 0 else ''
        self._draw(
            f'{self.what}: {done:,} of {self.total:,} {self.unit} ({100 * done / self.total:.0f}%), '
            f'{rate:,.0f} {self.unit}/s, {left}'
        )

    def restart(self):
        """Count the time and the rate from now: after a first part of the work, measured apart."""
        self.start = self.drawn = time.monotonic()

    def close(self):
        if self.width:
            self._draw('')
        self.shown = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _draw(self, line):
        line = fit(line, self.stream)
        try:
            self.stream.write('\r' + line.ljust(self.width) + ('' if line else '\r'))
            self.stream.flush()
        except (OSError, ValueError):  # a terminal gone away: the work goes on without it
            self.shown = False
        self.width = len(line)


def fit(line, stream):
    """line cut to the width of the terminal that stream writes to, less one column: a longer line wraps, and
    '\r' would then redraw only its last row, leaving a new row on the screen at every redraw."""
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):  # not a terminal, or no size known
        return line
    return line[: max(columns - 1, 1)] if columns > 0 else line


def is_terminal(stream):
    """Whether stream is an open terminal (not a pipe, a file, or closed)."""
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):  # a closed or missing stream
        return False


def _duration(seconds):
    """A rough time: '42 s', '3.5 min', '2.1 h'."""
    if seconds < 60:
        return f'{seconds:.0f} s'
    return f'{seconds / 60:.1f} min' if seconds < 3600 else f'{seconds / 3600:.1f} h'
