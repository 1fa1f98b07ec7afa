"""One convention for key labels across the app: every key's description (the footer's word, the command
palette's entry) starts with a capital letter, as the queue, run and compare screens always wrote them
("Open", "Export PNG"). Every class of the app that declares keys is found by walking sptui.tui, so a screen or
widget added later is held to it too."""

import importlib
import inspect
import pkgutil
from collections.abc import Iterator

from textual.binding import Binding
from textual.dom import DOMNode

import sptui.tui


def classes_with_keys() -> Iterator[type[DOMNode]]:
    """Every App, Screen and Widget class defined in sptui.tui that declares BINDINGS of its own."""
    for info in pkgutil.walk_packages(sptui.tui.__path__, "sptui.tui."):
        module = importlib.import_module(info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and issubclass(cls, DOMNode) and "BINDINGS" in vars(cls):
                yield cls


def label_problem(binding: Binding | tuple[str, ...]) -> str | None:
    """What is wrong with one key's label, or None (tuples are Textual's short form: key, action, description)."""
    key, description = (binding.key, binding.description) if isinstance(binding, Binding) else (binding[0], binding[-1])
    if not description:
        return None if isinstance(binding, Binding) and not binding.show else f"{key}: no description"
    if description[0].isalpha() and not description[0].isupper():
        return f"{key}: {description!r} does not start with a capital letter"
    return None


def test_every_key_label_starts_with_a_capital_letter():
    found = {cls.__name__: cls for cls in classes_with_keys()}
    # the walk reaches the app, its screens, the browsers and the widgets with keys
    assert {"SptuiApp", "QueueScreen", "RunScreen", "BrowserScreen", "NeuroscopeBrowser", "ToyBrowser", "Heatmap",
            "CurvePlot"} <= set(found), sorted(found)
    problems = [f"{name}: {problem}" for name, cls in sorted(found.items()) for binding in vars(cls)["BINDINGS"]
                if (problem := label_problem(binding)) is not None]
    assert not problems, "\n".join(problems)


def test_a_lower_case_label_is_caught():
    assert label_problem(Binding("e", "export", "export")) is not None
    assert label_problem(("e", "export", "export")) is not None
    assert label_problem(Binding("e", "export", "Export PNG")) is None
    assert label_problem(Binding("question_mark", "help", "? Keys")) is None  # not a letter: nothing to capitalise
