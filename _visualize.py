"""Look inside the model: one neuron's activation on every character of a text, and the neurons that follow
features of the text.

    python _visualize.py                              # the viewer (tkinter) over saves/sample.txt
    python _visualize.py --layer 2 --state c --neuron 17
    python _visualize.py --html neurons.html          # one self-contained page to explore in a browser
    python _visualize.py --find --text valid.txt      # rank neurons by how well they follow text features

The background of each character is the activation of the chosen neuron after reading it: -1 white, 0 pink, +1
red (newlines stay white). Choose the layer, the hidden state h or the cell state tanh(c), and the neuron by
its index, or step through them with Previous and Next.
"""

import util.startup  # noqa: F401  first: Ctrl-C while the script starts is one line (util/startup.py)
from util import cli, memory, model, options
import functools
import os

from explorer import analysis
import data
from explorer import figures
from util import files, kinds, repo
import lstm
from util.errors import UserError
from util.progress import Progress
from explorer import viewer


class DefaultName(str):
    """A file name an option takes when none is given: told apart from the same name given."""


SATURATION_SVG = DefaultName('saturation.svg')  # --saturation without a file name, in the current folder
DEFAULT_TEXT = os.path.join(cli.SAVES, 'sample.txt')
# The options of some outputs only: their defaults, set once check_options has seen which were given.
VIEW_DEFAULTS = {'layer': 1, 'state': 'h', 'neuron': 0, 'html_chars': 3000, 'top': 5}
VIEW_OPTIONS = (  # options, the outputs they go with, and whether the command line asks for one of those
    (
        ('layer', 'state', 'neuron'),
        'the viewer or --html (the neuron shown first)',
        lambda a: a.html or viewing(a),
    ),
    (('html_chars',), '--html', lambda a: a.html),
    (('top',), '--find or --html (the neurons listed per feature)', lambda a: a.find or a.html),
)


def _add_view_options(p):
    """Which neuron the viewer and the page show first."""
    g = p.add_argument_group('view (the viewer and --html)')
    g.add_argument(
        '--layer', type=cli.positive_int, help=f'LSTM layer to show first (default {VIEW_DEFAULTS["layer"]})'
    )
    g.add_argument(
        '--state',
        choices=['h', 'c'],
        help=f'h: hidden state; c: tanh of the cell state (default {VIEW_DEFAULTS["state"]})',
    )
    g.add_argument(
        '--neuron',
        type=cli.non_negative_int,
        help=f'neuron to show first (default {VIEW_DEFAULTS["neuron"]})',
    )


def parse_args(argv):
    p = cli.Parser(description='Show one neuron\'s activation on every character of a text.')
    g = p.add_argument_group('data')
    g.add_argument(
        '--text',
        type=cli.path,
        default=DEFAULT_TEXT,
        help='UTF-8 text to run the model over (default saves/sample.txt)',
    )
    cli.add_model_options(p)
    _add_view_options(p)
    g = p.add_argument_group('output (instead of the viewer)')
    g.add_argument(
        '--html',
        type=cli.output_file,
        metavar='FILE',
        help='write one self-contained HTML page (- for stdout) to explore '
        'the neurons; FILE#layer=2&state=c&neuron=240 opens it at that neuron (default: none, the viewer)',
    )
    g.add_argument(
        '--html-chars',
        type=cli.positive_int,
        help='the page shows at most this many characters of the text '
        f'(default {VIEW_DEFAULTS["html_chars"]})',
    )
    g.add_argument('--find', action='store_true', help='print the neurons that best follow each feature')
    g.add_argument(
        '--saturation',
        metavar='SVG',
        type=cli.output_file,
        nargs='?',
        const=SATURATION_SVG,
        help='print how often each gate is saturated, and draw it per cell into this SVG file (the '
        'figure of Karpathy et al., 2015; without a file name, %(const)s in the current folder)',
    )
    g.add_argument(
        '--periodic-svg',
        metavar='SVG',
        type=cli.output_file,
        help='with --find: draw the mean activation '
        'by position in the line of the best periodic cells and of the best line-position cell '
        '(default: none)',
    )
    g.add_argument(
        '--top',
        type=cli.positive_int,
        help=f'with --find or --html: neurons listed per feature (default {VIEW_DEFAULTS["top"]})',
    )
    repo.add_overwrite_repo(g)
    return p.parse_args(argv)


def load_inputs(args):
    """The model, the text and its indices; every problem is a one-line error."""
    params, chars = model.load(args.weights, args.lookup)
    try:
        ids, _ = data.read_corpus(args.text, chars, 'text')
    except data.CorpusError as e:
        if args.text != DEFAULT_TEXT:
            raise
        raise UserError(f'{e} (the text read by default: give this model\'s own with --text)') from None
    _, H, n_layers = lstm.sizes(params)
    if args.layer > n_layers:
        raise UserError(f'--layer {args.layer}: the model has {cli.count(n_layers, "layer")}')
    if args.neuron >= H:
        raise UserError(f'--neuron {args.neuron}: the model has {H} neurons per layer (0 to {H - 1})')
    text = data.decode(ids, chars)
    if args.periodic_svg and not analysis.line_positions_vary(text):
        raise UserError(no_profile(args.text))
    return params, ids, text


