"""Convert a weights file between this repo's .npz and the original project's .json, the direction chosen by
the file names' extensions:

    python _convert.py saves/ShakespeareNet.npz /tmp/ShakespeareNet.json   # for the original's scripts
    python _convert.py ShakespeareNet.json ShakespeareNet.npz              # a model saved by the original

The lookup table needs no conversion: both projects read the same JSON list of characters.
"""

import util.startup  # noqa: F401  first: Ctrl-C while the script starts is one line (util/startup.py)
from util import cli, weights
import argparse
import os

import data
from util import files, repo, run_folder
import lstm
from util import original
from util.errors import UserError

HELP_EPILOG = '''\
The original's format (see util/original.py): a JSON list [[w, b], ..., [[w, b]]], one [w, b] per LSTM
layer with w (4H, D + H) the transpose of this repo's W and b a (4H, 1) column, then the output layer wrapped
once more; every number a float64. A round trip changes nothing: a float32 value is exact in float64. A
.json -> .npz conversion keeps the original's float64 values as float64 (its model then gives here what it
gives in the original, not rounded to float32; the scripts run it in float64), and stores float32 where every
value is a float32 value (a model that went out from this repo comes back as it was). --float32 rounds to
float32.'''


def parse_args(argv):
    p = cli.Parser(
        description='Convert a weights file between this repo\'s .npz and the original project\'s '
        '.json, the direction chosen by the extensions.',
        epilog=HELP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        'input', type=cli.path, help='weights to read: an .npz of this repo, or a .json of the original'
    )
    p.add_argument(
        'output', type=cli.path, help='file to write: .json for an .npz input, .npz for a .json input'
    )
    p.add_argument(
        '--force', action='store_true', help='replace the output file if it exists (default: refuse)'
    )
    p.add_argument(
        '--float32',
        action='store_true',
        help='.json -> .npz: store float32 even where the values are float64 (half the size, and '
        'faster; the original\'s results then change in the last digits)',
    )
    p.add_argument(
        '--lookup',
        type=cli.path,
        default=None,
        help='the lookup table that goes with the weights (default: none): checked against them, and '
        'for .json -> .npz stored in the .npz, so that another table is refused later (the '
        'original\'s format has no place for it)',
    )
    repo.add_overwrite_repo(p)
    return p.parse_args(argv)


def extension(path):
    return os.path.splitext(os.fspath(path))[1].lower()


def check_not_a_runs_file(path):
    """Refuse to write a run's weights file, in its folder or its best/ (saves/ is one): they go with its
    checkpoint and lookup table, and its training writes them."""
    real = os.path.realpath(path)
    folder = os.path.dirname(real)
    run = run_folder.parent_run(folder) or (folder if run_folder.holds_run(folder) else None)
    if run is None:
        return
    if files.same_file(real, os.path.join(folder, run_folder.WEIGHTS)):  # (also where case is ignored)
        raise UserError(
            f'output {path} is the weights file of the run in {run}, which its training writes beside its '
            'checkpoint and lookup table: write it into another folder'
        )


def check_weights(path):
    """--force replaces weights, and only weights: refuse an existing output that does not load as weights (a
    run's checkpoint, a lookup table, any other file)."""
    try:
        weights.load_params(path)
    except files.ModelFileError as e:
        raise UserError(f'{e}; --force replaces only weights: give another name') from None


def main(argv=None):
    args = parse_args(argv)
    src, dst = extension(args.input), extension(args.output)
    to_json = src == '.npz'
    if src not in ('.npz',) + original.SUFFIXES:
        raise UserError(
            f'{args.input}: the input should end in .npz (this repo\'s weights) or .json (the original\'s)'
        )
    if dst != ('.json' if to_json else '.npz'):
        raise UserError(
            f'{args.output}: {src} converts to {".json" if to_json else ".npz"}: name the output so'
        )
    if args.float32 and to_json:
        raise UserError('--float32 is for .json -> .npz: the original\'s format is always float64')
    repo.check_not_into_repo(args.output, 'output', args.overwrite_repo_files)
    check_not_a_runs_file(args.output)
    # Never one, even with --force.
    files.check_writable(args.output, 'output', inputs=[args.input, args.lookup])
    if os.path.exists(args.output) and not files.writes_in_place(args.output):
        if not args.force:
            raise UserError(f'{args.output} exists: give another name, or --force to replace it')
        check_weights(args.output)
    status = cli.status_stream(args.output)  # asked before the file is replaced
    chars = None if args.lookup is None else data.load_lookup(args.lookup)
    params, _ = weights.load_params(args.input, dtype='float32' if args.float32 else None, chars=chars)
    if to_json:
        original.write(args.output, params)
    else:
        weights.save_params(args.output, params, chars=chars)
    V, H, n_layers = lstm.sizes(params)
    dtype = 'float64' if to_json else params['dense.W'].dtype
    layers = f'{cli.count(n_layers, "LSTM layer")} of {cli.count(H, "unit")}'
    held = table_note(to_json, chars)
    print(f'wrote {args.output}: {layers}, {V} characters, {dtype}{held}', file=status)
    return 0


def table_note(to_json, chars):
    """What the line of a written file says of its lookup table: where it holds none, that the scripts then
    need --lookup (or the table beside it, as ShakespeareLookup.json)."""
    if to_json:
        return (
            "; it holds no lookup table (the original's format has none): give the scripts --lookup with it"
        )
    if chars is None:
        return '; it holds no lookup table (--lookup stores one): give the scripts --lookup with it'
    return ''


if __name__ == '__main__':
    cli.run(main)
