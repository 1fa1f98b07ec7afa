"""What an action says, said once, where the user looks.

A screen's status line (the `#status` Static above the key footer) is where a user looks after pressing a key:
every action's message goes there, and only there while the screen is on show. A Textual notification as well
showed each message twice, and at 80 columns its toast covered the very line it repeated.

A notification is for a message the status line cannot show: one that arrives from a worker thread after the
user has left the screen (pushed another over it, or gone back), and an error said just before the user left
(its line went with the screen). Errors stay up longer, so one is seen even when the screen changes.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual.screen import Screen
from textual.widgets import Static

ERROR_SECONDS = 30.0  # how long a notification holding an error stays up (information: 5 s)
INFO_SECONDS = 5.0
JUST_SAID_SECONDS = 1.0  # an error said this recently (too soon to be read), when its screen is left, is carried along


def on_top(screen: Screen) -> bool:
    """The screen the user works in: the top of the stack. A screen under a modal (help, a confirmation) is still
    drawn (Textual's `is_current`), but the user looks at the modal, which may cover its status line."""
    try:
        return screen.app.screen is screen
    except Exception:  # ScreenStackError: the app is closing
        return False


def notify_elsewhere(screen: Screen, text: str, error: bool = False) -> None:
    """A notification through the app, seen on whatever screen is on show (plain text: paths, never markup)."""
    screen.app.notify(text, severity="error" if error else "information", markup=False,
                      timeout=ERROR_SECONDS if error else INFO_SECONDS)


class Says:
    """A screen with a status line: `say` puts a message there, or, where that line is not on show, in a
    notification. Mixed into Screen subclasses (before Screen)."""

    STATUS_LINE = "#status"
    _last_error: tuple[str, float] | None = None

    def say(self, text: str, error: bool = False) -> None:
        screen: Screen = self  # type: ignore[assignment]  # a Screen, by its use
        status = screen.query_one(self.STATUS_LINE, Static)
        status.update(Text(text))  # run names and paths are text, never markup
        status.set_class(error, "error")
        self._last_error = (text, time.monotonic()) if error else None
        if not on_top(screen):
            notify_elsewhere(screen, text, error)
            self._last_error = None

    def on_screen_suspend(self) -> None:
        """Left (another screen over it, or gone back) right after an error appeared: carry it along."""
        if self._last_error is not None:
            text, when = self._last_error
            self._last_error = None
            if time.monotonic() - when < JUST_SAID_SECONDS:
                screen: Screen = self  # type: ignore[assignment]  # a Screen, by its use (as in say)
                notify_elsewhere(screen, text, error=True)
