"""The pull-request comment as GitHub shows it: rendered by cmark-gfm, GitHub's own Markdown renderer.

tests/unit/test_output_plan.py checks the Markdown source; these tests check the page it becomes: summary
first, the collapsible sections closed where they should be, the plan text intact in its code blocks, no HTML
from a value, no link and no @mention made of a value.

The extensions are GitHub's (tables, autolinks, strikethrough, task lists) and raw HTML is kept, as the page
is before GitHub's sanitiser, so `<details>` renders as HTML. GitHub's tag filter is left out: it would turn a
leaked `<script>` into text and hide the leak; `test_github_rendering_filters_nothing` checks it has nothing
to filter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

import cmarkgfm
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from render_cases import OLD, creates, every_change
from test_output_plan import hostile_plan

from reconciler.changes import Drift, PartyRow, Plan
from reconciler.output.plan import render_markdown, render_text
from reconciler.plan_document import NO_CHANGES, summary

#: Options as GitHub's wrapper sets them, and raw HTML kept.
OPTIONS = cmarkgfm.Options.CMARK_OPT_GITHUB_PRE_LANG | cmarkgfm.Options.CMARK_OPT_UNSAFE
EXTENSIONS = ["table", "autolink", "strikethrough", "tasklist"]
VOID = {"br", "hr", "img", "input"}
#: Elements that start a block: none may appear inside one item of the key facts.
BLOCKS = {"ul", "ol", "li", "hr", "pre", "blockquote", "table", "h1", "h2", "h3", "h4", "h5", "h6", "p"}


@dataclass
class Element:
    tag: str
    attrs: dict[str, str | None] = field(default_factory=dict)
    children: list[Element | str] = field(default_factory=list)

    @property
    def elements(self) -> list[Element]:
        return [child for child in self.children if isinstance(child, Element)]

    @property
    def text(self) -> str:
        return "".join(child if isinstance(child, str) else child.text for child in self.children)

    def descendants(self) -> list[Element]:
        return [e for child in self.elements for e in (child, *child.descendants())]

    def find_all(self, tag: str) -> list[Element]:
        return [e for e in self.descendants() if e.tag == tag]

    def texts_outside(self, tags: set[str]) -> list[str]:
        """The text nodes not inside an element of `tags`."""
        texts: list[str] = []
        for child in self.children:
            if isinstance(child, str):
                texts.append(child)
            elif child.tag not in tags:
                texts.extend(child.texts_outside(tags))
        return texts


class _TreeBuilder(HTMLParser):
    """The HTML as a tree of elements; every end tag must close the element opened last."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document")
        self.stack = [self.root]
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, dict(attrs))
        self.stack[-1].children.append(element)
        if tag not in VOID:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Element(tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if len(self.stack) > 1 and self.stack[-1].tag == tag:
            self.stack.pop()
        else:
            self.problems.append(f"</{tag}> closes <{self.stack[-1].tag}>")

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def gfm(markdown: str) -> str:
    return cmarkgfm.markdown_to_html_with_extensions(markdown, options=OPTIONS, extensions=EXTENSIONS)


def page(markdown: str) -> Element:
    """The comment as GitHub renders it, parsed; every element is closed where it opened."""
    builder = _TreeBuilder()
    builder.feed(gfm(markdown))
    builder.close()
    assert builder.problems == [], builder.problems
    assert builder.stack == [builder.root], f"never closed: {[e.tag for e in builder.stack[1:]]}"
    return builder.root


def fenced_blocks(markdown: str) -> list[str]:
    """The text of each fenced code block of the Markdown source, as written (each line ends in \\n)."""
    blocks = []
    for match in re.finditer(r"^(`{3,})[a-z]*\n(.*?)^\1$", markdown, re.MULTILINE | re.DOTALL):
        blocks.append(match.group(2))
    return blocks


def diff_line(line: str) -> str:
    """A line of the text plan as the ```diff block shows it: the symbol moved to the first column."""
    match = re.fullmatch(r"( +)([-+~*/?x>]) (.*)", line)
    if match is None:
        return line
    symbol = {"~": "!", "*": "!", "/": "!", "?": "#"}.get(match.group(2), match.group(2))
    return f"{symbol}{match.group(1)} {match.group(3)}"


def without_section(lines: list[str], title: str) -> tuple[list[str], list[str]]:
    """`lines` without the titled section (title, rows, blank line), and the section's rows."""
    start = lines.index(title)
    end = lines.index("", start)
    return lines[:start] + lines[end + 1 :], lines[start + 1 : end]


def assert_head(root: Element, plan: Plan) -> list[Element]:
    """The page starts with the heading and the summary line in bold; returns the elements after them."""
    first, second, *rest = root.elements
    assert (first.tag, first.text) == ("h3", "ocpi-parties plan")
    assert second.tag == "p" and [e.tag for e in second.elements] == ["strong"]
    assert second.text == second.elements[0].text == summary(plan)
    return rest


def assert_sections(root: Element, titles: list[str]) -> list[str]:
    """Top-level <details> with those summaries, none nested, each one code block; returns the code texts."""
    details = [e for e in root.elements if e.tag == "details"]
    assert len(root.find_all("details")) == len(details), "a <details> inside another"
    assert [d.elements[0].tag for d in details] == ["summary"] * len(details)
    assert [d.elements[0].text for d in details] == titles
    codes = []
    for section in details:
        (pre,) = section.find_all("pre")
        assert [e.tag for e in pre.elements] == ["code"]
        codes.append(pre.elements[0].text)
    return codes


def assert_nothing_made_of_values(root: Element) -> None:
    """No element a value could bring (script, link, image, table, strike-through); no @mention of one."""
    for tag in ("script", "a", "img", "table", "del", "input", "b", "style", "iframe"):
        assert root.find_all(tag) == [], f"<{tag}> in the page"
    for text in root.texts_outside({"code", "pre"}):
        assert re.search(r"@(?!\u2060)", text) is None, f"an @mention in {text!r}"


# ---------------------------------------------------------------------------------------------- golden


def test_the_golden_comment_starts_with_the_summary_then_key_facts_and_alerts() -> None:
    plan = every_change()
    root = page(render_markdown(plan))
    facts, note, warning, *rest = assert_head(root, plan)
    assert facts.tag == "ul"
    items = [li.text.split("\n")[0] for li in facts.elements]
    assert items == [
        "Default party: GB-TWK → ES-CPO",
        "Locations to move: 1,644",
        "Awaiting OCPI registration (nothing to apply): 1",
    ]
    moves = facts.elements[1].find_all("li")
    assert [li.text for li in moves][:2] == [
        "1 to ES-CPO, claimed by id",
        "25 to DE-EMO, recorded under its own identity",
    ]
    # GitHub shows a blockquote starting with [!NOTE] or [!WARNING] as an alert; cmark-gfm keeps the quote.
    assert note.tag == warning.tag == "blockquote"
    assert note.elements[0].text == "[!NOTE]"
    assert [li.text for li in note.find_all("li")] == [
        "NL-VLT EMSP: OCPI registration recorded the url 'https://api.voltaro.example/ocpi/versions', "
        "parties/NL-VLT.yaml expects 'https://ocpi.voltaro.example/versions'; ocpi-parties does not change "
        "it (registration owns url and token): check that the partner meant it"
    ]
    assert [c.text for c in note.find_all("code")] == [
        "https://api.voltaro.example/ocpi/versions",
        "https://ocpi.voltaro.example/versions",
    ]
    assert warning.elements[0].text.split("\n") == [
        "[!WARNING]",
        "1 deletion is blocked by deletion protection and is not applied:",
    ]
    assert len(warning.find_all("li")) == len(plan.blocked) == 1
    assert [e.tag for e in rest] == ["details"] * 3
    assert_nothing_made_of_values(root)


def test_the_golden_comment_shows_the_plan_text_intact_in_its_sections() -> None:
    plan = every_change()
    markdown = render_markdown(plan)
    root = page(markdown)
    full, unmanaged, drift = assert_sections(
        root,
        [
            "Full plan",
            "Not managed by ocpi-parties: 2 rows, never changed",
            "Drift since the last apply: 2 rows changed outside git",
        ],
    )
    assert [full, unmanaged, drift] == fenced_blocks(markdown)
    # The same lines as the text plan, the symbols in the first column for GitHub's diff colours.
    lines = render_text(plan).split("\n")
    lines, unmanaged_rows = without_section(lines, "Not managed by ocpi-parties (never changed):")
    lines, drift_rows = without_section(
        lines, "Drift since the last apply (changed in the database outside git):"
    )
    assert full.split("\n") == [*map(diff_line, lines), ""]
    assert unmanaged.split("\n") == [*unmanaged_rows, ""]
    assert drift.split("\n") == [*drift_rows, ""]
    # The tables of the plan are aligned columns in a code block, kept as they are.
    assert "      FR-CPO                    12\n      GB-TWK (recorded PT-CPO)  30\n" in full
    assert "  BE-PEE  CPO   https://ocpi.peer.example/versions\n" in unmanaged
    pres = root.find_all("pre")
    assert [p.attrs.get("lang") for p in pres] == ["diff", "text", "text"]


def test_github_rendering_filters_nothing() -> None:
    """GitHub's own wrapper adds the tag filter: it has no raw HTML to filter in any of the comments."""
    for plan in (every_change(), hostile_plan(), creates(2_000), Plan(())):
        markdown = render_markdown(plan, limit=20_000)
        assert cmarkgfm.github_flavored_markdown_to_html(markdown, options=OPTIONS) == gfm(markdown)


# ---------------------------------------------------------------------------------------------- hostile


def test_hostile_names_stay_text_and_close_no_section() -> None:
    plan = hostile_plan()
    markdown = render_markdown(plan)
    root = page(markdown)
    facts, caution_or_note, warning, *_ = assert_head(root, plan)
    codes = assert_sections(
        root,
        [
            "Full plan",
            "Not managed by ocpi-parties: 1 row, never changed",
            "Drift since the last apply: 1 row changed outside git",
        ],
    )
    assert markdown.count("<details>") == len(root.find_all("details")) == 3
    assert codes == fenced_blocks(markdown)
    assert_nothing_made_of_values(root)
    hostile = (
        "Evil</details>\\u000a```\\u000a<script>alert(1)</script> | *x* @\u2060team \\u001b[31mred\\u202e"
    )
    assert facts.tag == "ul" and caution_or_note.tag == warning.tag == "blockquote"
    assert [li.text for li in caution_or_note.find_all("li")] == [hostile, "````"]
    assert [li.text for li in warning.find_all("li")] == [f"G`-<b> ``: {hostile}"]
    assert [c.text for c in warning.find_all("code")] == ["G`-<b> ``"]
    assert facts.elements[0].text == "Default party: G`-<b> → GB-TWK"
    # Inside the code blocks the value is as the text plan shows it: GitHub makes no mention of code.
    assert '"Evil</details>\\n```\\n<script>alert(1)</script> | *x* @team \\u001b[31mred\\u202e"' in codes[0]
    assert "  ```\n  </details>\n" in codes[0]


#: Text that would start a block, a link or a mention in a list item of the key facts if it were not escaped.
AWKWARD = [
    "- a list",
    "+ a list",
    "1. an ordered list",
    "2) an ordered list",
    "---",
    "-",
    "    four spaces: a code block",
    "* emphasis",
    "# heading",
    "> quote",
    "| a | b |",
    "~~strike~~",
    "[x](https://e.example/x)",
    "<https://e.example>",
    "see https://user:***@e.example/a_b~c*d?q=1&r=2 now",
    "www.e_x.example",
    "ops@team.example @team",
    "&amp; &#64;team",
]


def test_text_that_starts_a_line_of_the_key_facts_cannot_start_a_block_or_a_link() -> None:
    root = page(render_markdown(Plan((), refused=tuple(AWKWARD[:10]), warnings=tuple(AWKWARD[10:]))))
    caution, note, _ = assert_head(root, Plan((), refused=("x",), warnings=("y",)))
    assert caution.elements[0].text.startswith("[!CAUTION]")
    assert note.elements[0].text == "[!NOTE]"
    assert_nothing_made_of_values(root)
    items = []
    for quote in (caution, note):
        (bullets,) = [e for e in quote.elements if e.tag != "p"]
        assert bullets.tag == "ul"
        for li in bullets.elements:
            assert not BLOCKS & {e.tag for e in li.descendants()}
            items.append(li.text)
    assert items == [*map(expected_item, AWKWARD)]


def expected_item(text: str) -> str:
    """The text of a list item: leading spaces dropped, a word joiner after an @ outside an address."""
    words = [word if "://" in word else word.replace("@", "@\u2060") for word in text.lstrip(" ").split(" ")]
    return " ".join(words)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=40).filter(lambda text: text.strip(" ")), min_size=1, max_size=5))
