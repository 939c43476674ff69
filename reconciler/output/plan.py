"""Render a `Plan` as Terraform-like text, as JSON (the document of `plan_document`), or as a pull-request
comment in Markdown.

Only strings; no printing. Each renderer dispatches on the change types of `plan`; the formats are described
in docs/plan-format.md. Values that come from the database (peers' URLs and identities written by OCPI
registration) are shown escaped, so a hostile value cannot move the cursor of a terminal or break out of a
Markdown code block, and the password of a URL (`https://user:pw@host`) is never shown.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, assert_never

from reconciler.changes import (
    AdoptParty,
    AwaitRegistration,
    Change,
    CreateParty,
    DeleteParty,
    Drift,
    FieldChange,
    LocationGroup,
    LocationOwners,
    MoveLocations,
    MoveReason,
    Plan,
    ReleaseParty,
    RunMigrations,
    SetDefaultParty,
    SetLocationRules,
    UpdateParty,
)
from reconciler.model import Identity, Source
from reconciler.output import Style, plain
from reconciler.plan_document import change_document, comparable, number, plan_document, public_value, summary
from reconciler.secret import hide_secrets

#: GitHub refuses comments over 65,536 characters; the default leaves room for what CI wraps around it.
MARKDOWN_LIMIT = 60_000

#: Lists the ids of the locations a move gives away (`plan --show-locations`).
LocationLister = Callable[[MoveLocations], Iterable[str]]


CREATE, UPDATE, ADOPT, MOVE, DELETE, BLOCKED = "+", "~", "*", ">", "-", "x"
RELEASE, AWAITING = "/", "?"

#: The legend, in the order it is printed. Only the symbols a plan uses are listed.
_LEGEND = {
    CREATE: "create",
    UPDATE: "update in place",
    ADOPT: "adopt: manage from now on the business details of a row that OCPI registration created",
    MOVE: "move locations to the party that owns them",
    RELEASE: "release: stop managing a row that OCPI registration owns; the row and its credentials stay",
    DELETE: "delete",
    BLOCKED: "deletion blocked by deletion protection: shown, not applied",
    AWAITING: "awaiting OCPI registration: its row appears when the partner registers, and the next apply "
    "adopts it",
}
#: As Terraform: create green, update yellow, delete red; every other symbol a colour of its own, so that a
#: symbol can be told from the others by its colour alone.
_COLORS = {
    CREATE: "green",
    UPDATE: "yellow",
    ADOPT: "cyan",
    MOVE: "blue",
    RELEASE: "magenta",
    DELETE: "red",
    BLOCKED: "bright_red",
    AWAITING: "bright_black",
}

#: In a ```diff block GitHub colours lines starting with + and > green, - red and ! orange.
_DIFF_SYMBOLS = {UPDATE: "!", ADOPT: "!", RELEASE: "!", AWAITING: "#"}

_MOVE_HEADINGS = {
    MoveReason.ORPHANS: "{n} recorded under no CPO will move to the default party {to}",
    MoveReason.RECORDED: "{n} recorded under {to}'s own identity will move to {to}",
    MoveReason.MOVED_FROM: "{n} will move to {to}, which replaces the identities they are recorded under",
    MoveReason.CLAIMED: "{n} claimed by id will move to {to}",
    MoveReason.PARTY_DELETED: "{n} of deleted parties will move to the default party {to}",
}


# ---------------------------------------------------------------------------------------------- values


def _escape_char(char: str) -> str:
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _is_unsafe(char: str) -> bool:
    """Control, format (bidi overrides, zero-width) and separator characters: shown escaped."""
    return unicodedata.category(char) in {"Cc", "Cf", "Zl", "Zp", "Cs"}


def safe(text: str) -> str:
    """`text` with every character that could restyle a terminal or split a line shown as an escape."""
    if text.isprintable():
        return text
    return "".join(_escape_char(c) if _is_unsafe(c) else c for c in text)


def value_text(value: Any) -> str:
    """A field value as the text plan shows it: JSON (strings quoted), `(none)` when unset."""
    if value is None:
        return "(none)"
    return safe(json.dumps(public_value(value), ensure_ascii=False, separators=(", ", ": ")))


def _leaves(prefix: str, value: Any) -> Iterator[tuple[str, Any]]:
    """`business_details`, {"logo": {"url": u}} -> ("business_details.logo.url", u): one pair per field."""
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            yield from _leaves(f"{prefix}.{key}", item)
    else:
        yield prefix, value


def _field_changes(changes: Sequence[FieldChange]) -> list[FieldChange]:
    """Changes of whole documents (details set for the first time) split into one change per field.

    A stored value that is no document (a JSON string, say) stays one change: that value -> the new document.
    """
    result: list[FieldChange] = []
    for change in changes:
        documents = all(
            isinstance(value, Mapping) or value is None for value in (change.before, change.after)
        )
        if documents and (isinstance(change.before, Mapping) or isinstance(change.after, Mapping)):
            before = dict(_leaves(change.field, change.before)) if change.before else {}
            after = dict(_leaves(change.field, change.after)) if change.after else {}
            fields = list(before) + [f for f in after if f not in before]
            result.extend(FieldChange(f, before.get(f), after.get(f)) for f in fields)
        else:
            result.append(change)
    return result


def _who(identity: Identity, role: str) -> str:
    return f"{safe(str(identity))} {safe(role)}"


def _from(source: Source) -> str:
    return f" ({safe(str(source))})" if source.file else ""


# ---------------------------------------------------------------------------------------------- text


@dataclass(frozen=True)
class _Line:
    """One line of the text plan: `indent` spaces, then the symbol (if any) and a space, then the text."""

    text: str
    symbol: str = ""
    indent: int = 0

    def render(self, style: Style) -> str:
        if not self.symbol:
            return f"{' ' * self.indent}{self.text}" if self.text else ""
        return f"{' ' * self.indent}{style(self.symbol, _COLORS[self.symbol])} {self.text}"

    def diff(self) -> str:
        """The same line with its symbol moved to the first column, as GitHub's ```diff colouring needs."""
        if not self.symbol:
            return self.render(plain)
        return f"{_DIFF_SYMBOLS.get(self.symbol, self.symbol)}{' ' * self.indent} {self.text}"


