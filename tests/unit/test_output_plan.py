"""Rendering of plans: golden output of each format, and the promises each format makes."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from render_cases import GON, OLD, TWK, VLT, creates, every_change

from reconciler.changes import (
    AdoptParty,
    AwaitRegistration,
    CreateParty,
    DeleteParty,
    Drift,
    FieldChange,
    LocationGroup,
    LocationOwners,
    MoveLocations,
    MoveReason,
    PartyRow,
    Plan,
    ReleaseParty,
    SetDefaultParty,
    SetLocationRules,
    UpdateParty,
)
from reconciler.errors import PlanDocumentError
from reconciler.model import Identity, Source
from reconciler.output import plain
from reconciler.output.plan import render_json, render_markdown, render_text, safe
from reconciler.plan_document import NO_CHANGES, plan_document, plan_from_document, summary

GOLDEN = Path(__file__).parents[1] / "golden"
GB_XXX = Identity("GB", "XXX")


def matches_golden(name: str, text: str) -> bool:
    """Compare with tests/golden/NAME. After a deliberate change, `UPDATE_GOLDEN=1 pytest` rewrites them."""
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    return path.read_text(encoding="utf-8") == text


def markdown_problems(markdown: str) -> list[str]:
    """What would break the comment on GitHub: unclosed code fences or <details>, HTML outside code blocks."""
    problems: list[str] = []
    fence = ""
    depth = 0
    for number, line in enumerate(markdown.splitlines(), 1):
        if fence:
            if re.fullmatch(rf" {{0,3}}`{{{len(fence)},}}\s*", line):
                fence = ""
            continue
        opening = re.match(r"(`{3,})[a-z]*$", line)
        if opening:
            fence = opening.group(1)
            continue
        depth += line.count("<details>") - line.count("</details>")
        outside_code_spans = re.sub(r"(`+).*?\1", "", line)
        for tag in re.findall(r"</?([a-z]+)", outside_code_spans):
            if tag not in {"details", "summary"}:
                problems.append(f"line {number}: HTML <{tag}> outside a code block")
        if depth < 0:
            problems.append(f"line {number}: </details> without <details>")
    if fence:
        problems.append("a code fence is never closed")
    if depth:
        problems.append(f"{depth} <details> never closed")
    return problems


# ---------------------------------------------------------------------------------------------- golden


def test_text_of_a_plan_with_every_change_type_matches_golden() -> None:
    assert matches_golden("plan.txt", render_text(every_change()) + "\n")


def test_json_of_a_plan_with_every_change_type_matches_golden() -> None:
    assert matches_golden("plan.json", render_json(every_change()) + "\n")


def test_markdown_of_a_plan_with_every_change_type_matches_golden() -> None:
    assert matches_golden("plan.md", render_markdown(every_change()))


def test_show_locations_text_matches_golden() -> None:
    def ids(move: MoveLocations) -> list[str]:
        return list(move.location_ids) or [
            f"{g.recorded or g.owner}-{n}" for g in move.groups for n in (1, 2)
        ]

    assert matches_golden("plan-show-locations.txt", render_text(every_change(), locations=ids) + "\n")


# ---------------------------------------------------------------------------------------------- text


def test_every_change_type_appears_in_apply_order() -> None:
    text = render_text(every_change()).split("Symbols used above:")[0]
    headings = [line[2:4] for line in text.splitlines() if re.match(r"  [-+~*>x/?] ", line)]
    order = "".join(symbol[0] for symbol in headings)
    # create/adopt, update, default party, location rules, moves by reason, release, deletes; then the blocked
    # deletion and the partner awaiting registration, which apply does not touch.
    assert order == "+*~~~>>>>>/--x?"


def test_every_delete_shows_its_reason() -> None:
    plan = Plan(
        (
            DeleteParty(OLD, "CPO", "marked deleted at parties/GB-OLD.yaml:3:1"),
            DeleteParty(OLD, "EMSP", "no longer declared in the party files"),
        )
    )
    lines = render_text(plan).splitlines()
    assert "  - GB-OLD CPO will be deleted: marked deleted at parties/GB-OLD.yaml:3:1" in lines
    assert "  - GB-OLD EMSP will be deleted: no longer declared in the party files" in lines


def test_summary_line_counts_with_thousands_separators() -> None:
    plan = Plan(
        (
            CreateParty(TWK, "CPO", None, {"name": "T"}),
            CreateParty(TWK, "EMSP", None, {"name": "T"}),
            AdoptParty(OLD, "CPO", ()),
            UpdateParty(OLD, "EMSP", (FieldChange("url", "a", "b"),)),
            MoveLocations(MoveReason.ORPHANS, TWK, (LocationGroup(None, GB_XXX, 1_234, owned=False),)),
        )
    )
    expected = "Plan: 2 to add, 1 to change, 0 to delete, 1 to adopt; 1,234 locations to move."
    assert summary(plan) == expected
    assert render_text(plan).splitlines()[-1] == expected
    assert "GB-XXX  1,234" in render_text(plan)


def test_one_location_is_singular() -> None:
    plan = Plan((MoveLocations(MoveReason.ORPHANS, TWK, (LocationGroup(None, GB_XXX, 1, owned=False),)),))
    assert summary(plan) == "Plan: 0 to add, 0 to change, 0 to delete, 0 to adopt; 1 location to move."


def test_no_changes_is_one_line() -> None:
    assert render_text(Plan(())) == NO_CHANGES == "No changes. The database matches the party files."
    assert render_markdown(Plan(())) == f"### ocpi-parties plan\n\n**{NO_CHANGES}**\n"
    assert plan_document(Plan(()))["has_changes"] is False


def test_no_changes_still_lists_unmanaged_rows_drift_and_notes() -> None:
    peer = PartyRow(Identity("BE", "PEE"), "CPO", "https://peer.example", None, False)
    plan = Plan((), (peer,), (Drift(TWK, "CPO", (), missing=True),), ("a note",))
    assert render_text(plan) == "\n".join(
        [
            "Not managed by ocpi-parties (never changed):",
            "  BE-PEE  CPO  https://peer.example",
            "",
            "Drift since the last apply (changed in the database outside git):",
            "  GB-TWK CPO was deleted outside git",
            "",
            "Notes:",
            "  a note",
            "",
            NO_CHANGES,
        ]
    )


def test_blocked_deletion_is_marked_and_counted_but_not_applied() -> None:
    reason = (
        "no longer declared in the party files; deleting needs a tombstone (deleted: true) or --allow-delete"
    )
    plan = Plan((DeleteParty(OLD, "EMSP", reason, blocked=True),))
    text = render_text(plan)
    assert text.splitlines() == [
        "Blocked by deletion protection (not applied):",
        "",
        f"  x GB-OLD EMSP will NOT be deleted: {reason}",
        "      to keep it instead, declare it again under parties/",
        "",
        "Symbols used above:",
        "  x deletion blocked by deletion protection: shown, not applied",
        "",
        "Plan: 0 to add, 0 to change, 0 to delete, 0 to adopt; 0 locations to move; 1 deletion blocked.",
    ]
    markdown = render_markdown(plan)
    assert "> [!WARNING]\n> 1 deletion is blocked by deletion protection and is not applied:" in markdown
    assert "> - `GB-OLD EMSP`: no longer declared" in markdown
    document = plan_document(plan)
    assert document["changes"][0] == {
        "action": "delete",
        "identity": "GB-OLD",
        "role": "EMSP",
        "reason": reason,
        "blocked": True,
    }
    assert document["summary"]["deletions_blocked"] == 1 and document["summary"]["to_delete"] == 0


def test_legend_lists_only_the_symbols_used() -> None:
    text = render_text(Plan((CreateParty(TWK, "CPO", None, {"name": "T"}),)))
    legend = text.split("Symbols used above:\n")[1].split("\n\n")[0]
    assert legend == "  + create"


def test_created_row_shows_every_business_detail_and_its_source() -> None:
    text = render_text(every_change())
    assert "  + DE-EMO CPO will be created (parties/DE-EMO.yaml:12:5)" in text
    for field in ("url", "name", "website", "logo.url", "logo.category", "logo.type", "logo.width"):
        assert re.search(rf"^      \+ (business_details\.)?{re.escape(field)} +=", text, re.M), field


def test_source_is_left_out_when_unknown() -> None:
    text = render_text(Plan((UpdateParty(TWK, "CPO", (FieldChange("url", "a", "b"),)),)))
    assert "  ~ GB-TWK CPO will be updated in place\n" in text
    assert '      ~ url = "a" -> "b"\n' in text


def test_default_party_from_none() -> None:
    text = render_text(Plan((SetDefaultParty(None, TWK),)))
    assert "  ~ default party will change: (none) -> GB-TWK" in text
    assert plan_document(Plan((SetDefaultParty(None, TWK),)))["changes"] == [
        {"action": "set_default_party", "before": None, "after": "GB-TWK"}
    ]


def test_locations_are_groups_unless_listing_is_asked_for() -> None:
    move = MoveLocations(MoveReason.ORPHANS, TWK, (LocationGroup(None, GB_XXX, 100_000, owned=False),))
    plan = Plan((move,))
    assert len(render_text(plan).splitlines()) < 15
    listed = render_text(plan, locations=lambda m: (f"LOC-{n}" for n in range(3)))
    assert (
        "      GB-XXX  100,000\n      location ids:\n        LOC-0\n        LOC-1\n        LOC-2\n" in listed
    )
    claimed = Plan((MoveLocations(MoveReason.CLAIMED, TWK, location_ids=("L1", "L2")),))
    assert "L1" not in render_text(claimed)
    assert "      location ids:\n        L1\n        L2\n" in render_text(
        claimed, locations=lambda m: m.location_ids
    )


def test_style_colours_the_symbols_only() -> None:
    text = render_text(
        Plan((CreateParty(TWK, "CPO", None, {"name": "T"}),)), style=lambda t, c: f"<{c}>{t}</{c}>"
    )
    assert "  <green>+</green> GB-TWK CPO will be created" in text
    assert text.endswith("Plan: 1 to add, 0 to change, 0 to delete, 0 to adopt; 0 locations to move.")


# ---------------------------------------------------------------------------------------------- safety


HOSTILE = "Evil</details>\n```\n<script>alert(1)</script> | *x* @team \x1b[31mred\u202e"


def hostile_plan() -> Plan:
    who = Identity("G`", "<b>")
    return Plan(
        (
            CreateParty(who, "CPO|x", "https://a.example", {"name": HOSTILE}),
            UpdateParty(TWK, "CPO", (FieldChange("business_details.name", "```", HOSTILE),)),
            SetDefaultParty(who, TWK),
            MoveLocations(MoveReason.ORPHANS, TWK, (LocationGroup(who, who, 3), LocationGroup(None, TWK, 2))),
            ReleaseParty(who, "EMSP", HOSTILE),
            DeleteParty(who, "``", HOSTILE, blocked=True),
        ),
        (PartyRow(who, HOSTILE, "```" * 40, None, False),),
        (Drift(who, "CPO", (FieldChange("url", HOSTILE, "````"),)),),
        (HOSTILE, "```", "</details>"),
        awaiting=(AwaitRegistration(who, HOSTILE),),
        warnings=(HOSTILE, "````"),
    )


def test_text_escapes_control_characters_from_the_database() -> None:
    text = render_text(hostile_plan())
    assert "\x1b" not in text and "\u202e" not in text
    assert "\\u001b[31mred\\u202e" in text
    assert all(line.isprintable() for line in text.splitlines())


def test_markdown_of_hostile_names_stays_well_formed() -> None:
    markdown = render_markdown(hostile_plan())
    assert markdown_problems(markdown) == []
    assert markdown.count("<details>") == 3 and markdown.count("\n</details>") == 3
    head = markdown.split("<details>")[0]
    assert "@team" not in head and "@\u2060team" in head and "<script>" not in head
    assert "> - ``` G`-<b> `` ```: Evil&lt;/details&gt;\\\\u000a\\`\\`\\`" in head
    assert "- **Default party:** ``G`-<b>`` → `GB-TWK`" in head


def test_passwords_in_urls_are_never_shown() -> None:
    plan = Plan(
        (CreateParty(TWK, "CPO", "https://user:s3cret@ocpi.example/versions", {"name": "T"}),),
        (PartyRow(OLD, "CPO", "https://peer:hunter2@peer.example/v", None, False),),
    )
    for output in (render_text(plan), render_json(plan), render_markdown(plan)):
        assert "s3cret" not in output and "hunter2" not in output
        assert "https://user:***@ocpi.example/versions" in output


def test_secret_query_parameters_in_urls_are_never_shown() -> None:
    plan = Plan((), (PartyRow(OLD, "CPO", "https://peer.example/v?format=json&token=tok-91f3", None, False),))
    for output in (render_text(plan), render_json(plan), render_markdown(plan)):
        assert "tok-91f3" not in output
        assert "https://peer.example/v?format=json&token=***" in output


def test_safe_leaves_printable_text_alone() -> None:
    assert safe("Carga Ibérica 充電") == "Carga Ibérica 充電"
    assert safe("a\nb\u200bc") == "a\\u000ab\\u200bc"


# ---------------------------------------------------------------------------------------------- Markdown


def test_markdown_starts_with_the_summary_and_key_facts() -> None:
    markdown = render_markdown(every_change())
    lines = markdown.splitlines()
    assert lines[0] == "### ocpi-parties plan"
    assert lines[2] == f"**{summary(every_change())}**"
    assert "- **Default party:** `GB-TWK` → `ES-CPO`" in lines
    assert "- **Locations to move:** 1,644" in lines
    assert markdown.index("[!WARNING]") < markdown.index("<details>")
    assert "```diff\nocpi-parties will make these changes" in markdown
    assert markdown_problems(markdown) == []


def test_markdown_of_20000_creates_stays_under_the_limit() -> None:
    markdown = render_markdown(creates(20_000))
    assert 55_000 < len(markdown) < 60_000
    assert markdown_problems(markdown) == []
    assert markdown.startswith(
        "### ocpi-parties plan\n\n**Plan: 20,000 to add, 0 to change, 0 to delete, 0 to adopt; "
    )
    truncated = re.search(
        r"\n```\n\n\*\*Truncated:\*\* ([\d,]+) more lines not shown; run `ocpi-parties plan` to see the full "
        r"plan\.\n\n</details>\n$",
        markdown,
    )
    assert truncated is not None
    shown = markdown.split("```diff\n")[1].split("\n```\n")[0].split("\n")
    assert len(shown) + int(truncated.group(1).replace(",", "")) == len(
        render_text(creates(20_000)).split("\n")
    )
    assert shown[-1] == "", "cut after a whole change"


def test_the_comment_ci_posts_for_a_huge_plan_stays_under_githubs_limit() -> None:
    """20,000 creates and 40 moves of 500 groups each, posted as the workflows post it (marker, footer)."""
    moves = tuple(
        MoveLocations(
            MoveReason.MOVED_FROM,
            Identity("ES", f"{m:03d}"),
            tuple(
                LocationGroup(Identity(f"P{chr(65 + m % 26)}", f"{g:03d}"), TWK, 1_000 + g)
                for g in range(500)
            ),
        )
        for m in range(40)
    )
    peers = tuple(
        PartyRow(Identity("BE", f"{n:03d}"), "CPO", f"https://p{n}.example", None, False) for n in range(999)
    )
    plan = Plan((*creates(20_000).changes, *moves), peers)
    markdown = render_markdown(plan)
    # The comment script adds the marker, the commit and the run's address: bounded by its own length.
    script = (Path(__file__).parents[2] / ".github" / "scripts" / "plan-comment.js").read_text(
        encoding="utf-8"
    )
    assert "<!-- ocpi-parties-plan -->" in script
    assert len(markdown.encode("utf-16-le")) // 2 + len(script) + 500 < 65_536
    assert markdown_problems(markdown) == []
    assert f"- **Locations to move:** {40 * sum(range(1_000, 1_500)):,}" in markdown
    assert "- … and 30 more moves (see the full plan)" in markdown
    assert markdown.count("(truncated)</summary>") == 2
    assert markdown.count("**Truncated:**") == 2
    assert "run `ocpi-parties plan` to see the full plan." in markdown


def test_markdown_shares_the_limit_between_long_sections() -> None:
    peers = tuple(
        PartyRow(Identity("BE", f"{n:03d}"), "CPO", f"https://p{n}.example", None, False) for n in range(900)
    )
    drift = tuple(Drift(Identity("FR", f"{n:03d}"), "CPO", (), missing=True) for n in range(900))
    big = creates(5_000)
    plan = Plan(big.changes, peers * 5, drift * 5)
    markdown = render_markdown(plan, limit=20_000)
    assert len(markdown) < 20_000 and markdown_problems(markdown) == []
    assert markdown.count("(truncated)</summary>") == 3
    assert markdown.count("**Truncated:**") == 3


@settings(max_examples=60, deadline=None)
@given(
    names=st.lists(st.text(min_size=0, max_size=120), min_size=1, max_size=80),
    limit=st.integers(min_value=4_000, max_value=60_000),
)
def test_markdown_is_always_under_the_limit_and_well_formed(names: list[str], limit: int) -> None:
    changes = tuple(CreateParty(TWK, name[:50] or "R", name, {"name": name}) for name in names)
    plan = Plan(
        changes * 20,
        tuple(PartyRow(OLD, name[:50], name, None, False) for name in names),
        tuple(Drift(OLD, "CPO", (FieldChange("url", name, name + "`"),)) for name in names),
        tuple(names),
    )
    markdown = render_markdown(plan, limit=limit)
    assert len(markdown) < limit
    assert markdown_problems(markdown) == []


# ---------------------------------------------------------------------------------------------- JSON


def test_json_round_trips_and_is_deterministic() -> None:
    text = render_json(every_change())
    document = json.loads(text)
    assert document == plan_document(every_change())
    assert text == render_json(every_change())
    assert list(document) == [
        "format_version",
        "has_changes",
        "summary",
        "changes",
        "unmanaged",
        "drift",
        "awaiting_registration",
        "warnings",
        "refused",
        "notes",
        "locations",
    ]
    assert document["format_version"] == 2
    assert [c["action"] for c in document["changes"]] == [
        "create",
        "adopt",
        "update",
        "set_default_party",
        "set_location_rules",
        "move_locations",
        "move_locations",
        "move_locations",
        "move_locations",
        "move_locations",
        "release",
        "delete",
        "delete",
        "delete",
    ]
    moves = [c for c in document["changes"] if c["action"] == "move_locations"]
    assert [m["reason"] for m in moves] == ["claimed", "recorded", "moved_from", "orphans", "party_deleted"]
    assert "Österreich" in text, "not ASCII-escaped"


def test_json_summary_counts_match_the_plan() -> None:
    counts = plan_document(every_change())["summary"]
    assert counts.pop("text") == summary(every_change())
    assert list(counts.items()) == [
        ("to_add", 1),
        ("to_change", 3),
        ("to_delete", 2),
        ("to_adopt", 1),
        ("to_release", 1),
        ("awaiting_registration", 1),
        ("locations_to_move", 1_644),
        ("migrations_to_run", 0),
        ("deletions_blocked", 1),
    ]


def test_pending_migrations_come_first_in_every_format() -> None:
    from reconciler.changes import RunMigrations

    plan = Plan((RunMigrations(("0001_system_config", "0002_business_details")),))
    text = render_text(plan)
    assert text.splitlines()[2] == "  ~ database: 2 migrations of ocpi-parties will run first"
    assert "      0001_system_config" in text
    assert text.endswith(
        "Plan: 0 to add, 0 to change, 0 to delete, 0 to adopt; 0 locations to move; 2 migrations to run."
    )
    document = plan_document(plan)
    assert document["changes"] == [
        {"action": "run_migrations", "migrations": ["0001_system_config", "0002_business_details"]}
    ]
    assert document["summary"]["migrations_to_run"] == 2 and document["has_changes"] is True
    assert "- **Database:** 2 migrations of ocpi-parties to run first" in render_markdown(plan)


def test_json_source_positions() -> None:
    plan = Plan((CreateParty(TWK, "CPO", None, {"name": "T"}, Source("parties/GB-TWK.yaml", 6, 5)),))
    assert plan_document(plan)["changes"][0]["source"] == {
        "file": "parties/GB-TWK.yaml",
        "line": 6,
        "column": 5,
    }


@pytest.mark.parametrize("name", ["plan.txt", "plan.json", "plan.md", "plan-show-locations.txt"])
def test_golden_files_end_with_one_newline(name: str) -> None:
    text = (GOLDEN / name).read_text(encoding="utf-8")
    assert text.endswith("\n") and not text.endswith("\n\n")


def test_drift_without_field_changes_is_still_listed() -> None:
    text = render_text(Plan((), drift=(Drift(TWK, "CPO", ()),)))
    assert "  GB-TWK CPO was changed outside git:\n" in text


# ---------------------------------------------------------------------------------------------- docs

DOCS = (Path(__file__).parents[2] / "docs" / "plan-format.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("name", "fence"), [("plan.txt", "```text"), ("plan.json", "```json"), ("plan.md", "````markdown")]
)
def test_docs_show_the_real_output(name: str, fence: str) -> None:
    golden = (GOLDEN / name).read_text(encoding="utf-8")
    assert f"{fence}\n{golden}{fence.rstrip('abcdefghijklmnopqrstuvwxyz')}\n" in DOCS


def test_docs_show_locations_example_is_real() -> None:
    example = DOCS.split("`plan --show-locations` adds")[1].split("```text\n")[1].split("```")[0]
    assert example in (GOLDEN / "plan-show-locations.txt").read_text(encoding="utf-8")


def test_docs_figures_for_20000_creates_are_real() -> None:
    markdown = render_markdown(creates(20_000))
    shown = markdown.count("will be created")
    sentence = f"a comment of {len(markdown):,} characters that shows the first {shown:,} of them"
    assert sentence in " ".join(DOCS.split())
    truncated = re.search(r"\*\*Truncated:\*\* [\d,]+ more lines not shown;[^\n]*", markdown)
    assert truncated is not None and f"```markdown\n{truncated.group(0)}\n```" in DOCS


def test_markdown_limit_counts_characters_as_github_does() -> None:
    plan = Plan(tuple(CreateParty(TWK, "CPO", None, {"name": "🔌" * 100}) for _ in range(2_000)))
    markdown = render_markdown(plan, limit=30_000)
    assert len(markdown.encode("utf-16-le")) // 2 < 30_000 < 2 * len(markdown)
    assert markdown_problems(markdown) == []


def test_the_owner_lines_say_what_keeps_the_key_from_being_validated() -> None:
    owners = LocationOwners(recorded=1_000, unowned_now=12, unowned_after=3)
    text = render_text(Plan((), owners=owners), style=plain)
    assert "Locations: 1,000 recorded, 12 locations owned by no CPO now.\n" in text
    assert (
        "After this apply 3 locations still without an owner: the location owner key stays NOT VALID." in text
    )
    assert "Locations:" not in render_text(Plan((), owners=LocationOwners(5, 0, 0)), style=plain)
    assert plan_document(Plan((), owners=owners))["locations"] == {
        "recorded": 1_000,
        "unowned_now": 12,
        "unowned_after": 3,
    }


# ---------------------------------------------------------------------------------------------- ownership


GON_REASON = (
    "no longer declared in the party files; OCPI registration owns this row: its url, token and business "
    "details stay"
)


def test_a_release_is_its_own_change_never_a_deletion() -> None:
    plan = Plan((ReleaseParty(GON, "EMSP", GON_REASON),))
    text = render_text(plan)
    assert f"  / GB-GON EMSP will no longer be managed: {GON_REASON}" in text.splitlines()
    assert (
        "  / release: stop managing a row that OCPI registration owns; the row and its credentials stay"
        in text
    )
    assert (
        summary(plan)
        == "Plan: 0 to add, 0 to change, 0 to delete, 0 to adopt, 1 to release; 0 locations to move."
    )
    document = plan_document(plan)
    assert document["has_changes"] is True
    assert document["changes"] == [
        {"action": "release", "identity": "GB-GON", "role": "EMSP", "reason": GON_REASON}
    ]
    assert document["summary"]["to_release"] == 1 and document["summary"]["to_delete"] == 0
    # GitHub's diff colouring: a release is orange (!), not red like a deletion.
    assert f"!   GB-GON EMSP will no longer be managed: {GON_REASON}" in render_markdown(plan).splitlines()


def test_the_release_clause_is_left_out_when_nothing_is_released() -> None:
    plan = Plan((CreateParty(TWK, "CPO", None, {"name": "T"}),))
    assert "release" not in summary(plan)
    assert plan_document(plan)["summary"]["to_release"] == 0


def test_a_partner_awaiting_registration_changes_nothing_but_is_shown_and_counted() -> None:
    waiting = AwaitRegistration(VLT, "EMSP", Source("parties/NL-VLT.yaml", 7, 5))
    plan = Plan((), awaiting=(waiting,))
    assert render_text(plan).splitlines() == [
        "Declared partners without a row (nothing to apply):",
        "",
        "  ? NL-VLT EMSP is awaiting OCPI registration (parties/NL-VLT.yaml:7:5)",
        "",
        "Symbols used above:",
        "  ? awaiting OCPI registration: its row appears when the partner registers, and the next apply "
        "adopts it",
        "",
        "No changes. The database matches the party files; 1 partner role awaiting OCPI registration.",
    ]
    document = plan_document(plan)
    assert document["has_changes"] is False
    assert document["summary"]["awaiting_registration"] == 1
    assert document["changes"] == []
    assert document["awaiting_registration"] == [
        {
            "identity": "NL-VLT",
            "role": "EMSP",
            "source": {"file": "parties/NL-VLT.yaml", "line": 7, "column": 5},
        }
    ]
    markdown = render_markdown(plan)
    assert (
        "**No changes. The database matches the party files; 1 partner role awaiting OCPI registration.**"
        in (markdown)
    )
    assert "#   NL-VLT EMSP is awaiting OCPI registration (parties/NL-VLT.yaml:7:5)" in markdown.splitlines()
    assert markdown_problems(markdown) == []


def test_awaiting_partners_are_a_clause_of_a_plan_with_changes() -> None:
    waiting = tuple(AwaitRegistration(Identity("NL", f"V{n:02d}"), "EMSP") for n in range(2))
    plan = Plan(
        (
            CreateParty(TWK, "CPO", None, {"name": "T"}),
            ReleaseParty(GON, "EMSP", "gone"),
            DeleteParty(OLD, "CPO", "kept", blocked=True),
        ),
        awaiting=waiting,
    )
    assert summary(plan) == (
        "Plan: 1 to add, 0 to change, 0 to delete, 0 to adopt, 1 to release; 0 locations to move; "
        "2 awaiting registration; 1 deletion blocked."
    )
    assert plan_document(plan)["summary"]["awaiting_registration"] == 2
    text = render_text(plan)
    # Shown after what apply changes and what deletion protection keeps: nothing applies to them.
    assert text.index("Blocked by deletion protection") < text.index("Declared partners without a row")


def test_warnings_have_their_own_section_in_every_format() -> None:
    warning = (
        "NL-VLT EMSP: OCPI registration recorded the url 'https://api.voltaro.example/ocpi/versions', "
        "parties/NL-VLT.yaml expects 'https://ocpi.voltaro.example/versions'"
    )
    plan = Plan((), notes=("a note",), warnings=(warning,))
    assert render_text(plan).split("\n") == [
        "Warnings:",
        f"  {warning}",
        "",
        "Notes:",
        "  a note",
        "",
        NO_CHANGES,
    ]
    assert plan_document(plan)["warnings"] == [warning]
    assert plan_document(plan)["has_changes"] is False
    markdown = render_markdown(plan)
    assert f"Warnings:\n  {warning}\n" in markdown
    assert markdown_problems(markdown) == []


def test_recording_the_location_rules_is_a_change() -> None:
    rules = SetLocationRules(
        {"LOC-1": Identity("ES", "CPO"), "LOC-0": Identity("ES", "CPO")},
        {Identity("PT", "CPO"): Identity("ES", "CPO")},
        claims_before=3,
        moved_from_before=0,
    )
    plan = Plan((rules,))
    text = render_text(plan)
    assert (
        "  ~ location rules for MaEVe's new writes will be recorded:\n"
        "      2 locations claimed by id (was 3), 1 identity moved_from (was 0)\n"
    ) in text
    assert summary(plan) == "Plan: 0 to add, 1 to change, 0 to delete, 0 to adopt; 0 locations to move."
    assert plan_document(plan)["changes"] == [
        {
            "action": "set_location_rules",
            "claims": {"LOC-0": "ES-CPO", "LOC-1": "ES-CPO"},
            "moved_from": {"PT-CPO": "ES-CPO"},
            "claims_before": 3,
            "moved_from_before": 0,
        }
    ]


def test_move_groups_say_where_the_locations_stand_and_what_their_writer_recorded() -> None:
    groups = (
        LocationGroup(None, GB_XXX, 4, owned=False),
        LocationGroup(Identity("PT", "CPO"), TWK, 3),
        LocationGroup(TWK, Identity("gb", "twk"), 2),
    )
    plan = Plan((MoveLocations(MoveReason.RECORDED, Identity("ES", "CPO"), groups),))
    text = render_text(plan)
    assert "  > 9 locations recorded under ES-CPO's own identity will move to ES-CPO\n" in text
    assert (
        "      GB-XXX                    4\n"
        "      GB-TWK (recorded PT-CPO)  3\n"
        "      gb-twk                    2\n"  # recorded as the row is spelled, in another case: no note
    ) in text
    assert plan_document(plan)["changes"][0]["groups"] == [
        {"identity": "GB-XXX", "recorded": None, "owned": False, "count": 4},
        {"identity": "GB-TWK", "recorded": "PT-CPO", "owned": True, "count": 3},
        {"identity": "gb-twk", "recorded": "GB-TWK", "owned": True, "count": 2},
    ]
    assert "  - 9 to `ES-CPO`, recorded under its own identity" in render_markdown(plan).splitlines()


def test_a_claimed_move_lists_where_its_locations_come_from() -> None:
    move = MoveLocations(
        MoveReason.CLAIMED, Identity("ES", "CPO"), (LocationGroup(None, TWK, 2),), ("LOC-1", "LOC-2")
    )
    document = plan_document(Plan((move,)))["changes"][0]
    assert document["count"] == 2 and document["location_ids"] == ["LOC-1", "LOC-2"]
    assert document["groups"] == [{"identity": "GB-TWK", "recorded": None, "owned": True, "count": 2}]
    assert "      GB-TWK  2\n      (plan --show-locations lists their ids)\n" in render_text(Plan((move,)))


# ---------------------------------------------------------------------------------------------- reading back


def test_a_plan_read_back_from_its_document_renders_the_same_in_every_format() -> None:
    """`ocpi-parties show` and `history show` render a plan read from its JSON document: the golden plan read
    back gives the golden text, JSON and Markdown."""
    plan = every_change()
    again = plan_from_document(json.loads(render_json(plan)))
    assert render_text(again) == render_text(plan)
    assert render_json(again) == render_json(plan)
    assert render_markdown(again) == render_markdown(plan)
    hostile = hostile_plan()
    assert render_markdown(plan_from_document(plan_document(hostile))) == render_markdown(hostile)


def test_a_document_of_changes_only_reads_as_a_plan_of_those_changes() -> None:
    """The apply history records only the `changes` of the plan it applied."""
    plan = every_change()
    changes_only = plan_from_document({"changes": plan_document(plan)["changes"]})
    assert changes_only.changes == tuple(
        dataclasses.replace(c, row_id=None) if hasattr(c, "row_id") else c for c in plan.changes
    )
    assert plan_document(changes_only)["changes"] == plan_document(plan)["changes"]
    assert summary(changes_only) == summary(dataclasses.replace(plan, awaiting=()))


@pytest.mark.parametrize(
    "document",
    [
        {"format_version": 1, "changes": []},
        {"changes": [{"action": "explode"}]},
        {"changes": [{"action": "create"}]},
        {"changes": "not a list of changes"},
    ],
)
def test_a_document_plan_document_could_not_have_written_is_refused(document: dict[str, object]) -> None:
    with pytest.raises(PlanDocumentError):
        plan_from_document(document)


def test_apply_and_its_errors_count_in_english() -> None:
    """`1 location moved` and `1 deletion blocked`, never `1 locations moved` or `deletion(s)`."""
    from reconciler.apply import Outcome
    from reconciler.changes import Plan
    from reconciler.operations import complete_line as _complete_line
    from reconciler.plan_document import number

    assert "; 1 location moved." in _complete_line(Outcome(Plan(()), history_id=1, locations_moved=1))
    assert "; 2,000 locations moved." in _complete_line(Outcome(Plan(()), history_id=1, locations_moved=2000))
    assert number(1, "deletion") == "1 deletion"
    assert number(2, "identity", "identities") == "2 identities"
