"""Draw the learning curve of a training run (training and validation loss per epoch) as an SVG picture.

    python _plot.py runs/mytext/training_log.csv                             # runs/mytext/learning_curve.svg
    python _plot.py saves/training_log.csv --compare logs/run-J-*.csv        # beside run J's validation loss
    python _plot.py saves/training_log.csv --out images/learning_curve.svg --overwrite-repo-files
                                                                   # the README's picture, drawn again

Plain SVG written by hand: no plotting library is needed, and it shows in any browser and on GitHub.
"""

import util.startup  # noqa: F401  first: Ctrl-C while the script starts is one line (util/startup.py)
from util import cli, npz
import csv
import io
import math
import os

from util import files, kinds, reading, repo, run_folder, text_check
from explorer import svg
from util.errors import UserError


def parse_args(argv):
    p = cli.Parser(description='Draw training and validation loss per epoch from a training_log.csv as SVG.')
    p.add_argument('log', help='training_log.csv written by _training.py')
    p.add_argument(
        '--out',
        type=cli.output_file,
        default=None,
        help=f'SVG file to write, - for stdout (default: '
        f'{DEFAULT_NAME} beside the log, or in the current folder for a log in the repository\'s own '
        'folders, saves/ and logs/)',
    )
    p.add_argument(
        '--compare',
        action='append',
        default=[],
        metavar='LOG',
        help="also draw this run's validation loss, dashed (repeat for more runs; default: none)",
    )
    p.add_argument(
        '--ymax',
        type=cli.positive_float,
        help='top of the loss axis, to look closely at the later epochs (default: the highest loss)',
    )
    p.add_argument(
        '--title',
        help='title of the picture (default: the run\'s size and corpus, read from the '
        f'checkpoint beside the log, e.g. "2x512 LSTM on tiny Shakespeare"; "{NEUTRAL_TITLE}" where '
        'there is none)',
    )
    repo.add_overwrite_repo(p)
    return p.parse_args(argv)


DEFAULT_NAME = 'learning_curve.svg'
NEUTRAL_TITLE = 'Training and validation loss'


def default_out(log):
    """The picture beside the log (a run folder), or in the current folder for a log read from a pipe or in
    the repository's own folders: never over one of the repository's files (images/learning_curve.svg). A
    current folder that is one of those too (images/) is a one-line error."""
    folder = os.path.dirname(os.path.abspath(log))
    piped = files.writes_in_place(log)  # a pipe, /dev/stdin: no run folder to write beside
    if not piped and not repo.in_repo(folder):
        return os.path.join(os.path.dirname(log), DEFAULT_NAME)
    if repo.in_own_folder('.'):
        why = 'is read from a pipe' if piped else 'is a log of the repository'
        raise UserError(
            f'{log} {why}, and the current folder is one of the repository\'s own folders: give the '
            'picture\'s name with --out'
        )
    return DEFAULT_NAME


def run_title(log):
    """'2x512 LSTM on tiny Shakespeare': the run's size and corpus, read from the metadata of the training
    checkpoint beside the log; NEUTRAL_TITLE where there is no readable checkpoint there."""
    path = os.path.join(os.path.dirname(os.path.abspath(log)), run_folder.CHECKPOINT)
    if not os.path.isfile(path):  # (a FIFO of that name is never opened)
        return NEUTRAL_TITLE
    try:
        _, meta = npz.load(path, 'checkpoint', only_meta=True)
    except files.ModelFileError:
        return NEUTRAL_TITLE
    settings = meta.get('settings')
    if not isinstance(settings, dict):
        return NEUTRAL_TITLE
    layers, hidden, corpus = settings.get('layers'), settings.get('hidden'), settings.get('corpus')
    if not all(type(n) is int and n > 0 for n in (layers, hidden)) or not (
        corpus is None or isinstance(corpus, str) and corpus
    ):
        return NEUTRAL_TITLE
    return f'{layers}x{hidden} LSTM on {"tiny Shakespeare" if corpus is None else os.path.basename(corpus)}'