_BLANK = _Line("")
#: Indents: an action (or a row of a section) and its details.
_ACTION, _DETAIL = 2, 6


def _assignments(symbol: str, pairs: Sequence[tuple[str, str]]) -> list[_Line]:
    """`field = value` lines with the `=` signs aligned; `symbol` may be "" (no symbol)."""
    width = max((len(name) for name, _ in pairs), default=0)
    return [_Line(f"{name.ljust(width)} = {text}", symbol, _DETAIL) for name, text in pairs]


def _change_pairs(changes: Sequence[FieldChange]) -> list[tuple[str, str]]:
    return [
        (safe(c.field), f"{value_text(c.before)} -> {value_text(c.after)}") for c in _field_changes(changes)
    ]


def _move_lines(move: MoveLocations, locations: LocationLister | None) -> list[_Line]:
    heading = _MOVE_HEADINGS[move.reason]
    lines = [
        _Line(
            heading.format(n=number(move.count, "location"), to=safe(str(move.to))) + _from(move.source),
            MOVE,
            _ACTION,
        )
    ]
    rows = [(_group_origin(g), f"{g.count:,}") for g in move.groups]
    width = max((len(origin) for origin, _ in rows), default=0)
    digits = max((len(count) for _, count in rows), default=0)
    lines.extend(_Line(f"{origin.ljust(width)}  {count:>{digits}}", indent=_DETAIL) for origin, count in rows)
    if locations is not None:
        lines.append(_Line("location ids:", indent=_DETAIL))
        lines.extend(_Line(safe(location), indent=_DETAIL + 2) for location in locations(move))
    elif move.location_ids:
        lines.append(_Line("(plan --show-locations lists their ids)", indent=_DETAIL))
    return lines


