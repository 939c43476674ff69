"""What the commands print, as strings: each module renders one kind of result and prints nothing.

`plan` renders a plan (text, JSON, Markdown), `validation` validate's result (text, JSON, GitHub
annotations), `database` what the database read commands show (parties, locations, the default party,
`db status`, `db migrate`). Text is styled through a `Style`, which the command line chooses: colours on a
terminal, `plain` everywhere else.
"""

from __future__ import annotations

from collections.abc import Callable

#: Styles `text` in the colour named (click's colour names); the command line passes click.style or `plain`.
Style = Callable[[str, str], str]


def plain(text: str, _color: str) -> str:
    """No style: the text as it is."""
    return text
