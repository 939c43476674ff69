"""Property-based: whatever a party file holds, validate answers with problems and never crashes."""

from __future__ import annotations

import json
import string
import tempfile
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from reconciler.cli import cli
from reconciler.load import parse_text
from reconciler.model import PROBLEM_CODES, Problem
from reconciler.output.validation import render_github, render_json, render_text
from reconciler.validate import ValidationResult, validate_path

DEFAULT = "default_party: GB-TWK\n"
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _validate_text(text: str | bytes) -> ValidationResult:
    """Validate a directory holding `text` as GB-TWK.yaml; check the result is well formed."""
    with tempfile.TemporaryDirectory() as directory:
        parties = Path(directory) / "parties"
        parties.mkdir()
        (parties / "default-party.yaml").write_text(DEFAULT)
        target = parties / "GB-TWK.yaml"
        if isinstance(text, bytes):
            target.write_bytes(text)
        else:
            target.write_text(text, encoding="utf-8", errors="surrogatepass")
        result = validate_path(parties, "parties")
        for problem in result.problems:
            assert problem.code in PROBLEM_CODES
            assert problem.message and "\n" not in problem.message
            assert problem.source.file.startswith("parties/")
        assert (result.state is None) == bool(result.errors)
        render_text(result)
        json.loads(render_json(result))
        render_github(result)
        outcome = CliRunner().invoke(cli, ["validate", str(parties)])
        assert outcome.exit_code in (0, 1), outcome.output
        assert outcome.exception is None or isinstance(outcome.exception, SystemExit)
        return result


yaml_pieces = st.sampled_from(
    [
        *string.printable,
        "&a ",
        "*a",
        "<<: ",
        "---\n",
        "!!",
        "- ",
        ": ",
        "é",
        "\t",
        "country_code: ",
        "roles:\n",
    ]
)


@SETTINGS
@given(st.lists(yaml_pieces, max_size=120).map("".join))
def test_arbitrary_yaml_like_text(text: str) -> None:
    _validate_text(text)


@SETTINGS
@given(st.text(max_size=200))
def test_arbitrary_unicode_text(text: str) -> None:
    if any(0xD800 <= ord(char) <= 0xDFFF for char in text):
        text = text.encode("utf-8", "replace").decode("utf-8", "replace")
    _validate_text(text)


@SETTINGS
@given(st.binary(max_size=200))
def test_arbitrary_bytes(data: bytes) -> None:
    _validate_text(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


@SETTINGS
@given(json_values)
def test_arbitrary_documents(document: Any) -> None:
    _validate_text(yaml.safe_dump(document, allow_unicode=True))


names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=0, max_size=120)
urls = st.one_of(
    st.text(max_size=30), st.text(string.ascii_lowercase, min_size=1).map("https://{}.example/logo".format)
)
logos = st.fixed_dictionaries(
    {
        "url": urls,
        "category": st.sampled_from(["OPERATOR", "OWNER", "LOGO", ""]),
        "type": st.text(max_size=6),
    },
    optional={"width": st.integers(-5, 100_005), "height": st.integers(-5, 100_005), "thumbnail": urls},
)
details = st.fixed_dictionaries({}, optional={"name": names, "website": urls, "logo": logos})
kinds = st.sampled_from(["hosted", "partner", "partner", "Hosted", ""])
roles = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["CPO", "EMSP", "HUB", "NAP", "NSP", "OTHER", "SCSP", "cpo", "XYZ"])},
        optional={"business_details": details, "kind": kinds},
    ),
    max_size=4,
)
near_schema = st.fixed_dictionaries(
    {
        "country_code": st.sampled_from(["GB", "gb", "UK", "G", "", "GBR"]),
        "party_id": st.sampled_from(["TWK", "twk", "TW", "T_K", "TWKX"]),
    },
    optional={
        "kind": kinds,
        "roles": roles,
        "business_details": details,
        "url": urls,
        "token": st.text(max_size=5),
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(near_schema)
def test_documents_near_the_schema(document: dict[str, Any]) -> None:
    result = _validate_text(yaml.safe_dump(document, allow_unicode=True))
    event("valid" if result.state is not None else "invalid")
    if result.state is None:
        return
    party = result.state.parties[0]
    shared = document.get("business_details", {})
    for declared, role in zip(document["roles"], party.roles, strict=True):
        merged = {**shared, **declared.get("business_details", {})}
        assert role.business_details.name == merged["name"]
        assert role.business_details.website == merged.get("website")
        assert role.kind == declared.get("kind", document["kind"])
        assert role.role == "CPO" or not role.hosted  # only a CPO can be hosted
    assert party.url == document.get("url")


@SETTINGS
@given(names.filter(lambda n: 1 <= len(n) <= 100 and n.strip() == n and n != ""))
def test_accepted_names_are_read_back_exactly(name: str) -> None:
    text = (
        "country_code: GB\nparty_id: TWK\nkind: hosted\nroles:\n  - role: CPO\n    business_details:\n"
        "      name: " + json.dumps(name, ensure_ascii=False) + "\n"
    )
    loaded = parse_text(text, "f.yaml")
    if isinstance(loaded, Problem):  # YAML itself forbids a few characters (U+FFFE, U+FFFF...)
        assert loaded.code == "yaml-syntax"
        assert any(not char.isprintable() for char in name)
        return
    assert loaded.data["roles"][0]["business_details"]["name"] == name