def _group_origin(group: LocationGroup) -> str:
    """Where a group's locations stand now: `GB-XXX`, or `GB-TWK (recorded PT-CPO)` when the identity their
    writer recorded is another."""
    owner = safe(str(group.owner))
    if group.recorded is None or str(group.recorded) == str(group.owner).upper():
        return owner
    return f"{owner} (recorded {safe(str(group.recorded))})"


_NOWHERE = Source("")


def _action(symbol: str, text: str, source: Source = _NOWHERE) -> _Line:
    return _Line(text + _from(source), symbol, _ACTION)


def _create_lines(change: CreateParty) -> list[_Line]:
    fields = [("url", change.url), *_leaves("business_details", change.business_details)]
    return [
        _action(CREATE, f"{_who(change.identity, change.role)} will be created", change.source),
        *_assignments(CREATE, [(safe(name), value_text(value)) for name, value in fields]),
    ]


def _adopt_lines(change: AdoptParty) -> list[_Line]:
    heading = f"{_who(change.identity, change.role)} will be adopted: managed by ocpi-parties from now on"
    details = _assignments(UPDATE, _change_pairs(change.changes))
    return [_action(ADOPT, heading, change.source), *(details or [_Line("no field changes", indent=_DETAIL)])]


def _update_lines(change: UpdateParty) -> list[_Line]:
    return [
        _action(UPDATE, f"{_who(change.identity, change.role)} will be updated in place", change.source),
        *_assignments(UPDATE, _change_pairs(change.changes)),
    ]


def _default_lines(change: SetDefaultParty) -> list[_Line]:
    was = safe(str(change.before)) if change.before else "(none)"
    return [_action(UPDATE, f"default party will change: {was} -> {safe(str(change.after))}")]


def _migration_lines(change: RunMigrations) -> list[_Line]:
    names = change.migrations
    return [
        _action(UPDATE, f"database: {number(len(names), 'migration')} of ocpi-parties will run first"),
        *(_Line(safe(name), indent=_DETAIL) for name in names),
    ]


def _rules_lines(change: SetLocationRules) -> list[_Line]:
    return [
        _action(UPDATE, "location rules for MaEVe's new writes will be recorded:"),
        _Line(
            f"{number(len(change.claims), 'location')} claimed by id (was {change.claims_before:,}), "
            f"{number(len(change.moved_from), 'identity', 'identities')} moved_from (was "
            f"{change.moved_from_before:,})",
            indent=_DETAIL,
        ),
    ]


def _release_lines(change: ReleaseParty) -> list[_Line]:
    return [
        _action(
            RELEASE, f"{_who(change.identity, change.role)} will no longer be managed: {safe(change.reason)}"
        )
    ]


def _delete_lines(change: DeleteParty) -> list[_Line]:
    who, reason = _who(change.identity, change.role), safe(change.reason)
    if not change.blocked:
        return [_action(DELETE, f"{who} will be deleted: {reason}")]
    return [
        _action(BLOCKED, f"{who} will NOT be deleted: {reason}"),
        _Line("to keep it instead, declare it again under parties/", indent=_DETAIL),
    ]


def _change_lines(change: Change, locations: LocationLister | None) -> list[_Line]:
    match change:
        case CreateParty():
            lines = _create_lines(change)
        case AdoptParty():
            lines = _adopt_lines(change)
        case UpdateParty():
            lines = _update_lines(change)
        case SetDefaultParty():
            lines = _default_lines(change)
        case RunMigrations():
            lines = _migration_lines(change)
        case MoveLocations():
            lines = _move_lines(change, locations)
        case SetLocationRules():
            lines = _rules_lines(change)
        case ReleaseParty():
            lines = _release_lines(change)
        case DeleteParty():
            lines = _delete_lines(change)
        case _:
            assert_never(change)
    return lines


def _awaiting_lines(awaiting: AwaitRegistration) -> list[_Line]:
    return [
        _action(
            AWAITING,
            f"{_who(awaiting.identity, awaiting.role)} is awaiting OCPI registration",
            awaiting.source,
        )
    ]


