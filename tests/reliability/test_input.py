"""Hostile input, property-based: whatever the party files hold, validate answers without a traceback or a
hang, and every value it accepts goes through apply into the database and comes back byte for byte (through
`parties show --format json` and a direct query).

Example counts: a bounded default for CI; OCPI_PARTIES_LONG_TESTS=1 multiplies them (see `_examples`).
"""

from __future__ import annotations

import json
import string
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from maeve_sql import save_party
from reliability import LONG

from reconciler import apply as apply_module
from reconciler.cli import cli
from reconciler.database import Connection
from reconciler.load import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES
from reconciler.model import PROBLEM_CODES
from reconciler.validate import ValidationResult, validate_path

#: Seconds one file may take to validate: far above the real cost, far below a hang.
HANG = 10.0


def _examples(default: int) -> settings:
    return settings(
        max_examples=default * 20 if LONG else default,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )


def _validate(files: dict[str, str | bytes]) -> ValidationResult:
    """Validate a parties directory holding `files`, in the process and through the CLI, within HANG."""
    with tempfile.TemporaryDirectory() as directory:
        parties = Path(directory) / "parties"
        parties.mkdir()
        for name, content in files.items():
            target = parties / name
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
        started = time.monotonic()
        result = validate_path(parties, "parties")
        outcome = CliRunner().invoke(cli, ["validate", "--format", "json", str(parties)])
        assert time.monotonic() - started < HANG, "validate took too long"
    assert outcome.exit_code in (0, 1), outcome.output
    assert outcome.exception is None or isinstance(outcome.exception, SystemExit), outcome.exception
    assert json.loads(outcome.output)["valid"] == (result.state is not None)
    for problem in result.problems:
        assert problem.code in PROBLEM_CODES
        assert "\n" not in problem.message
    return result


DEFAULT = "default_party: GB-TWK\n"

# -- hostile text ------------------------------------------------------------------------------------------

HOSTILE = [
    "'; DROP TABLE locations; --",
    '"; DELETE FROM ocpi_parties WHERE ""="',
    "\\",
    "\\x00",
    "%s",
    "%(rows)s",
    "$1",
    "$$",
    "{}",
    "E'\\''",
    "\u2028",
    "\u202e",
    "\ufeff",
    "\x85",
    "\x01",
    "😀",
    "Ünïcødé",
    "中文",
    "null",
    "true",
    "~",
    "- x",
    "&a *a",
    "#",
]
hostile_text = st.lists(
    st.sampled_from(HOSTILE) | st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8),
    max_size=8,
).map("".join)
names = hostile_text.map(lambda text: text[:100])
path_text = st.text(string.ascii_letters + string.digits + "'\";%$-_.~!*()@,&=+[]", max_size=30)
urls = st.builds(
    "https://{}.example/{}?q={}".format,
    st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=12),
    path_text,
    path_text,
).map(lambda url: url[:255])


@st.composite
def party_files(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, str]]:
    """GB-TWK (the default CPO) with hostile business details, as a document and as files."""
    details: dict[str, Any] = {"name": draw(names)}
    if draw(st.booleans()):
        details["website"] = draw(urls)
    if draw(st.booleans()):
        details["logo"] = {
            "url": draw(urls),
            "category": draw(st.sampled_from(["OPERATOR", "OWNER", "NETWORK"])),
            "type": draw(st.sampled_from(["png", "svg", "jpeg", "gif"])),
        }
    document: dict[str, Any] = {
        "country_code": "GB",
        "party_id": "TWK",
        "kind": "hosted",
        "business_details": details,
    }
    if draw(st.booleans()):
        document["url"] = draw(urls)
    document["roles"] = [{"role": "CPO"}]
    if draw(st.booleans()):
        document["roles"].append(
            {"role": "EMSP", "kind": "partner", "business_details": {"name": draw(names)}}
        )
    style = draw(st.sampled_from([None, '"', "'", "|"]))
    text = yaml.safe_dump(document, allow_unicode=draw(st.booleans()), default_style=style, width=1000)
    # What the file says, read by PyYAML: its emitter can write a text that reads back otherwise (a NEL
    # first in a single-quoted scalar folds into a space), and the file is what ocpi-parties reads.
    return yaml.safe_load(text), {"GB-TWK.yaml": text, "default-party.yaml": DEFAULT}


