"""The one error type for what the user must fix."""


class UserError(Exception):
    """Something the user must fix: a missing or damaged file, a bad option, a machine that cannot do the
    work. Raised anywhere; cli.run prints its message as one line (`script: error: message`) and exits with
    status 2. The message says what is wrong and how to fix it. Subclasses exist only where a caller branches
    on them."""


class CorpusError(UserError, ValueError):
    """A corpus or lookup table that cannot be used; the message says what is wrong and how to fix it."""
