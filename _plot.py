"""Draw the learning curve of a training run (training and validation loss per epoch) as an SVG picture.

    python _plot.py saves/training_log.csv --out images/learning_curve.svg
    python _plot.py saves/training_log.csv --compare logs/run-J-*.csv     # beside another run's validation loss

Plain SVG written by hand: no plotting library is needed, and it shows in any browser and on GitHub.
"""
import csv
import html
import math
import os

import cli
import files


def parse_args(argv):
    p = cli.Parser(description='Draw training and validation loss per epoch from a training_log.csv as SVG.')
    p.add_argument('log', help='training_log.csv written by _training.py')
    p.add_argument('--out', type=cli.path, default='images/learning_curve.svg', help='SVG file to write '
                                                                      '(default %(default)s)')
    p.add_argument('--compare', action='append', default=[], metavar='LOG',
                   help="also draw this run's validation loss, dashed (repeat for more runs)")
    p.add_argument('--ymax', type=cli.positive_float, help='top of the loss axis, to look closely at the later '
                   'epochs (default: the highest loss)')
    p.add_argument('--title', default='2x512 LSTM on tiny Shakespeare', help='title of the picture')
    return p.parse_args(argv)


def read_log(path):
    """The epoch rows of a training log: [(epoch, train_loss, val_loss)], in order."""
    rows = []
    try:
        with open(path, newline='') as f:
            for row in csv.DictReader(f):
                if row.get('val_loss'):
                    rows.append((float(row['epoch']), float(row['train_loss']), float(row['val_loss'])))
    except FileNotFoundError:
        cli.fail(f'{path} does not exist: give the training_log.csv of a run')
    except (KeyError, ValueError, csv.Error) as e:
        cli.fail(f'{path} is not a training log of _training.py ({e})')
    if not rows:
        cli.fail(f'{path} has no finished epoch yet')
    return rows


def run_name(path):
    """A short label for a log: 'run J' for logs/run-J-....csv, else the file's name."""
    name = os.path.basename(path)
    if name.startswith('run-') and len(name.split('-')) > 2:
        return 'run ' + name.split('-')[1]
    return name


def svg(rows, title, others=(), ymax=None, width=640, height=380):
    """rows: the run's [(epoch, train, val)]; others: [(label, rows)] of runs whose validation loss is drawn too."""
    left, right, top, bottom = 60, 20, 40, 50
    epochs = [r[0] for r in rows] + [r[0] for _, o in others for r in o]
    values = [v for r in rows for v in r[1:]] + [r[2] for _, o in others for r in o]
    x0, x1 = 0.0, max(epochs)
    y0 = math.floor(min(values) * 10) / 10
    y1 = math.ceil(max(values) * 10) / 10 if ymax is None else max(ymax, y0 + 0.1)

    def X(e):
        return left + (e - x0) / max(x1 - x0, 1e-9) * (width - left - right)

    def Y(v):
        return top + (y1 - v) / max(y1 - y0, 1e-9) * (height - top - bottom)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<clipPath id="plot"><rect x="{left - 4}" y="{top}" width="{width - left - right + 8}" '
           f'height="{height - top - bottom + 4}"/></clipPath>',
           f'<text x="{width / 2}" y="22" text-anchor="middle" font-size="14">{html.escape(title)}</text>']
    step = 0.05 if y1 - y0 <= 0.5 else 0.1 if y1 - y0 <= 1.0 else 0.2 if y1 - y0 <= 2.0 else 0.5
    v = math.ceil(y0 / step - 1e-9) * step                  # grid lines at round values
    while v <= y1 + 1e-9:
        out.append(f'<line x1="{left}" x2="{width - right}" y1="{Y(v):.1f}" y2="{Y(v):.1f}" stroke="#e4e4e4"/>')
        out.append(f'<text x="{left - 6}" y="{Y(v) + 4:.1f}" text-anchor="end">{v:.{2 if step < 0.1 else 1}f}</text>')
        v += step
    every = max(1, round(x1 / 10))
    for e in range(0, int(x1) + 1, every):
        out.append(f'<line x1="{X(e):.1f}" x2="{X(e):.1f}" y1="{height - bottom}" y2="{height - bottom + 4}" '
                   'stroke="black"/>')
        out.append(f'<text x="{X(e):.1f}" y="{height - bottom + 17}" text-anchor="middle">{e}</text>')
    out.append(f'<line x1="{left}" x2="{width - right}" y1="{height - bottom}" y2="{height - bottom}" stroke="black"/>')
    out.append(f'<line x1="{left}" x2="{left}" y1="{top}" y2="{height - bottom}" stroke="black"/>')
    out.append(f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">epoch</text>')
    out.append(f'<text x="16" y="{(top + height - bottom) / 2}" text-anchor="middle" '
               f'transform="rotate(-90 16 {(top + height - bottom) / 2})">loss (nats/char)</text>')
    def curve(k, label, colour, pairs, style, dots=False):
        """One line of (epoch, loss) pairs, with its dots if asked, and its entry k in the legend."""
        points = ' '.join(f'{X(e):.1f},{Y(v):.1f}' for e, v in pairs)
        out.append(f'<polyline points="{points}" fill="none" stroke="{colour}" {style} clip-path="url(#plot)"/>')
        if dots:
            out.extend(f'<circle cx="{X(e):.1f}" cy="{Y(v):.1f}" r="2.5" fill="{colour}"/>' for e, v in pairs
                       if v <= y1)
        ly = top + 10 + 18 * k
        out.append(f'<line x1="{width - right - 150}" x2="{width - right - 125}" y1="{ly}" y2="{ly}" '
                   f'stroke="{colour}" {style}/>')
        out.append(f'<text x="{width - right - 120}" y="{ly + 4}">{html.escape(label)}</text>')
    for k, (name, colour) in enumerate((('training', '#1f77b4'), ('validation', '#d62728'))):
        curve(k, name, colour, [(r[0], r[1 + k]) for r in rows], 'stroke-width="2"', dots=True)
    for k, (label, o) in enumerate(others):
        curve(2 + k, f'{label}, validation', ('#7f7f7f', '#2ca02c', '#9467bd', '#8c564b')[k % 4],
              [(r[0], r[2]) for r in o], 'stroke-width="1.5" stroke-dasharray="5,4"')
    best = min(rows, key=lambda r: r[2])
    anchor = 'end' if X(best[0]) > width - right - 40 else 'middle'
    out.append(f'<text x="{X(best[0]):.1f}" y="{Y(best[2]) + 18:.1f}" text-anchor="{anchor}" fill="#d62728">'
               f'{best[2]:.4f}</text>')
    out.append('</svg>')
    return '\n'.join(out) + '\n'


def main(argv=None):
    args = parse_args(argv)
    try:
        files.check_writable(args.out, '--out')
        rows = read_log(args.log)
        others = [(run_name(path), read_log(path)) for path in args.compare]
        files.write_text(args.out, svg(rows, args.title, others, args.ymax))
    except files.ModelFileError as e:
        cli.fail(str(e))
    print(f'wrote {args.out}: {len(rows)} epochs, best validation loss {min(r[2] for r in rows):.4f}')
    return 0


if __name__ == '__main__':
    cli.run(main)