def no_profile(path):
    """The line for --periodic-svg on a text whose line position never varies (line_positions_vary)."""
    return (
        f'--periodic-svg: {path} has no line of two characters or more, or fewer than 3 characters: it has '
        'no periodic or line-position cell to draw; give a text of several lines of some length'
    )


def print_found(found, where, out=None):
    """The list of --find, on out (stdout by default)."""
    say = functools.partial(print, file=out)
    say(
        f'neurons that follow features of {where} (r: correlation over the text; |r| near 1 is a close match)'
    )
    for name, f in found.items():
        say(f'\n{name}: {f["description"]}')
        if not f['present']:
            say('  (absent from this text)')
        for layer, state, k, r, P in f['best']:
            what = analysis.state_label(state)
            score = f'r = {r:+.3f}' if P is None else f'R = {r:.3f}  period {P}'  # R: unsigned, partial
            say(f'  layer {layer} {what:<7} neuron {k:3d}   {score}')
        if 'control' in f and f['present']:
            lo, mid, hi = f['periods']
            say(
                f'  periods {lo} to {mid} (two cycles or more in a typical line); with the line positions '
                f'shuffled (chance), the best R of any neuron is {f["control"]:.3f}'
            )
            for layer, state, k, r, P in f['long']:
                say(
                    f'  over all periods up to {hi}, the best is layer {layer} {analysis.state_label(state)} '
                    f'neuron {k} (R = {r:.3f}, period {P}): a period that long also fits a steady rise in '
                    'the line'
                )


def print_saturation(sat, where, out=None, low=0.1, high=0.9):
    """The table of --saturation, on out (stdout by default)."""
    say = functools.partial(print, file=out)
    say(
        f'gate saturation over {where}: the fraction of steps with a gate below {low} (left) or above {high} '
        '(right), averaged over the cells; and how many cells are saturated more than half of the time'
    )
    say(
        f'{"layer":>5} {"gate":<7} {"left":>6} {"right":>6} {"neither":>8} {"cells mostly left":>17} '
        f'{"cells mostly right":>18}'
    )
    for (n, g), (left, right) in sat.items():
        say(
            f'{n:>5} {g:<7} {left.mean():6.3f} {right.mean():6.3f} {1 - left.mean() - right.mean():8.3f} '
            f'{int((left > 0.5).sum()):>13} / {len(left)} {int((right > 0.5).sum()):>14} / {len(right)}'
        )


def write(path, content):
    """Write one output file (a problem is a UserError: one line)."""
    files.write_text(path, content)


def find(args, params, ids, text):
    """--find (and --periodic-svg): print the neurons that follow each feature, and draw the periodic ones."""
    with Progress('finding neurons', len(ids)) as progress:
        found = analysis.find_neurons(params, ids, text, args.top, progress=progress, device=args.device)
    print_found(found, f'{args.text} ({cli.count(len(text), "character")})', args.say)
    if args.periodic_svg:
        per, ramp = found['periodic in line'], found['line position']
        cells = [
            (layer, s, k, f'R {r:.2f} at period {P}')
            for layer, s, k, r, P in per['best'][:2]
            if per['present']
        ]
        cells += [(layer, s, k, f'line position, r {r:+.2f}') for layer, s, k, r, _ in ramp['best'][:1]]
        if not cells:  # (load_inputs refuses such a text before any work)
            raise UserError(no_profile(args.text))
        with Progress('mean activation by position', len(ids)) as progress:
            means, counts = analysis.position_profile(
                params, ids, text, cells, progress=progress, device=args.device
            )
        write(
            args.periodic_svg,
            figures.position_profile_svg(
                means,
                counts,
                cells,
                'Mean activation by position in the line: the best periodic cells, and a line-position cell',
            ),
        )
        print(f'wrote {args.periodic_svg}', file=args.say)


PAGE_BYTES_PER_CHAR = 24_000  # memory the page takes, measured: 2.9 GB for 120,000


def html_page(args, params, ids, text):
    """--html: the page over the first --html-chars characters of the text."""
    if len(ids) > args.html_chars:
        print(
            f'the page shows the first {args.html_chars:,} of {len(ids):,} characters (--html-chars)',
            file=args.say,
        )
        ids, text = ids[: args.html_chars], text[: args.html_chars]
    memory.check_fits(
        PAGE_BYTES_PER_CHAR * len(ids), f'--html over {cli.count(len(ids), "character")} (--html-chars)'
    )
    _, H, n_layers = lstm.sizes(params)
    found = analysis.find_neurons(params, ids, text, args.top, device=args.device)
    acts = analysis.activations(params, ids, device=args.device)
    write(
        args.html,
        figures.explorer_page(text, acts, H, n_layers, found, (args.layer, args.state, args.neuron)),
    )
    if cli.is_stdout(args.html):
        print('wrote the page to stdout', file=args.say)
        return
    print(
        f'wrote {args.html}: open it in a browser (add #layer={n_layers}&state=c&neuron={min(240, H - 1)} to '
        'its address to open it at that neuron)',
        file=args.say,
    )


