"""A minimal Textual app that shows one result browser, for the browser tests."""

from textual.app import App


class Host(App):
    def __init__(self, screen):
        super().__init__()
        self.browser = screen

    def on_mount(self) -> None:
        self.push_screen(self.browser)


async def _open(app, pilot):
    """Wait until the browser's thread workers have loaded its data and the screen has settled."""
    await app.workers.wait_for_complete()
    await pilot.pause()