@_examples(100)
@given(party_files())
def test_accepted_values_are_stored_and_read_back_byte_for_byte(
    migrated: Connection, database_url: str, generated: tuple[dict[str, Any], dict[str, str]]
) -> None:
    document, files = generated
    result = _validate(files)
    event("accepted" if result.state is not None else "refused")
    if result.state is None:
        return
    desired = result.state
    if len(document["roles"]) > 1:
        # A partner's row comes from OCPI registration; apply then manages its business details only.
        save_party(migrated, "EMSP", "GB", "TWK", url="https://registered.example/versions", token="t")
    apply_module.apply(
        migrated,
        desired,
        label="test",
        allow_delete=True,
        reviewed_fingerprint=None,
        revision=None,
        actor="hypothesis",
    )
    show = ["parties", "show", "GB-TWK", "--format", "json", "--database-url", database_url]
    shown = CliRunner().invoke(cli, show)
    assert shown.exit_code == 0, shown.output
    roles = {row["role"]: row for row in json.loads(shown.stdout)["roles"]}
    shared = document["business_details"]
    for declared in document["roles"]:
        expected = {**shared, **declared.get("business_details", {})}
        stored = roles[declared["role"]]
        assert stored["business_details"] == expected
        if declared["role"] == "EMSP":
            assert stored["url"] == "https://registered.example/versions", (
                "registration's url, never the file's"
            )
            continue
        assert stored["url"] == document.get("url", stored["url"])
        row = migrated.execute(
            "SELECT business_details ->> 'name', url FROM ocpi_parties"
            " WHERE role = %s AND country_code = 'GB' AND party_id = 'TWK'",
            (declared["role"],),
        ).fetchone()
        assert row is not None and row[0].encode() == expected["name"].encode()
        if "url" in document:
            assert row[1].encode() == document["url"].encode()


# -- files that try to cost too much ------------------------------------------------------------------------


@_examples(15)
@given(st.integers(MAX_FILE_BYTES - 200, MAX_FILE_BYTES + 200), st.sampled_from(["#", "x", "é"]))
def test_huge_files_are_refused_or_read(size: int, filler: str) -> None:
    head = "country_code: GB\nparty_id: TWK\nkind: hosted\nbusiness_details:\n  name: Big\n"
    head += "roles:\n  - role: CPO\n#"
    body = head + filler * ((size - len(head.encode())) // len(filler.encode()))
    result = _validate({"GB-TWK.yaml": body, "default-party.yaml": DEFAULT})
    if len(body.encode()) > MAX_FILE_BYTES:
        assert [p.code for p in result.errors] == ["too-large"]


@_examples(25)
@given(st.integers(1, 5 * MAX_DEPTH), st.sampled_from(["flow-list", "flow-map", "block"]))
def test_deep_nesting_is_refused_without_a_crash(depth: int, shape: str) -> None:
    if shape == "flow-list":
        value = "[" * depth + "]" * depth
    elif shape == "flow-map":
        value = "{a: " * depth + "1" + "}" * depth
    else:
        value = "".join(f"\n{'  ' * (level + 1)}k:" for level in range(depth)) + " 1"
    text = f"country_code: GB\nparty_id: TWK\nkind: hosted\nx: {value}\n"
    result = _validate({"GB-TWK.yaml": text, "default-party.yaml": DEFAULT})
    assert result.state is None
    codes = {p.code for p in result.errors}
    assert codes <= {"too-deep", "schema"}
    if depth > MAX_DEPTH + 1:
        assert "too-deep" in codes


@_examples(25)
@given(st.integers(2, 12), st.integers(2, 12))
def test_alias_bombs_are_refused_quickly(fan_out: int, levels: int) -> None:
    lines = ["a0: &a0 [x]"]
    for level in range(1, levels):
        lines.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * fan_out) + "]")
    text = "country_code: GB\nparty_id: TWK\nkind: hosted\n" + "\n".join(lines) + "\n"
    result = _validate({"GB-TWK.yaml": text, "default-party.yaml": DEFAULT})
    assert result.state is None
    # Values the aliases expand to: a0 is a list and its item; each next level a list of fan_out copies.
    expanded, level_size = 2, 2
    for _ in range(1, levels):
        level_size = 1 + fan_out * level_size
        expanded += level_size
    codes = [p.code for p in result.errors]
    if expanded > MAX_NODES + 10:
        assert codes == ["too-large"]
    elif expanded < MAX_NODES - 10:
        assert "too-large" not in codes


@_examples(60)
@given(st.binary(max_size=300) | st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_random_bytes_as_both_files(data: bytes) -> None:
    _validate({"GB-TWK.yaml": data, "default-party.yaml": data})
