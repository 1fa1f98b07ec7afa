"""A line of key hints ("←/→ Head  b Baseline  e Export PNG") written the way the footer writes its keys.

The footer shows a key, then what it does with a capital ("m Metric"); the hint lines under plots and in the
browsers' status line said the same in lower case ("m metric"), so one screen showed one key two ways. Every
hint line is made here: the key in bold, then its words capitalised, two spaces between hints.
"""

from __future__ import annotations

from rich.text import Text

Hint = tuple[str, str]  # (key as shown, what it does)


def key_hints(*lines: list[Hint] | tuple[Hint, ...], before: str = "") -> Text:
    """One hint line per argument (a list of (key, words)); `before`, if any, is a line of text above them."""
    text = Text(before + ("\n" if before and lines else ""))
    for i, hints in enumerate(lines):
        if i:
            text.append("\n")
        for j, (key, words) in enumerate(hints):
            if j:
                text.append("  ")
            text.append(key, style="bold")
            text.append(" " + words[:1].upper() + words[1:])
    return text
