"""What validate reads from a loaded file, as new data: the loaded file is never changed. No database."""

from __future__ import annotations

import copy

from reconciler.load import LoadedFile, parse_text
from reconciler.validate.normalise import CaseField, case_fields, normalise, read_back


def _loaded(text: str, file: str = "GB-TWK.yaml") -> LoadedFile:
    loaded = parse_text(text, file)
    assert isinstance(loaded, LoadedFile), loaded
    return loaded


def test_the_loaded_file_is_left_as_it_was_loaded() -> None:
    loaded = _loaded(
        "country_code: gb\nparty_id: 007\ntoken: abc\nurl: https://u:pw@ocpi.example/v?token=t\n"
        "business_details: {name: T, logo: {url: https://x.example/l.png, category: OPERATOR, type: PNG}}\n"
        "roles: [{role: cpo, secret: s}, {role: EMSP}]\nmoved_from: [gb-old]\n"
    )
    before = copy.deepcopy(loaded.data)
    result = normalise(loaded)
    assert loaded.data == before
    assert result.data == {
        "country_code": "GB",
        "party_id": "007",
        "url": "https://***@ocpi.example/v?token=***",
        "business_details": {
            "name": "T",
            "logo": {"url": "https://x.example/l.png", "category": "OPERATOR", "type": "png"},
        },
        "roles": [{"role": "CPO"}, {"role": "EMSP"}],
        "moved_from": ["GB-OLD"],
    }
    assert [(p.code, p.path) for p in result.problems] == [
        ("secret-in-git", "$.token"),
        ("secret-in-git", "$.roles[0].secret"),
        ("secret-in-git", "$.url"),
        ("case", "$.country_code"),
        ("unquoted", "$.party_id"),
        ("case", "$.business_details.logo.type"),
        ("case", "$.moved_from[0]"),
        ("case", "$.roles[0].role"),
    ]


def test_what_does_not_change_is_shared_and_a_clean_file_is_not_copied() -> None:
    loaded = _loaded("country_code: gb\nparty_id: TWK\nroles: [{role: CPO}]\n")
    result = normalise(loaded)
    assert result.data is not loaded.data
    assert result.data["roles"] is loaded.data["roles"]
    clean = _loaded("country_code: GB\nparty_id: TWK\nroles: [{role: CPO}]\n")
    assert normalise(clean).data is clean.data
    assert normalise(clean).problems == ()


def test_a_list_with_two_changes_is_copied_once_and_keeps_both() -> None:
    loaded = _loaded("roles: [{role: cpo}, {role: emsp}, {role: NSP}]\n")
    result = normalise(loaded)
    assert result.data["roles"] == [{"role": "CPO"}, {"role": "EMSP"}, {"role": "NSP"}]
    assert result.data["roles"][2] is loaded.data["roles"][2]
    assert loaded.data["roles"] == [{"role": "cpo"}, {"role": "emsp"}, {"role": "NSP"}]


def test_a_document_that_is_only_a_url_with_a_credential() -> None:
    loaded = _loaded("https://u:pw@ocpi.example/\n")
    result = normalise(loaded)
    assert (result.data, loaded.data) == ("https://***@ocpi.example/", "https://u:pw@ocpi.example/")
    assert [p.path for p in result.problems] == ["$"]


def test_the_default_party_file() -> None:
    loaded = _loaded("default_party: gb-twk\n", "default-party.yaml")
    assert normalise(loaded, default=True).data == {"default_party": "GB-TWK"}
    assert loaded.data == {"default_party": "gb-twk"}
    assert list(case_fields({}, default=True)) == []


def test_case_fields_are_the_present_ones_in_document_order() -> None:
    data = {
        "party_id": "x",
        "business_details": {"logo": {"url": "u"}},
        "moved_from": ["a", "b"],
        "roles": [{"role": "CPO", "business_details": {"logo": {"type": "png"}}}, "not a role", {}],
    }
    assert list(case_fields(data)) == [
        CaseField(("party_id",), True),
        CaseField(("moved_from", 0), True),
        CaseField(("moved_from", 1), True),
        CaseField(("roles", 0, "role"), True),
        CaseField(("roles", 0, "business_details", "logo", "type"), False),
    ]


def test_read_back_is_the_normalised_data_or_the_load_problem() -> None:
    assert read_back("country_code: gb\n", "GB-TWK.yaml") == {"country_code": "GB"}
    problem = read_back("a: [\n", "GB-TWK.yaml")
    assert not isinstance(problem, dict) and problem.code == "yaml-syntax"
