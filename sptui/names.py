"""User strings that reach a terminal or a file name: what a job name may hold, what a parameter string
may not, run-folder names that are safe by construction, and escaping for everything printed.

A job name is shown in tables, used in run ids and typed back on the command line, so it is plain:

    1 to 100 characters: letters and digits (any script), spaces and  - _ . , : = + @ ( ) [ ] # %
    starting with a letter or a digit (not "-", which reads as an option, nor "." as in "..")

Parameter strings (paths, hooks, prompts) may hold anything printable, tabs and newlines included, but
no other control character (ESC starts the terminal escapes that recolour or retitle a terminal, NUL
truncates C strings) and no bidirectional override (U+202E shows text in another order than it runs).

`printable` escapes what a terminal would interpret, for every user string the console prints, and
`rich_safe` / `rich_text` keep Rich from reading "[...]" in a name as markup (`grid[n_hidden=3]` would show
as `grid`).
"""

from __future__ import annotations

import unicodedata

NAME_MAX = 100
NAME_PUNCTUATION = " -_.,:=+@()[]#%"
NAME_RULE = ("a name holds letters, digits, spaces and - _ . , : = + @ ( ) [ ] # %, starts with a letter or a "
             f"digit and has at most {NAME_MAX} characters")

# bidirectional formatting: embeddings, overrides, isolates and marks (Unicode TR9)
BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
ALLOWED_CONTROLS = frozenset("\t\n")


def unsafe_char(text: str, allowed_controls: frozenset[str] = ALLOWED_CONTROLS) -> tuple[int, str] | None:
    """(index, character) of the first character a terminal would act on instead of show, else None:
    C0/C1 controls and DEL (except `allowed_controls`), line/paragraph separators, bidi formatting."""
    for i, c in enumerate(text):
        if c in allowed_controls:
            continue
        if c in BIDI or unicodedata.category(c) in ("Cc", "Zl", "Zp", "Cs"):
            return i, c
    return None


def name_problem(name: str) -> str | None:
    """Why `name` is not a valid job name ("has ..." or "is empty"), or None when it is."""
    if not name:
        return "is empty"
    if len(name) > NAME_MAX:
        return f"has {len(name)} characters"
    for i, c in enumerate(name):
        if not (c.isalnum() or c in NAME_PUNCTUATION) or (i == 0 and not c.isalnum()):
            return f"has {char_name(c)} at position {i + 1}"
    return None


def char_name(c: str) -> str:
    """A character as a user can read it in an error: '"$"', or 'U+202E (RIGHT-TO-LEFT OVERRIDE)'."""
    if c.isprintable() and c not in BIDI and not c.isspace():
        return f'"{c}"'
    return f"U+{ord(c):04X} ({unicodedata.name(c, 'control character')})"


def printable(text: object) -> str:
    """`text` with everything a terminal would interpret escaped: controls as \\x1b, \\n, \\u202e ..., so one
    printed line stays one line and shows what is there."""
    text = str(text)
    if text.isprintable() and not any(c in BIDI for c in text):
        return text
    out = []
    for c in text:
        if c.isprintable() and c not in BIDI:
            out.append(c)
        elif c == " ":
            out.append(c)
        else:
            out.append(repr(c)[1:-1] if ord(c) < 0x10000 else f"\\U{ord(c):08x}")
    return "".join(out)


def shown(text: object, limit: int = 60) -> str:
    """A user string quoted in an error: escaped like `printable`, and cut to `limit` characters."""
    text = printable(text)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def rich_safe(text: object) -> str:
    """A user string for a Rich string that is read as markup: escaped for the terminal and for Rich."""
    from rich.markup import escape

    return escape(printable(text))


def rich_text(text: object, style: str = ""):
    """A user string as a Rich Text (never read as markup), escaped for the terminal."""
    from rich.text import Text

    return Text(printable(text), style=style)


def counted(n: int, noun: str, plural: str = "") -> str:
    """'1 block', '3 blocks', '0 blocks' (`plural` where adding an s is wrong)."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"
