"""Pure view maths shared by the terminal app and the PNG exports: no Textual, no files.

    colormap.py     the colour conventions (DIVERGING: centred at 0, red = positive), colour ranges, the
                    256-colour palettes the terminal draws with, and number formatting for legends
    pyramid.py      NaN-aware block means and the mean pyramid a large matrix is viewed through
    frames.py       a viewport over a pyramid -> the colour levels of one frame, and its rows of `▄` cells
    toy.py          what the toy-model views show, per kind (tms, functions): matrices, bars, geometry
    compression.py  what the addition browser's compression views show (role card, pruning, seeds)

The app's widgets (sptui/tui/) draw these; sptui/plots/ may use them so a PNG matches the screen.
"""
