"""The tkinter viewer: the text with each character's background coloured by one neuron's activation, and
controls to choose the layer, the state (h or tanh(c)) and the neuron."""

import numpy as np

from explorer import analysis


def colour(a):
    """Background colour of an activation: -1 white, 0 pink, +1 red, as '#rrggbb'."""
    t = (float(np.clip(a, -1.0, 1.0)) + 1.0) / 2.0
    gb = int(round(255 * (1.0 - t)))
    return f'#ff{gb:02x}{gb:02x}'


def build_viewer(text, acts, H, n_layers, layer, state, neuron):
    """The tkinter window. Returns (root, widgets): the caller runs root.mainloop(); tests drive the widgets."""
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
    previous = tk.Button(bar, text='Previous')
    previous.pack(side=tk.LEFT)
    following = tk.Button(bar, text='Next')
    following.pack(side=tk.LEFT)
    for n in range(1, n_layers + 1):
        tk.Radiobutton(bar, text=f'layer {n}', variable=layer_var, value=n, command=lambda: show()).pack(
            side=tk.LEFT
        )
    tk.Radiobutton(bar, text='h', variable=state_var, value='h', command=lambda: show()).pack(side=tk.LEFT)
    tk.Radiobutton(bar, text='tanh(c)', variable=state_var, value='c', command=lambda: show()).pack(
        side=tk.LEFT
    )
    status = tk.Label(bar, text='')
    status.pack(side=tk.LEFT)
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
        status.configure(
            text=f'layer {layer_var.get()} {analysis.state_label(state_var.get())} '
            f'neuron {k}: min {a.min():+.2f} max {a.max():+.2f}'
        )

    previous.configure(command=lambda: show(current() - 1))
    following.configure(command=lambda: show(current() + 1))
    entry.bind('<Return>', lambda e: show())
    show()
    return root, dict(
        previous=previous,
        next=following,
        entry=entry,
        neuron=neuron_var,
        layer=layer_var,
        state=state_var,
        status=status,
        text=box,
        show=show,
    )


def show(text, acts, H, n_layers, layer, state, neuron):
    """Open the viewer and wait until it is closed. Ctrl-C in the terminal closes it too: the window wakes
    Python up a few times a second, so that the interrupt is not held back until the next mouse event."""
    import tkinter as tk

    root, _ = build_viewer(text, acts, H, n_layers, layer, state, neuron)

    def wake():
        root.after(200, wake)

    try:
        wake()
        root.mainloop()
    finally:
        try:
            root.destroy()
        except tk.TclError:  # already closed with the window's close button
            pass
