"""Where every script starts: each imports this module first, before numpy, and that is all it does.

Ctrl-C, SIGTERM or SIGHUP while a script starts (Python importing argparse, numpy, ...) is held until cli.run
begins, and then stops the script as it does at any later moment: one line, status 128 + the signal (130, 143,
129). Raised inside numpy's import, Ctrl-C would end as numpy's ImportError about its C extensions instead,
and SIGTERM would end the process with no word. A process started with a signal ignored keeps it ignored; a
library or a test that does not import this module keeps its handlers.
"""

import os
import signal
import sys

held = []  # the signals that came while the script started
HELD = {
    signal.SIGINT: signal.default_int_handler,
    signal.SIGTERM: signal.SIG_DFL,
    signal.SIGHUP: signal.SIG_DFL,
}


def _hold(signum, frame):
    held.append(signum)


def release():
    """Give the signals back (cli.run calls this as it begins). Returns the first that came while the script
    started, or None."""
    for s, usual in HELD.items():
        if signal.getsignal(s) is _hold:
            signal.signal(s, usual)
    return held[0] if held else None


def _on_uncaught(kind, value, tb):
    """Ctrl-C where it is not held (a process that started with another handler): one line, status 130."""
    if issubclass(kind, KeyboardInterrupt):
        name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else 'python'
        try:
            sys.stderr.write(f'{name}: interrupted (Ctrl-C)\n')
            sys.stderr.flush()
        except (OSError, ValueError, AttributeError):
            pass
        os._exit(130)
    sys.__excepthook__(kind, value, tb)


for _s, _usual in HELD.items():
    if signal.getsignal(_s) is _usual:
        signal.signal(_s, _hold)
sys.excepthook = _on_uncaught