def _spaced(groups: Iterable[list[_Line]]) -> list[_Line]:
    lines: list[_Line] = []
    for group in groups:
        lines.extend([*group, _BLANK])
    return lines


def _plan_lines(plan: Plan, locations: LocationLister | None) -> list[_Line]:
    """The changes in apply order, then the blocked deletions, then the notes; each section ends blank."""
    lines: list[_Line] = []
    actions = plan.applicable
    if actions:
        lines.append(_Line("ocpi-parties will make these changes, in this order:"))
        lines.append(_BLANK)
        lines.extend(_spaced(_change_lines(c, locations) for c in actions))
    if plan.blocked:
        lines.append(_Line("Blocked by deletion protection (not applied):"))
        lines.append(_BLANK)
        lines.extend(_spaced(_change_lines(c, locations) for c in plan.blocked))
    if plan.refused:
        lines.append(_Line("Refused: the party files do not fit this database (nothing can be applied):"))
        lines.extend(_Line(safe(reason), indent=_ACTION) for reason in plan.refused)
        lines.append(_BLANK)
    if plan.awaiting:
        lines.append(_Line("Declared partners without a row (nothing to apply):"))
        lines.append(_BLANK)
        lines.extend([*(line for a in plan.awaiting for line in _awaiting_lines(a)), _BLANK])
    lines.extend(_owner_lines(plan.owners))
    return lines


def _owner_lines(owners: LocationOwners) -> list[_Line]:
    """What would keep the location owner key from being validated; nothing when every location is owned."""
    if not owners.unowned_now and not owners.unowned_after:
        return []
    unowned = number(owners.unowned_now, "location")
    now = f"Locations: {owners.recorded:,} recorded, {unowned} owned by no CPO now."
    if owners.unowned_after:
        after = (
            f"After this apply {number(owners.unowned_after, 'location')} still without an owner: "
            "the location owner key stays NOT VALID."
        )
    else:
        after = "After this apply every location has an owner, and the location owner key is validated."
    return [_Line(now), _Line(after), _BLANK]


def _unmanaged_lines(plan: Plan) -> list[_Line]:
    rows = [
        (safe(str(r.identity)), safe(r.role), safe(hide_secrets(r.url)) or "(no url)") for r in plan.unmanaged
    ]
    widths = [max((len(row[i]) for row in rows), default=0) for i in range(2)]
    return [
        _Line(f"{who.ljust(widths[0])}  {role.ljust(widths[1])}  {url}", indent=_ACTION)
        for who, role, url in rows
    ]


def _drift_lines(drift: Sequence[Drift]) -> list[_Line]:
    lines: list[_Line] = []
    for item in drift:
        if item.missing:
            lines.append(_Line(f"{_who(item.identity, item.role)} was deleted outside git", indent=_ACTION))
            continue
        lines.append(_Line(f"{_who(item.identity, item.role)} was changed outside git:", indent=_ACTION))
        lines.extend(_assignments("", _change_pairs(item.changes)))
    return lines


def _legend_lines(symbols: set[str]) -> list[_Line]:
    if not symbols:
        return []
    return [_Line("Symbols used above:"), *(_Line(_LEGEND[s], s, _ACTION) for s in _LEGEND if s in symbols)]


@dataclass(frozen=True)
class _Sections:
    """The text plan cut into the parts the Markdown comment shows separately."""

    plan: list[_Line]
    unmanaged: list[_Line]
    drift: list[_Line]
    notes: list[_Line]
    warnings: list[_Line]

    @classmethod
    def of(cls, plan: Plan, locations: LocationLister | None = None) -> _Sections:
        return cls(
            _plan_lines(plan, locations),
            _unmanaged_lines(plan),
            _drift_lines(plan.drift),
            [_Line(safe(note), indent=_ACTION) for note in plan.notes],
            [_Line(safe(warning), indent=_ACTION) for warning in plan.warnings],
        )

    def legend(self) -> list[_Line]:
        return _legend_lines({line.symbol for line in self.plan if line.symbol})


