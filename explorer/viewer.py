"""The tkinter viewer: the text with each character's background coloured by one neuron's activation, and
controls to choose the layer, the state (h or tanh(c)) and the neuron."""

import numpy as np

from explorer import analysis


def colour(a):
    """Background colour of an activation: -1 white, 0 pink, +1 red, as '#rrggbb'."""
    t = (float(np.clip(a, -1.0, 1.0)) + 1.0) / 2.0
    gb = int(round(255 * (1.0 - t)))
    return f'#ff{gb:02x}{gb:02x}'


def shown(text, tk_version):
    """The text as the box shows it, a character for a character: a NUL (where Tk ends a text) as the symbol
    for NUL, and before Tk 8.7 a character beyond U+FFFF (an emoji) as U+FFFD, since Tk 8.6 counts it as
    several positions and the colours after it would slip."""
    text = text.replace('\0', '\u2400')
    if tk_version < 8.7:
        text = ''.join(ch if ord(ch) < 0x10000 else '\ufffd' for ch in text)
    return text


class Viewer:
    """The tkinter window: a bar that chooses the neuron (its number, previous and next, the layer, h or
    tanh(c)), and the text, each character coloured by that neuron's activation after reading it."""

    def __init__(self, text, acts, H, n_layers, layer, state, neuron):
        import tkinter as tk

        self.text, self.acts, self.H = text, acts, H
        self.root = tk.Tk()
        self.root.title('LSTM neuron viewer')
        self.layer = tk.IntVar(value=layer)
        self.state = tk.StringVar(value=state)
        self.neuron = tk.StringVar(value=str(neuron))
        self._build_bar(tk, n_layers)
        self.box = tk.Text(self.root, wrap=tk.WORD, font=('Courier', 12), width=90, height=40)
        self.box.pack(side=tk.TOP, fill=tk.BOTH, expand=True)
        self.box.insert('1.0', shown(text, tk.TkVersion))
        self.box.configure(state=tk.DISABLED)
        self.places = []  # each character's (line, column) in the box
        line, column = 1, 0
        for ch in text:
            self.places.append((line, column))
            line, column = (line + 1, 0) if ch == '\n' else (line, column + 1)
        self.entry.bind('<Return>', lambda e: self.show())
        self.show()

    def _build_bar(self, tk, n_layers):
        bar = tk.Frame(self.root)
        bar.pack(side=tk.TOP, fill=tk.X)
        tk.Label(bar, text='Neuron').pack(side=tk.LEFT)
        self.entry = tk.Entry(bar, textvariable=self.neuron, width=6)
        self.entry.pack(side=tk.LEFT)
        self.previous = tk.Button(bar, text='Previous', command=lambda: self.show(self.current() - 1))
        self.previous.pack(side=tk.LEFT)
        self.following = tk.Button(bar, text='Next', command=lambda: self.show(self.current() + 1))
        self.following.pack(side=tk.LEFT)
        choices = [(self.layer, f'layer {n}', n) for n in range(1, n_layers + 1)]
        choices += [(self.state, 'h', 'h'), (self.state, 'tanh(c)', 'c')]
        for variable, label, value in choices:
            button = tk.Radiobutton(
                bar, text=label, variable=variable, value=value, command=lambda: self.show()
            )
            button.pack(side=tk.LEFT)
        self.status = tk.Label(bar, text='')
        self.status.pack(side=tk.LEFT)

    def current(self):
        """The neuron typed in, held within 0 .. H - 1 (0 for what is not a number)."""
        try:
            k = int(self.neuron.get())
        except ValueError:
            k = 0
        return min(max(k, 0), self.H - 1)

    def _runs(self, a):
        """Each colour's runs of characters coloured by activations a, as Tk index pairs [start, end, ...]: a
        run is a stretch of one line of one colour."""
        runs, start, current = {}, 0, None
        for j, ch in enumerate(self.text + '\n'):  # a newline ends a run (and one more, the last)
            shade = None if ch == '\n' else colour(a[j])
            if shade != current:
                if current is not None:
                    line, column = self.places[start]
                    runs.setdefault(current, []).extend([f'{line}.{column}', f'{line}.{column + j - start}'])
                start, current = j, shade
        return runs

    def background(self, j):
        """The colour character j is shown in."""
        line, column = self.places[j]
        tags = [t for t in self.box.tag_names(f'{line}.{column}') if t.startswith('bg')]
        return self.box.tag_cget(tags[0], 'background') if tags else None

    def show(self, k=None):
        """Colour the text by neuron k (default: the one typed in; previous and next wrap around)."""
        box = self.box
        k = self.current() if k is None else k % self.H
        self.neuron.set(str(k))
        a = self.acts[(self.layer.get(), self.state.get())][:, k]
        for tag in box.tag_names():
            if tag != 'sel':
                box.tag_delete(tag)
        for shade, spans in self._runs(a).items():  # a tag per colour (256 at most), over runs of characters
            tag = 'bg' + shade[1:]
            box.tag_configure(tag, background=shade)
            for i in range(0, len(spans), 2000):
                box.tag_add(tag, *spans[i : i + 2000])
        self.status.configure(
            text=f'layer {self.layer.get()} {analysis.state_label(self.state.get())} '
            f'neuron {k}: min {a.min():+.2f} max {a.max():+.2f}'
        )


def build_viewer(text, acts, H, n_layers, layer, state, neuron):
    """The tkinter window. Returns (root, widgets): the caller runs root.mainloop(); tests drive the
    widgets."""
    v = Viewer(text, acts, H, n_layers, layer, state, neuron)
    widgets = dict(previous=v.previous, next=v.following, entry=v.entry, neuron=v.neuron, layer=v.layer)
    return v.root, dict(
        widgets, state=v.state, status=v.status, text=v.box, show=v.show, background=v.background
    )


def try_window():
    """Open a window and close it at once: raises ImportError without tkinter, tkinter.TclError without a
    display."""
    import tkinter as tk

    tk.Tk().destroy()


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
