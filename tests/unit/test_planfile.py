"""Saved plan files: round trip, digests, refusal of other versions and altered files. No database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.errors import PlanFileError
from reconciler.planfile import PLAN_FILE_VERSION, desired_digest, load, save
from reconciler.validate import validate_path

EXAMPLES = Path(__file__).parents[1] / "examples" / "valid"


def _desired(case: str):  # type: ignore[no-untyped-def]
    state = validate_path(EXAMPLES / case / "parties", "parties").state
    assert state is not None
    return state


def _save(path: Path, case: str = "moves-and-tombstones") -> None:
    save(
        path,
        desired=_desired(case),
        fingerprint="f" * 64,
        allow_delete=True,
        revision="abc123",
        created_at="2026-11-25T08:00:00+00:00",
        rendered={"format_version": 1},
    )


@pytest.mark.parametrize(
    "case",
    ["example-repository", "moves-and-tombstones", "shared-details-with-override", "hosted-cpo-partner-emsp"],
)
def test_round_trip_keeps_the_desired_state_and_positions(tmp_path: Path, case: str) -> None:
    path = tmp_path / "plan.json"
    _save(path, case)
    saved = load(path)
    assert saved.desired == _desired(case)
    assert [str(p.source) for p in saved.desired.parties] == [str(p.source) for p in _desired(case).parties]
    assert [str(t.source) for t in saved.desired.tombstones] == [
        str(t.source) for t in _desired(case).tombstones
    ]
    assert (saved.fingerprint, saved.allow_delete, saved.revision) == ("f" * 64, True, "abc123")


def test_digest_ignores_positions_but_not_meaning(tmp_path: Path) -> None:
    parties = tmp_path / "parties"
    parties.mkdir()
    (parties / "default-party.yaml").write_text("default_party: GB-TWK\n")
    (parties / "GB-TWK.yaml").write_text(
        "country_code: GB\nparty_id: TWK\nkind: hosted\nroles: [{role: CPO, business_details: {name: A}}]\n"
    )
    first = validate_path(parties).state
    (parties / "GB-TWK.yaml").write_text(
        "# a comment\n\ncountry_code: GB\nparty_id: TWK\nkind: hosted\n"
        "roles: [{role: CPO, business_details: {name: A}}]\n"
    )
    moved = validate_path(parties).state
    (parties / "GB-TWK.yaml").write_text(
        "country_code: GB\nparty_id: TWK\nkind: hosted\nroles: [{role: CPO, business_details: {name: B}}]\n"
    )
    renamed = validate_path(parties).state
    assert first is not None and moved is not None and renamed is not None
    assert desired_digest(first) == desired_digest(moved) != desired_digest(renamed)


def test_other_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    _save(path)
    document = json.loads(path.read_text())
    document["plan_file_version"] = PLAN_FILE_VERSION + 1
    document["tool_version"] = "9.9.9"
    path.write_text(json.dumps(document))
    with pytest.raises(PlanFileError, match=r"made by ocpi-parties 9\.9\.9 .*run plan again"):
        load(path)


def test_each_role_keeps_its_kind(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    _save(path, "hosted-cpo-partner-emsp")
    document = json.loads(path.read_text())
    assert [r["kind"] for r in document["desired"]["parties"][0]["roles"]] == ["hosted", "partner"]
    saved = load(path)
    assert [str(r.kind) for r in saved.desired.parties[0].roles] == ["hosted", "partner"]


def test_a_plan_file_from_before_kinds_is_refused(tmp_path: Path) -> None:
    """A version 1 plan file says nothing of hosted or partner, which decides what apply may do."""
    path = tmp_path / "plan.json"
    _save(path)
    document = json.loads(path.read_text())
    document["plan_file_version"] = 1
    for party in document["desired"]["parties"]:
        for role in party["roles"]:
            del role["kind"]
    path.write_text(json.dumps(document))
    with pytest.raises(PlanFileError, match=r"\(plan file version 1\).*\(version 3\): run plan again"):
        load(path)


def test_a_plan_file_with_sources_as_text_is_refused(tmp_path: Path) -> None:
    """Version 2 wrote each source as its display text `file:line:col`, which a path holding `:` garbled."""
    path = tmp_path / "plan.json"
    _save(path)
    document = json.loads(path.read_text())
    document["plan_file_version"] = 2
    document["desired"]["default_source"] = "team:a/parties/default-party.yaml:1:16"
    path.write_text(json.dumps(document))
    with pytest.raises(PlanFileError, match=r"\(plan file version 2\).*\(version 3\): run plan again"):
        load(path)


def test_a_changed_kind_is_an_altered_plan(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    _save(path, "hosted-cpo-partner-emsp")
    document = json.loads(path.read_text())
    document["desired"]["parties"][0]["roles"][1]["kind"] = "hosted"
    path.write_text(json.dumps(document))
    with pytest.raises(PlanFileError, match="altered after it was made"):
        load(path)
    document["desired"]["parties"][0]["roles"][1]["kind"] = "guest"
    path.write_text(json.dumps(document))
    with pytest.raises(PlanFileError, match="the desired state is malformed"):
        load(path)


def test_altered_desired_state_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    _save(path)
    document = json.loads(path.read_text())
    document["desired"]["default_party"] = "ES-CPO"
    path.write_text(json.dumps(document))
    with pytest.raises(PlanFileError, match="altered after it was made"):
        load(path)


@pytest.mark.parametrize("content", [b"", b"\xff\xfe", b"[]", b'{"a": 1}', b"not json"])
def test_not_a_plan_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "plan.json"
    path.write_bytes(content)
    with pytest.raises(PlanFileError, match="is not a plan file"):
        load(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PlanFileError, match="cannot read the plan file"):
        load(tmp_path / "absent.json")


def test_plan_file_holds_no_token_key(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    _save(path, "example-repository")
    assert "token" not in path.read_text()
