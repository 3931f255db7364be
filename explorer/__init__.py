"""The explorer: what single neurons do (_visualize.py).

analysis.py runs the model over a text and finds the neurons that follow its features; figures.py draws them
(SVG) and fills the page template explorer.html; viewer.py is the tkinter viewer; svg.py the plain SVG that
figures.py and _plot.py share.
"""
