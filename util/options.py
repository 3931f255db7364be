"""Options that go with another option or output: refused where given without it (they would do nothing),
else set to their defaults. The scripts' tables say which go with what (_evaluate.py's MODES, _visualize.py's
VIEW_OPTIONS)."""

from util.cli import option_name
from util.errors import UserError


def given(args, dests):
    """The options among dests (argparse destinations whose default is None) that the command line gave."""
    return [option_name(dest) for dest in dests if getattr(args, dest) is not None]


def refuse_unused(options, goes_with, instead=None):
    """Refuse options given without what they go with (they would do nothing), in one line: options, their
    names (none: nothing to refuse); instead, another fix than leaving them out."""
    if options:
        one = len(options) == 1
        fix = f'{instead}, or ' if instead else ''
        them = 'it' if one else 'them'
        raise UserError(f'{" and ".join(options)} go{"es" * one} with {goes_with}: {fix}leave {them} out')


def fill_defaults(args, defaults):
    """Set each option of defaults (destination -> value) that the command line did not give."""
    for dest, value in defaults.items():
        if getattr(args, dest) is None:
            setattr(args, dest, value)