def _titled(title: str, lines: list[_Line]) -> list[_Line]:
    return [_Line(title), *lines, _BLANK] if lines else []


_UNMANAGED_TITLE = "Not managed by ocpi-parties (never changed):"
_DRIFT_TITLE = "Drift since the last apply (changed in the database outside git):"


def render_text(plan: Plan, *, style: Style = plain, locations: LocationLister | None = None) -> str:
    """The plan as a reviewer reads it in a terminal. `locations` lists each moved location's id."""
    sections = _Sections.of(plan, locations)
    lines = [
        *sections.plan,
        *_titled(_UNMANAGED_TITLE, sections.unmanaged),
        *_titled(_DRIFT_TITLE, sections.drift),
        *_titled("Warnings:", sections.warnings),
        *_titled("Notes:", sections.notes),
    ]
    legend = sections.legend()
    if legend:
        lines.extend([*legend, _BLANK])
    return "\n".join([*(line.render(style) for line in lines), summary(plan)])


# ---------------------------------------------------------------------------------------------- JSON


def render_json(plan: Plan) -> str:
    return json.dumps(plan_document(plan), indent=2, ensure_ascii=False)


# ---------------------------------------------------------------------------------------------- Markdown


def _size(text: str) -> int:
    """Characters as GitHub counts them (UTF-16 code units): at least `len(text)`."""
    return len(text) if text.isascii() else len(text.encode("utf-16-le", "surrogatepass")) // 2


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def _backticks(text: str) -> int:
    """The length of the longest run of backticks in `text`."""
    return max((len(run) for run in re.findall(r"`+", text)), default=0)


def _code(text: str) -> str:
    """`text` as an inline code span: no Markdown, HTML or @mention inside it takes effect."""
    text = safe(text)
    fence = "`" * (_backticks(text) + 1)
    padding = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{padding}{text}{padding}{fence}"


#: What can start Markdown (emphasis, code, links, tables, strike-through) in the middle of a line.
_MARKDOWN_PUNCTUATION = set("\\`*_[]|~!#")

#: An address GitHub's autolinker would link. It reads the Markdown source, not the text the escapes give:
#: `x\_y` would be linked to `x%5C_y` and shown with its backslash, `&amp;` shown as `&amp;`.
_ADDRESS = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.-]*://|www\.)[^\s'\"<>]*")

#: What starts a list item or a thematic break at the start of a line (`*`, `#` and `>` are escaped anyway).
_BLOCK_START = re.compile(r"[-+]|[0-9]+(?=[.)])")


def _plain_text(text: str) -> str:
    escaped = "".join(f"\\{c}" if c in _MARKDOWN_PUNCTUATION else c for c in text)
    return _html(escaped).replace("@", "@\u2060")


def _markdown_text(text: str) -> str:
    """Plain text in a Markdown line: HTML and inline markup escaped, addresses as code, never a link.

    GitHub decodes entities before it looks for @mentions, so `&#64;` would still notify: an invisible word
    joiner after each `@` is what stops `@team` from pinging a team. The text may start a line (a list item):
    a leading `-`, `+` or `1.` would start a list or a thematic break there, leading spaces a code block.
    """
    text = safe(text).lstrip(" ")
    parts: list[str] = []
    end = 0
    for address in _ADDRESS.finditer(text):
        parts += [_plain_text(text[end : address.start()]), _code(address.group())]
        end = address.end()
    markdown = "".join([*parts, _plain_text(text[end:])])
    start = _BLOCK_START.match(markdown)
    if start is None:
        return markdown
    return f"{start.group()}\\{markdown[start.end() :]}" if start.group()[0].isdigit() else f"\\{markdown}"


def _fence(lines: Sequence[str]) -> str:
    """A code fence that no line of the block can close: longer than any run of backticks in it."""
    return "`" * max(3, max((_backticks(line) for line in lines), default=0) + 1)


_SEE_ALL = "run `ocpi-parties plan` to see the full plan."


