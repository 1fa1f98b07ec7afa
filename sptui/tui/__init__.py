"""The terminal app (Textual). Only this package imports Textual; the core never does.

app.py        the App: screens, global keys, command palette entries
messages.py   what thread workers post back to the UI thread
workers.py    `@in_thread(group)`: the thread workers' decorator (Textual's `work`, parameters kept typed)
screens/      queue (home), run, compare, picker (submit a job file), help
widgets/      run table, live curves, log tail, GPU strip
"""
