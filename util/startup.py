"""Where every script starts: each imports this module first, before numpy, and that is all it does.

Ctrl-C while a script starts (Python importing argparse, numpy, ...) is held until cli.run begins, and then stops
the script as Ctrl-C at any later moment does: one line, status 130. Raised inside numpy's import, it would end as
numpy's ImportError about its C extensions instead. A process started with Ctrl-C ignored keeps it ignored; a
library or a test that does not import this module keeps its Ctrl-C.
"""

import os
import signal
import sys

held = []  # the Ctrl-C's that came while the script started


def _hold(signum, frame):
    held.append(signum)


def release():
    """Give Ctrl-C back (cli.run calls this as it begins). Returns whether one came while the script started."""
    if signal.getsignal(signal.SIGINT) is _hold:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    return bool(held)


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


if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
    signal.signal(signal.SIGINT, _hold)
sys.excepthook = _on_uncaught