def test_any_warning_is_one_item_of_the_note(warnings: list[str]) -> None:
    """Whatever a warning says (never nothing: each names a party), it is one item of the list."""
    root = page(render_markdown(Plan((), warnings=tuple(warnings))))
    note, _ = assert_head(root, Plan((), warnings=tuple(warnings)))
    (bullets,) = note.elements[1:]
    assert bullets.tag == "ul" and len(bullets.elements) == len(warnings)
    for li in bullets.elements:
        assert not BLOCKS & {e.tag for e in li.descendants()}
    assert_nothing_made_of_values(root)


# ---------------------------------------------------------------------------------------------- size


def test_a_truncated_section_says_how_many_lines_it_does_not_show() -> None:
    plan = creates(20_000)
    root = page(render_markdown(plan))
    (details,) = assert_head(root, plan)
    assert details.tag == "details" and root.find_all("details") == [details]
    summary_element, pre, note = details.elements
    assert (summary_element.tag, summary_element.text) == ("summary", "Full plan (truncated)")
    assert pre.tag == "pre" and pre.elements[0].tag == "code"
    assert note.tag == "p" and [e.tag for e in note.elements] == ["strong", "code"]
    shown = pre.text.split("\n")[:-1]
    match = re.fullmatch(
        r"Truncated: ([\d,]+) more lines not shown; run ocpi-parties plan to see the full plan\.", note.text
    )
    assert match is not None, note.text
    assert note.elements[1].text == "ocpi-parties plan"
    text_lines = render_text(plan).split("\n")
    assert len(shown) + int(match.group(1).replace(",", "")) == len(text_lines)
    assert shown == [diff_line(line) for line in text_lines[: len(shown)]]
    assert_nothing_made_of_values(root)


def test_a_plan_without_changes_is_the_heading_and_the_summary() -> None:
    plan = Plan(())
    root = page(render_markdown(plan))
    assert assert_head(root, plan) == []
    assert summary(plan) == NO_CHANGES
    assert root.find_all("details") == []


@pytest.mark.parametrize("limit", [4_000, 20_000])
def test_every_section_stays_closed_when_the_limit_cuts_them(limit: int) -> None:
    peers = tuple(PartyRow(OLD, f"R{n}", f"https://p{n}.example", None, False) for n in range(400))
    drift = tuple(Drift(OLD, f"R{n}", (), missing=True) for n in range(400))
    plan = Plan(creates(1_000).changes, peers, drift)
    root = page(render_markdown(plan, limit=limit))
    assert_sections(
        root,
        [
            "Full plan (truncated)",
            "Not managed by ocpi-parties: 400 rows, never changed (truncated)",
            "Drift since the last apply: 400 rows changed outside git (truncated)",
        ],
    )
    for details in root.find_all("details"):
        assert details.elements[-1].text.startswith("Truncated: ")
