"""Look at single neurons: run the model over a text and colour each character by one neuron's activation.

    python _visualize.py                         # the viewer (tkinter) over saves/sample.txt
    python _visualize.py --text my.txt --layer 2 --neuron 17

The background of each character is the activation of the chosen neuron after reading it: -1 white, 0 pink,
+1 red (newlines stay white). Choose the layer (1 or 2), the hidden state h or the cell state tanh(c), and the
neuron by its index, or step through them with Previous and Next.
"""
import os
import sys

import numpy as np

import cli
import data
import lstm

HERE = os.path.dirname(os.path.abspath(__file__))


def parse_args(argv):
    p = cli.Parser(description='Show one neuron\'s activation on every character of a text.')
    g = p.add_argument_group('data')
    g.add_argument('--text', default=os.path.join(HERE, 'saves', 'sample.txt'),
                   help='UTF-8 text to run the model over (default saves/sample.txt)')
    g = p.add_argument_group('model')
    g.add_argument('--weights', default=os.path.join(HERE, 'saves', 'ShakespeareNet.npz'),
                   help='weights file (default saves/ShakespeareNet.npz)')
    g.add_argument('--lookup', default=os.path.join(HERE, 'saves', 'ShakespeareLookup.json'),
                   help='lookup table saved with the weights (default saves/ShakespeareLookup.json)')
    g = p.add_argument_group('view')
    g.add_argument('--layer', type=cli.positive_int, default=1, help='LSTM layer to show first (default 1)')
    g.add_argument('--state', choices=['h', 'c'], default='h',
                   help='h: hidden state; c: tanh of the cell state (default h)')
    g.add_argument('--neuron', type=cli.non_negative_int, default=0, help='neuron to show first (default 0)')
    return p.parse_args(argv)


def activations(params, ids):
    """Run the model over the indices (batch 1) and return {(layer, 'h' or 'c'): (N, H) array}, layers from 1;
    'c' holds tanh(c), so both lie in [-1, 1]."""
    _, _, hidden = lstm.step_state(params, np.asarray(ids)[:, None], lstm.zero_state(params, 1))
    acts = {}
    for n, (h, c) in enumerate(hidden, start=1):
        acts[(n, 'h')] = h[:, 0, :]
        acts[(n, 'c')] = np.tanh(c[:, 0, :])
    return acts


def colour(a):
    """Background colour of an activation: -1 white, 0 pink, +1 red, as '#rrggbb'."""
    t = (float(np.clip(a, -1.0, 1.0)) + 1.0) / 2.0
    gb = int(round(255 * (1.0 - t)))
    return f'#ff{gb:02x}{gb:02x}'


def load(args):
    """The text, its activations and the model's sizes; every problem is a one-line error."""
    try:
        chars = data.load_lookup(args.lookup)
        params, _ = lstm.load_params(args.weights, V=len(chars))
        ids, _ = data.read_corpus(args.text, chars)
    except (lstm.ModelFileError, data.CorpusError) as e:
        cli.fail(str(e))
    _, H, n_layers = lstm.sizes(params)
    if args.layer > n_layers:
        cli.fail(f'--layer {args.layer}: the model has {n_layers} layers')
    if args.neuron >= H:
        cli.fail(f'--neuron {args.neuron}: the model has {H} neurons per layer (0 to {H - 1})')
    return data.decode(ids, chars), activations(params, ids), H, n_layers


def viewer(text, acts, H, n_layers, layer, state, neuron):
    import tkinter as tk
    root = tk.Tk()
    root.title('LSTM neuron viewer')
    bar = tk.Frame(root)
    bar.pack(side=tk.TOP, fill=tk.X)
    layer_var = tk.IntVar(value=layer)
    state_var = tk.StringVar(value=state)
    neuron_var = tk.StringVar(value=str(neuron))
    tk.Label(bar, text='Neuron').pack(side=tk.LEFT)
    entry = tk.Entry(bar, textvariable=neuron_var, width=6)
    entry.pack(side=tk.LEFT)
    for n in range(1, n_layers + 1):
        tk.Radiobutton(bar, text=f'layer {n}', variable=layer_var, value=n, command=lambda: show()).pack(
            side=tk.LEFT)
    tk.Radiobutton(bar, text='h', variable=state_var, value='h', command=lambda: show()).pack(side=tk.LEFT)
    tk.Radiobutton(bar, text='tanh(c)', variable=state_var, value='c', command=lambda: show()).pack(side=tk.LEFT)
    status = tk.Label(bar, text='')
    box = tk.Text(root, wrap=tk.WORD, font=('Courier', 12), width=90, height=40)
    box.pack(side=tk.TOP, fill=tk.BOTH, expand=True)
    box.insert('1.0', text)
    box.configure(state=tk.DISABLED)

    def current():
        try:
            k = int(neuron_var.get())
        except ValueError:
            k = 0
        return min(max(k, 0), H - 1)

    def show(k=None):
        k = current() if k is None else k % H
        neuron_var.set(str(k))
        a = acts[(layer_var.get(), state_var.get())][:, k]
        for tag in box.tag_names():
            if tag != 'sel':
                box.tag_delete(tag)
        for j, ch in enumerate(text):
            if ch == '\n':
                continue
            tag = f't{j}'
            box.tag_add(tag, f'1.0+{j}c')
            box.tag_configure(tag, background=colour(a[j]))
        status.configure(text=f'layer {layer_var.get()} {state_var.get()} neuron {k}: '
                              f'min {a.min():+.2f} mean {a.mean():+.2f} max {a.max():+.2f}')

    tk.Button(bar, text='Previous', command=lambda: show(current() - 1)).pack(side=tk.LEFT)
    tk.Button(bar, text='Next', command=lambda: show(current() + 1)).pack(side=tk.LEFT)
    status.pack(side=tk.LEFT)
    entry.bind('<Return>', lambda e: show())
    show()
    root.mainloop()


def main(argv=None):
    args = parse_args(argv)
    text, acts, H, n_layers = load(args)
    try:
        viewer(text, acts, H, n_layers, args.layer, args.state, args.neuron)
    except ImportError:
        cli.fail('tkinter is not installed: install your system\'s python3-tk package')
    except Exception as e:                              # tkinter.TclError: no display
        if type(e).__name__ == 'TclError':
            cli.fail(f'cannot open a window ({e}): run it on a desktop, or set DISPLAY')
        raise
    return 0


if __name__ == '__main__':
    sys.exit(main())