def _cut(lines: Sequence[str], budget: int) -> list[str]:
    """The first lines that fit in `budget` characters, ending at a blank line (a whole change) if any."""
    kept: list[str] = []
    used = 0
    for line in lines:
        used += _size(line) + 1
        if used > budget:
            break
        kept.append(line)
    if len(kept) < len(lines) and "" in kept:
        del kept[len(kept) - kept[::-1].index("") :]
    return kept


@dataclass(frozen=True)
class _Block:
    """A collapsible section: a title and the lines of its code block."""

    title: str
    language: str
    lines: list[str]

    @property
    def size(self) -> int:
        return sum(_size(line) + 1 for line in self.lines)

    def _render(self, kept: Sequence[str]) -> str:
        omitted = len(self.lines) - len(kept)
        fence = _fence(self.lines)
        title = f"{self.title} (truncated)" if omitted else self.title
        parts = [f"<details><summary>{_html(title)}</summary>", "", f"{fence}{self.language}", *kept, fence]
        if omitted:
            note = f"**Truncated:** {number(omitted, 'more line')} not shown; {_SEE_ALL}"
            parts += ["", note]
        return "\n".join([*parts, "", "</details>"])

    def overhead(self) -> int:
        """Characters the section takes besides its lines, at most (a truncation note included)."""
        return _size(self._render([]))

    def render(self, budget: int) -> str:
        """The section with as many whole lines as fit in `budget` characters, and a note for the rest."""
        return self._render(self.lines if self.size <= budget else _cut(self.lines, budget))


def _bullets(items: Sequence[str], more: str, limit: int = 10) -> list[str]:
    shown = [f"- {item}" for item in items[:limit]]
    if len(items) > limit:
        shown.append(f"- … and {len(items) - limit:,} more {more}")
    return shown


_MOVE_FACTS = {
    MoveReason.ORPHANS: "recorded under no CPO",
    MoveReason.RECORDED: "recorded under its own identity",
    MoveReason.MOVED_FROM: "recorded under identities it replaces",
    MoveReason.CLAIMED: "claimed by id",
    MoveReason.PARTY_DELETED: "of deleted parties",
}


def _facts(plan: Plan) -> list[str]:
    """What a reviewer should see before opening anything: default party, moves, blocked deletions."""
    facts: list[str] = []
    migrations = plan.counts.migrations_to_run
    if migrations:
        facts.append(f"- **Database:** {number(migrations, 'migration')} of ocpi-parties to run first")
    default = next((c for c in plan.applicable if isinstance(c, SetDefaultParty)), None)
    if default is not None:
        before = _code(str(default.before)) if default.before else "(none)"
        facts.append(f"- **Default party:** {before} → {_code(str(default.after))}")
    moves = [c for c in plan.applicable if isinstance(c, MoveLocations)]
    if moves:
        facts.append(f"- **Locations to move:** {plan.counts.locations_to_move:,}")
        items = [f"{m.count:,} to {_code(str(m.to))}, {_markdown_text(_MOVE_FACTS[m.reason])}" for m in moves]
        facts.extend(f"  {line}" for line in _bullets(items, "moves (see the full plan)"))
    if plan.awaiting:
        facts.append(f"- **Awaiting OCPI registration (nothing to apply):** {len(plan.awaiting):,}")
        items = [f"{_code(str(a.identity))} {_markdown_text(a.role)}" for a in plan.awaiting]
        facts.extend(f"  {line}" for line in _bullets(items, "partner roles (see the full plan)"))
    if plan.refused:
        facts += [
            "",
            "> [!CAUTION]",
            "> The party files do not fit this database; apply refuses until they do:",
        ]
        facts.extend(f"> {line}" for line in _bullets([_markdown_text(r) for r in plan.refused], "reasons"))
    if plan.warnings:
        facts += ["", "> [!NOTE]"]
        facts.extend(f"> {line}" for line in _bullets([_markdown_text(w) for w in plan.warnings], "warnings"))
    if plan.blocked:
        count = len(plan.blocked)
        facts += ["", "> [!WARNING]"]
        facts.append(
            f"> {number(count, 'deletion is', 'deletions are')} blocked by deletion protection and "
            f"{'is' if count == 1 else 'are'} not applied:"
        )
        items = [f"{_code(f'{d.identity} {d.role}')}: {_markdown_text(d.reason)}" for d in plan.blocked]
        facts.extend(f"> {line}" for line in _bullets(items, "blocked deletions (see the full plan)"))
    return facts


