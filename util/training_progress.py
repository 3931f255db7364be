"""What _training.py's loop shows and hears: its progress line (step, epoch, smoothed loss, speed and time
left, redrawn with '\r' on stdout when it is a terminal; in a file or a pipe, where a redrawn line would be a
pile of lines, there is none, as in the other scripts), the clock of the run's training time, and the Stopper
that turns the signals which end a training into a checkpoint.
"""

import signal
import sys
import time

from util import cli
from util.progress import fit, is_terminal
from util.training_report import nats


class TrainingProgress:
    """The progress line (step, epoch, smoothed loss, speed, time left), at most twice a second; the training
    speed (over the steps alone, not the checkpoints) and the clock of the run's training time."""

    def __init__(self, quiet):
        self.quiet, self.shown, self.smooth = quiet or not is_terminal(sys.stdout), 0.0, None
        self.on_screen = False  # a line is drawn, not yet ended
        self.restart()

    def restart(self):
        """A new epoch: the mean loss and the speed start again."""
        self.t0, self.chars, self.step_seconds, self.loss_sum, self.n = time.time(), 0, 0.0, 0.0, 0

    def lap(self):
        """Seconds since the last lap (or restart)."""
        now = time.time()
        seconds, self.t0 = now - self.t0, now
        return seconds

    def add(self, loss, chars, seconds):
        self.chars += chars
        self.step_seconds += seconds
        self.loss_sum += loss
        self.n += 1
        self.smooth = loss if self.smooth is None else 0.98 * self.smooth + 0.02 * loss

    def rate(self):
        """Characters trained per second in this epoch's steps (None before a step)."""
        return self.chars / max(self.step_seconds, 1e-9) if self.n else None

    def mean_loss(self):
        return self.loss_sum / self.n if self.n else None

    def show(self, run, steps_left):
        if self.quiet or time.time() - self.shown < 0.5:
            return
        self.shown = time.time()
        s, p = run.settings, run.pos
        left = steps_left * s['chunks'] * s['window'] / self.rate()
        self.on_screen = True
        line = (
            f'step {p.step:6d}  epoch {run.epoch():6.3f}  loss {nats(self.smooth)}  '
            f'{self.rate():6.0f} chars/s  {left / 60:6.1f} min left '
        )
        cli.write('\r' + fit(line, sys.stdout))

    def end_line(self):
        """'\n' where a progress line is drawn (what follows it starts on a line of its own), else ''."""
        on_screen, self.on_screen = self.on_screen, False
        return '\n' if on_screen else ''


class Stopped(Exception):
    """A signal arrived during validation or sampling, which then stop at once (Stopper.check)."""


class Stopper:
    """Turns Ctrl-C, SIGTERM and SIGHUP (a closed terminal, a dropped connection) into a flag that the
    training loop reads after every step, and that check() turns into Stopped inside validation and sampling
    (which change nothing of the run, so the run stops as it was before them)."""

    def __init__(self):
        self.signal = None
        self.previous = {
            s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        }

    def handle(self, signum, frame):
        if self.signal is None:  # the first one says why the run stops, and its status
            self.signal = signal.Signals(signum).name

    def check(self, done=None):
        """Raise Stopped if a signal has arrived (done: how far the caller is, as a progress callable gets
        it)."""
        if self.signal:
            raise Stopped(self.signal)

    def restore(self):
        for s, h in self.previous.items():
            signal.signal(s, h)