COLUMNS = ('epoch', 'train_loss', 'val_loss')


def check_row(path, line, row, numbers):
    """An epoch is a finite number >= 0, a loss (a cross-entropy) >= 0 or inf or nan (a run that diverged)."""
    epoch, train, val = numbers
    if not (math.isfinite(epoch) and 0 <= epoch <= 2**53):
        raise UserError(f'{path}, line {line}: the epoch is {row["epoch"]}, not a number of epochs')
    for name, v in (('train_loss', train), ('val_loss', val)):
        if v < 0:
            raise UserError(
                f'{path}, line {line}: {name} is {row[name]}, below zero (a loss is a cross-entropy)'
            )


def read_training_log(path):
    """The epoch rows of a training log: [(epoch, train_loss, val_loss)], in order. A loss that is inf or nan
    (a run that diverged) is kept as it is; what cannot be drawn is a one-line error."""
    rows = []
    raw = reading.read_bytes(
        path,
        'training log',
        run_folder.MAX_LOG_BYTES,
        error=UserError,
        hint=': give the training_log.csv of a run',
    )
    try:
        text = raw.decode('utf-8-sig')  # -sig: Excel's BOM
    except UnicodeDecodeError as e:
        if raw[:2] in text_check.UTF16_MARKS:  # a log saved again by an editor: named, with the fix
            raise text_check.not_utf8(path, 'training log', e.start, raw[:4096]) from None
        raise UserError(f'{path} is not a training log of _training.py (not UTF-8 text)') from None
    text_check.check_not_utf16_or_32(raw[:4096], path, 'training log')
    try:
        reader = csv.DictReader(io.StringIO(text, newline=''))
        if not set(COLUMNS) <= set(reader.fieldnames or ()):
            raise UserError(
                f'{path} is not a training log of _training.py (its first line names no '
                f'{", ".join(COLUMNS)} columns)'
            )
        for row in reader:
            if row.get('val_loss'):
                if any(row[name] is None for name in COLUMNS):
                    raise UserError(f'{path}, line {reader.line_num}: fewer fields than its first line names')
                rows.append(tuple(float(row[name]) for name in COLUMNS))
                check_row(path, reader.line_num, row, rows[-1])
                if len(rows) > 1 and rows[-1][0] <= rows[-2][0]:
                    raise UserError(
                        f'{path}, line {reader.line_num}: the epoch {row["epoch"]} does not follow the one '
                        f'before it ({rows[-2][0]:g}): the log is damaged'
                    )
    except (KeyError, TypeError, ValueError, csv.Error) as e:  # TypeError: a row shorter than the header
        raise UserError(f'{path} is not a training log of _training.py ({e})')
    if not rows:
        raise UserError(f'{path} has no finished epoch yet: draw it once the run has ended its first epoch')
    return rows


def run_name(path):
    """A short label for a log: 'run J' for logs/run-J-....csv, else the file's name."""
    name = os.path.basename(path)
    if name.startswith('run-') and len(name.split('-')) > 2:
        return 'run ' + name.split('-')[1]
    return name


def grid_step(span, magnitude):
    """The step between horizontal grid lines at round values: at most about ten lines over the span, and
    steps that stay visible at the size of the values (a loss of 1e18 is no reason to draw 1e19 lines)."""
    span = max(span, magnitude * 1e-6)
    if span <= 5:
        return 0.05 if span <= 0.5 else 0.1 if span <= 1.0 else 0.2 if span <= 2.0 else 0.5
    unit = 10.0 ** math.floor(math.log10(span / 10))
    return next(m * unit for m in (1, 2, 5, 10) if span / (m * unit) <= 10)


MAX_GRID_LINES = 12  # grid_step gives at most 11 over the axis