def _fit(blocks: Sequence[_Block], room: int) -> list[str]:
    """The blocks rendered in `room` characters: each gets an equal share, then what others leave unused."""
    room -= sum(block.overhead() + 2 for block in blocks)
    budgets = [min(block.size, max(room, 0) // max(len(blocks), 1)) for block in blocks]
    left = max(room, 0) - sum(budgets)
    for index, block in enumerate(blocks):
        extra = min(block.size - budgets[index], left)
        budgets[index] += extra
        left -= extra
    return [block.render(budget) for block, budget in zip(blocks, budgets, strict=True)]


def render_markdown(plan: Plan, *, limit: int = MARKDOWN_LIMIT) -> str:
    """A pull-request comment: summary and key facts first, the full plan in collapsible sections.

    Shorter than `limit` characters (as GitHub counts them): sections too long are cut at whole lines, with
    a note saying so. The heading and key facts are never cut; their lists stop at 10 items, so they take a
    few thousand characters at most, and any `limit` above that is kept.
    """
    head = "\n".join(["### ocpi-parties plan", "", f"**{summary(plan)}**", "", *_facts(plan)]).rstrip()
    sections = _Sections.of(plan)
    legend = sections.legend()
    plan_lines = [
        *sections.plan,
        *_titled("Warnings:", sections.warnings),
        *_titled("Notes:", sections.notes),
        *legend,
        *([_BLANK] if legend else []),
    ]
    blocks = []
    if plan_lines:
        blocks.append(_Block("Full plan", "diff", [line.diff() for line in plan_lines] + [summary(plan)]))
    if sections.unmanaged:
        title = f"Not managed by ocpi-parties: {number(len(plan.unmanaged), 'row')}, never changed"
        blocks.append(_Block(title, "text", [line.render(plain) for line in sections.unmanaged]))
    if sections.drift:
        title = f"Drift since the last apply: {number(len(plan.drift), 'row')} changed outside git"
        blocks.append(_Block(title, "text", [line.render(plain) for line in sections.drift]))
    return "\n\n".join([head, *_fit(blocks, limit - _size(head) - 2)]) + "\n"


# ---------------------------------------------------------------------------------------------- comparing


def _only_in(plan: Plan, other: Plan) -> list[Change]:
    others = [comparable(change_document(c)) for c in other.changes]
    return [c for c in plan.changes if comparable(change_document(c)) not in others]


def difference_markdown(reviewed: Plan, current: Plan, *, limit: int = MARKDOWN_LIMIT) -> str:
    """What differs between the plan reviewed and the current plan, for the merged pull request's comment:
    both summaries, then the changes only one of them makes, each in a collapsible section."""
    only_reviewed, only_current = _only_in(reviewed, current), _only_in(current, reviewed)
    head = [
        "**The current plan differs from the reviewed one: nothing was applied.**",
        "",
        f"- **Reviewed:** {_markdown_text(summary(reviewed))}",
        f"- **Current:** {_markdown_text(summary(current))}",
        f"- **Only in the reviewed plan:** {number(len(only_reviewed), 'change')}",
        f"- **Only in the current plan:** {number(len(only_current), 'change')}",
    ]
    if not only_reviewed and not only_current:
        head += ["", "Both plans make the same changes, in another order or number."]
    blocks = [
        _Block(
            title,
            "diff",
            [line.diff() for change in changes for line in [*_change_lines(change, None), _BLANK]],
        )
        for title, changes in (
            ("Only in the reviewed plan", only_reviewed),
            ("Only in the current plan", only_current),
        )
        if changes
    ]
    text = "\n".join(head)
    return "\n\n".join([text, *_fit(blocks, limit - _size(text) - 2)]) + "\n"