def saturation(args, params, ids, text):
    """--saturation: print how often the gates saturate, and draw it."""
    with Progress('gate saturation', len(ids)) as progress:
        sat = analysis.gate_saturation(params, ids, progress=progress, device=args.device)
    print_saturation(sat, f'{args.text} ({cli.count(len(text), "character")})', args.say)
    write(
        args.saturation,
        figures.saturation_svg(
            sat, f'Gate saturation over {os.path.basename(args.text)} ({cli.count(len(text), "character")})'
        ),
    )
    print(f'wrote {args.saturation}', file=args.say)


def viewer_error(e):
    """The one line for a viewer that cannot open (no tkinter, no display), or None for another error."""
    if isinstance(e, ImportError):
        return (
            'tkinter is not installed: install your system\'s python3-tk package, or write the page '
            'with --html neurons.html and open it in a browser'
        )
    if type(e).__name__ == 'TclError':
        return (
            f'cannot open a window ({e}): run it on a desktop, set DISPLAY, or write the page with '
            '--html neurons.html and open it in a browser'
        )
    return None


def open_viewer(open_window):
    """open_window() (the viewer, or the try before any work), with its failure to open as one line."""
    try:
        open_window()
    except Exception as e:  # ImportError: no tkinter; tkinter.TclError: no display
        why = viewer_error(e)
        if why is None:
            raise
        raise UserError(why) from None


def show_viewer(args, params, ids, text):
    """The tkinter viewer (the default). A window is tried first: no display is said before the work."""
    open_viewer(viewer.try_window)
    _, H, n_layers = lstm.sizes(params)
    itemsize = params['dense.W'].dtype.itemsize
    # An estimate: h and tanh(c) of every layer, held twice while they are joined, and a tkinter tag a
    # character.
    per_char = 4 * n_layers * H * itemsize + 2_000
    memory.check_fits(per_char * len(ids), f'the viewer over {cli.count(len(ids), "character")} (--text)')
    acts = analysis.activations(params, ids, device=args.device)
    open_viewer(lambda: viewer.show(text, acts, H, n_layers, args.layer, args.state, args.neuron))


def check_outputs(args):
    """Refuse, before any work, an output that cannot be written, that is an input, or that another output
    also names (the second would replace the first). Returns where the script's lines go: stderr where an
    output is stdout (`--html /dev/stdout > page.html`), so that none of them lands inside it."""
    inputs = [args.text, args.weights, args.lookup, figures.TEMPLATE]
    outputs = [
        (option, path, kind)
        for option, path, kind in (
            ('--html', args.html, kinds.HTML),
            ('--saturation', args.saturation, kinds.SVG),
            ('--periodic-svg', args.periodic_svg, kinds.SVG),
        )
        if path is not None
    ]
    for j, (option, path, kind) in enumerate(outputs):
        repo.check_not_into_repo(path, option, args.overwrite_repo_files)
        files.check_writable(path, f'{option} file', kind, inputs)
        for other, other_path, _ in outputs[:j]:
            if files.same_file(path, other_path):
                raise UserError(
                    f'{other} and {option} both name {path}: the second would replace the first; give '
                    'two names'
                )
    return cli.status_stream(*(path for _, path, _ in outputs))


def viewing(args):
    """Whether the command opens the viewer: it asks for no other output."""
    return not (args.find or args.html or args.saturation)


def check_options(args):
    """Refuse an option given without the output it goes with (it would do nothing); then set the defaults."""
    if args.periodic_svg is not None and not args.find:
        raise UserError('--periodic-svg goes with --find')
    for names, outputs, asked in VIEW_OPTIONS:
        if not asked(args):
            options.refuse_unused(options.given(args, names), outputs)
    options.fill_defaults(args, VIEW_DEFAULTS)


def main(argv=None):
    args = parse_args(argv)
    check_options(args)
    if isinstance(args.saturation, DefaultName) and repo.in_own_folder('.'):
        raise UserError(
            f'--saturation: the current folder holds the repository\'s own files: give the figure\'s file '
            f'name (without one it would be written here as {SATURATION_SVG})'
        )
    args.device = cli.open_device(args.device)  # the ops: None for the CPU
    args.say = check_outputs(args)
    params, ids, text = load_inputs(args)
    if args.find:
        find(args, params, ids, text)
    if args.html:
        html_page(args, params, ids, text)
    if args.saturation:
        saturation(args, params, ids, text)
    if viewing(args):
        show_viewer(args, params, ids, text)
    return 0


if __name__ == '__main__':
    cli.run(main)