def grid_lines(y0, y1):
    """(step, the values of the horizontal grid lines from y0 to y1, at round values). At most MAX_GRID_LINES,
    each finite: near the largest float, y1 plus the tolerance is inf and so is the next line (no endless
    loop)."""
    step = grid_step(y1 - y0, max(abs(y0), abs(y1)))
    v = math.ceil(y0 / step - 1e-9) * step
    lines = []
    while v <= y1 + max(1e-9, step * 1e-6) and math.isfinite(v) and len(lines) < MAX_GRID_LINES:
        lines.append(v)  # (the tolerance: rounding in v)
        v += step
    return step, lines


def round_to_tenth(v, up):
    """v rounded up or down to a tenth; values too large for that are kept as they are."""
    if abs(v) > 1e300:
        return v
    return (math.ceil(v * 10) if up else math.floor(v * 10)) / 10


def loss_text(v):
    """A loss as text: four decimals, or four digits for a loss too large for that."""
    return f'{v:.4f}' if v < 1e6 else f'{v:.4g}'


class Axes:
    """The picture's frame: where a point (epoch, loss) is drawn, the grid, ticks and labels, and the
    curves."""

    left, right, top, bottom = 60, 20, 40, 50

    def __init__(self, width, height, x1, y0, y1):
        self.width, self.height, self.x1, self.y0, self.y1 = width, height, x1, y0, y1
        self.span = max(y1 - y0, 1e-9)

    def X(self, e):
        return self.left + e / max(self.x1, 1e-9) * (self.width - self.left - self.right)

    def Y(self, v):  # far outside the picture: held there (clipped anyway)
        plot_height = self.height - self.top - self.bottom
        return self.top + min(max((self.y1 - v) / self.span, -1e4), 1e4) * plot_height

    def clip(self):
        """The clip path of the curves: the plot area, with a margin for the dots."""
        left, top, width, height = self.left, self.top, self.width, self.height
        plot_area = svg.element(
            'rect',
            x=left - 4,
            y=top,
            width=width - left - self.right + 8,
            height=height - top - self.bottom + 4,
        )
        return f'<clipPath id="plot">{plot_area}</clipPath>'

    def draw(self, out):
        """The loss grid with its labels, the epoch ticks, the two axes and their names."""
        left, right, width, height, bottom, top = (
            self.left,
            self.right,
            self.width,
            self.height,
            self.bottom,
            self.top,
        )
        X, Y = self.X, self.Y
        step, lines = grid_lines(self.y0, self.y1)
        for v in lines:
            out.append(svg.element('line', x1=left, x2=width - right, y1=Y(v), y2=Y(v), stroke='#e4e4e4'))
            label = f'{v:.{2 if step < 0.1 else 1}f}' if step < 1 else f'{v:g}'
            out.append(svg.text(left - 6, Y(v) + 4, label, text_anchor='end'))
        every = max(1, round(self.x1 / 10))
        for e in range(0, int(self.x1) + 1, every):
            out.append(
                svg.element(
                    'line', x1=X(e), x2=X(e), y1=height - bottom, y2=height - bottom + 4, stroke='black'
                )
            )
            out.append(svg.text(X(e), height - bottom + 17, str(e), text_anchor='middle'))
        out.append(
            svg.element(
                'line', x1=left, x2=width - right, y1=height - bottom, y2=height - bottom, stroke='black'
            )
        )
        out.append(svg.element('line', x1=left, x2=left, y1=top, y2=height - bottom, stroke='black'))
        out.append(svg.text((left + width - right) / 2, height - 12, 'epoch', text_anchor='middle'))
        middle = (top + height - bottom) / 2
        out.append(
            svg.text(
                16, middle, 'loss (nats/char)', text_anchor='middle', transform=f'rotate(-90 16 {middle})'
            )
        )

    def curve(self, out, k, label, colour, pairs, style, dots=False):
        """One line of (epoch, loss) pairs, with its dots if asked, and its entry k in the legend."""
        X, Y = self.X, self.Y
        pairs = [(e, v) for e, v in pairs if math.isfinite(v)]
        points = svg.points((X(e), Y(v)) for e, v in pairs)
        out.append(
            svg.element(
                'polyline', points=points, fill='none', stroke=colour, **style, clip_path='url(#plot)'
            )
        )
        if dots:
            out.extend(
                svg.element('circle', cx=X(e), cy=Y(v), r='2.5', fill=colour)
                for e, v in pairs
                if v <= self.y1
            )
        ly = self.top + 10 + 18 * k
        x = self.width - self.right
        out.append(svg.element('line', x1=x - 150, x2=x - 125, y1=ly, y2=ly, stroke=colour, **style))
        out.append(svg.text(x - 120, ly + 4, label))


