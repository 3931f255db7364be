"""The repository's own folders, which no output goes into unless asked: its files are there (the README's
pictures, the shipped model, the code), and a run or a picture would replace one or go among them."""

import os

from util import cli
from util.cli import ROOT
from util.errors import UserError

# The repository's own folders (its files are in these; '' is the repository's folder itself).
REPO_FOLDERS = (
    '',
    '.ci',
    '.git',
    'docs',
    'explorer',
    'extras',
    'images',
    'logs',
    'recipes',
    'saves',
    'tests',
    'util',
)


def _own_folder(folder):
    """Which of the repository's folders folder is: (name, inside) for one of its own folders or a folder
    inside it ('tests', True for tests/robustness), ('', False) for the repository's folder itself; None for
    any other (a run folder such as runs/mytext)."""
    real = os.path.realpath(folder)
    for name in REPO_FOLDERS[1:]:
        own = os.path.realpath(os.path.join(ROOT, name))
        if real == own or real.startswith(own + os.sep):
            return name, real != own
    return ('', False) if real == os.path.realpath(ROOT) else None


def in_repo(folder):
    """Whether folder is the repository's, one of its own folders (saves/, images/, ...) or a folder inside
    one (not a run folder such as runs/mytext): a default output name must not land there over one of its
    files, nor a run."""
    return _own_folder(folder) is not None


def in_own_folder(folder):
    """Whether folder is one of the repository's own folders or inside one, not the repository's folder
    itself (which the README's commands write their pictures into)."""
    return _own_folder(folder) not in (None, ('', False))


OVERWRITE_REPO = '--overwrite-repo-files'


def add_overwrite_repo(parser):
    """The option that lets a script write into the repository's own folders."""
    parser.add_argument(
        OVERWRITE_REPO,
        action='store_true',
        help='let an output go into the repository\'s own folders (images/, saves/, ...) and replace its '
        'files there, as RESULTS.md\'s commands that draw its figures again do (default: refused)',
    )


def check_not_into_repo(path, option, allowed=False):
    """Refuse an output file inside one of the repository's own folders (images/, saves/, tests/, ...), where
    it would replace one of its files (the README's pictures, the shipped model) or go among them, unless
    allowed (OVERWRITE_REPO). The repository's folder itself is left to the user: the README's commands write
    their pictures there (neurons.html, curve.svg; git ignores them), and no file there is of a kind a script
    writes."""
    folder = os.path.dirname(os.path.realpath(path))
    if allowed or cli.is_stdout(path) or not in_own_folder(folder):
        return  # (stdout: the shell made the file already)
    own = os.path.relpath(folder, ROOT)
    raise UserError(
        f'{option} {path} is in the repository\'s own folder {own}/, among its files (it could replace one): '
        f'give a path outside it, e.g. {os.path.basename(path)} in the current folder, or add '
        f'{OVERWRITE_REPO} to regenerate the repository\'s own files'
    )


def where_in_repo(folder):
    """How to name a folder of in_repo: "the repository's folder", "the repository's own folder docs/" or
    "inside the repository's own folder tests/"."""
    name, inside = _own_folder(folder)
    if not name:
        return 'the repository\'s folder'
    return f'{"inside " * inside}the repository\'s own folder {name}/'
