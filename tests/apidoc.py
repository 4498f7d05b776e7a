"""The README's API reference, generated from the public functions' signatures and docstrings.

``python tests/apidoc.py --write`` rewrites it in README.md; ``test_api.py`` checks that it is current.
"""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
START = "<!-- api-reference: generated from the docstrings by `python tests/apidoc.py --write`; a test checks it -->"
END = "<!-- api-reference: end -->"
#: in the order the reference lists them
FUNCTIONS = ("score", "iter_scores", "load_model", "score_catalog", "score_links", "score_playlist", "evaluate",
             "train", "report", "dataset_musicbrainz", "dataset_deezer", "dataset_playlists", "similar", "cache_info",
             "prune_cache", "clear_cache")


def signature(fn) -> str:
    """``name(a, *, b=1, **options)``: names and defaults, without the annotations (the docstring says)."""
    parts = []
    star = False
    for p in inspect.signature(fn).parameters.values():
        if p.kind is p.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        if p.kind is p.VAR_KEYWORD:
            parts.append(f"**{p.name}")
        elif p.default is p.empty:
            parts.append(p.name)
        else:
            parts.append(f"{p.name}={p.default!r}")
    return f"{fn.__name__}({', '.join(parts)})"


def _markdown(doc: str) -> str:
    """A docstring as Markdown: ``code`` → `code`, Sphinx roles → their name in code."""
    doc = inspect.cleandoc(doc)
    doc = re.sub(r":(?:func|class|mod|attr|data|meth):`~?([^`]+)`", r"`\1`", doc)
    return doc.replace("``", "`")


def reference() -> str:
    import scorer

    blocks = []
    for name in FUNCTIONS:
        fn = getattr(scorer, name)
        blocks.append(f"#### `scorer.{signature(fn)}`\n\n{_markdown(fn.__doc__)}\n")
    model = scorer.Model
    blocks.append(f"#### `scorer.Model`\n\n{_markdown(model.__doc__)} Attributes: `genres`, `heads`, `default_head`, "
                  f"`aliases`, `version`, `precision`, `tta`.\n\n`Model.info()`: {_markdown(model.info.__doc__)}\n")
    for cls in (scorer.ScoreChunks, scorer.FileRun, scorer.UsageError, scorer.RunLocked):
        blocks.append(f"#### `scorer.{cls.__name__}`\n\n{_markdown(cls.__doc__)}\n")
    blocks.append("`scorer.STATUS_CODES` and `scorer.EXIT_CODES` are the row statuses and exit codes, with what "
                  "each means ([Row statuses](#row-statuses), [Exit codes](#exit-codes)).\n")
    return "\n".join(blocks)


def current() -> str:
    text = README.read_text()
    return text[text.index(START) + len(START):text.index(END)].strip()


def write() -> None:
    text = README.read_text()
    head, rest = text.split(START)
    _, tail = rest.split(END)
    README.write_text(f"{head}{START}\n\n{reference()}\n{END}{tail}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write()
    else:
        print(reference())