def drawn(rows, others):
    """The finite losses a picture draws: the run's training and validation, the others' validation."""
    values = [v for r in rows for v in r[1:]] + [r[2] for _, o in others for r in o]
    return [v for v in values if math.isfinite(v)]


def picture(rows, title, others=(), ymax=None, width=640, height=380):
    """rows: the run's [(epoch, train, val)]; others: [(label, rows)] of runs whose validation loss is drawn
    too. Losses that are not finite are left out of the lines."""
    epochs = [r[0] for r in rows] + [r[0] for _, o in others for r in o]
    values = drawn(rows, others)
    y0 = round_to_tenth(min(values), up=False)
    y1 = max(round_to_tenth(max(values), up=True) if ymax is None else ymax, y0 + 0.1)  # a constant loss too
    axes = Axes(width, height, max(epochs), y0, y1)
    out = svg.document(width, height, title, 22, axes.clip())
    axes.draw(out)
    for k, (name, colour) in enumerate((('training', '#1f77b4'), ('validation', '#d62728'))):
        axes.curve(out, k, name, colour, [(r[0], r[1 + k]) for r in rows], dict(stroke_width='2'), dots=True)
    for k, (label, o) in enumerate(others):
        colour = ('#7f7f7f', '#2ca02c', '#9467bd', '#8c564b')[k % 4]
        style = dict(stroke_width='1.5', stroke_dasharray='5,4')
        axes.curve(out, 2 + k, f'{label}, validation', colour, [(r[0], r[2]) for r in o], style)
    finite = [r for r in rows if math.isfinite(r[2])]
    if finite:
        best = min(finite, key=lambda r: r[2])
        x, y = axes.X(best[0]), axes.Y(best[2])
        anchor = 'end' if x > width - axes.right - 40 else 'middle'
        out.append(svg.text(x, y + 18, loss_text(best[2]), text_anchor=anchor, fill='#d62728'))
    return svg.finish(out)


def main(argv=None):
    args = parse_args(argv)
    out = default_out(args.log) if args.out is None else args.out
    what = '--out' if args.out is not None else 'the picture (without --out, beside the log)'
    repo.check_not_into_repo(out, what, args.overwrite_repo_files)
    files.check_writable(out, what, kinds.SVG, [args.log, *args.compare])
    rows = read_training_log(args.log)
    others = [(run_name(path), read_training_log(path)) for path in args.compare]
    finite = [r[2] for r in rows if math.isfinite(r[2])]
    if not finite:
        raise UserError(f'{args.log}: every validation loss is inf or nan, nothing to draw')
    lowest = min(drawn(rows, others))
    if args.ymax is not None and args.ymax <= lowest:
        raise UserError(
            f'--ymax {args.ymax:g} is below every loss drawn (the lowest is {lowest:.4f}): give a larger one'
        )
    title = run_title(args.log) if args.title is None else args.title
    status = cli.status_stream(out)  # asked before the file is replaced
    files.write_text(out, picture(rows, title, others, args.ymax))
    print(
        f'wrote {out}: {cli.count(len(rows), "epoch")}, best validation loss {loss_text(min(finite))}',
        file=status,
    )
    return 0


if __name__ == '__main__':
    cli.run(main)
