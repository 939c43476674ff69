"""The JSON Schemas under schema/: well formed, documented for editors, and true to OCPI 2.2.1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pycountry
import pytest
from jsonschema import Draft202012Validator

from reconciler.validate import schema_directory

SCHEMAS = sorted(schema_directory().glob("*.schema.json"))


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _subschemas(schema: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(schema, dict):
        yield where, schema
        for key, value in schema.items():
            if key in ("properties", "$defs"):
                for name, sub in value.items():
                    yield from _subschemas(sub, f"{where}/{key}/{name}")
            elif key == "items":
                yield from _subschemas(value, f"{where}/items")


def test_both_schemas_are_shipped() -> None:
    assert [p.name for p in SCHEMAS] == ["default-party.schema.json", "party.schema.json"]


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: p.name)
def test_schema_is_valid_draft_2020_12_with_an_id(path: Path) -> None:
    schema = _load(path)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"].startswith("urn:ocpi-parties:schema:")
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: p.name)
def test_every_property_has_a_title_and_description(path: Path) -> None:
    schema = _load(path)
    for where, sub in _subschemas(schema):
        for name, prop in sub.get("properties", {}).items():
            target = prop
            if "$ref" in prop and not ("title" in prop and "description" in prop):
                target = schema["$defs"][prop["$ref"].rsplit("/", 1)[-1]]
            assert target.get("title"), f"{where}/properties/{name} has no title"
            assert len(target.get("description", "")) > 20, f"{where}/properties/{name} has no description"


@pytest.mark.parametrize("path", SCHEMAS, ids=lambda p: p.name)
def test_every_object_forbids_unknown_keys(path: Path) -> None:
    for where, sub in _subschemas(_load(path)):
        if sub.get("type") == "object":
            assert sub.get("additionalProperties") is False, where


def test_country_codes_are_exactly_pycountrys_alpha2_list() -> None:
    codes = _load(schema_directory() / "party.schema.json")["$defs"]["country_code"]["enum"]
    expected = sorted(country.alpha_2 for country in pycountry.countries)
    assert codes == expected, "run: python scripts/update_country_codes.py"
    assert {"GB", "NL", "ES", "PT", "NO"} <= set(codes)
    assert "UK" not in codes and "XX" not in codes


def test_ocpi_2_2_1_limits() -> None:
    defs = _load(schema_directory() / "party.schema.json")["$defs"]
    details = defs["business_details"]["properties"]
    image = defs["image"]["properties"]
    assert details["name"]["maxLength"] == 100
    assert details["website"]["maxLength"] == 255
    assert image["url"]["maxLength"] == 255 and image["thumbnail"]["maxLength"] == 255
    assert image["type"]["maxLength"] == 4
    assert image["width"]["maximum"] == 99999 and image["height"]["maximum"] == 99999
    assert defs["role"]["properties"]["role"]["enum"] == ["CPO", "EMSP", "HUB", "NAP", "NSP", "OTHER", "SCSP"]
    assert image["category"]["enum"] == [
        "CHARGER",
        "ENTRANCE",
        "LOCATION",
        "NETWORK",
        "OPERATOR",
        "OTHER",
        "OWNER",
    ]
    assert defs["image"]["required"] == ["url", "category", "type"]
    assert defs["party_id"]["pattern"] == "^[A-Z0-9]{3}$"


def test_no_property_can_hold_a_secret() -> None:
    text = (schema_directory() / "party.schema.json").read_text(encoding="utf-8")
    names = {name for _, sub in _subschemas(json.loads(text)) for name in sub.get("properties", {})}
    assert not {name for name in names if "token" in name or "secret" in name or "password" in name}


def test_shipped_party_files_point_editors_at_the_schema() -> None:
    parties = Path(__file__).parents[2] / "parties"
    for path in parties.glob("*.yaml"):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        schema = "default-party" if path.name == "default-party.yaml" else "party"
        assert first == f"# yaml-language-server: $schema=../schema/{schema}.schema.json", path.name


def test_kind_is_hosted_or_partner_on_the_party_and_on_each_role() -> None:
    schema = _load(schema_directory() / "party.schema.json")
    assert schema["$defs"]["kind"]["enum"] == ["hosted", "partner"]
    assert schema["properties"]["kind"]["$ref"] == "#/$defs/kind"
    assert schema["$defs"]["role"]["properties"]["kind"]["$ref"] == "#/$defs/kind"
    # A reviewer reads what each value means in the schema itself (editors show it on hover).
    description = schema["properties"]["kind"]["description"]
    assert "hosted: this CSMS operates it" in description and "partner: a roaming peer" in description
    assert "Only a CPO can be hosted" in description


@pytest.mark.parametrize(
    ("document", "valid"),
    [
        ({"country_code": "GB", "party_id": "TWK", "roles": [{"role": "CPO"}]}, False),
        ({"country_code": "GB", "party_id": "TWK", "kind": "hosted", "roles": [{"role": "CPO"}]}, True),
        ({"country_code": "GB", "party_id": "TWK", "kind": "guest", "roles": [{"role": "CPO"}]}, False),
        (
            {
                "country_code": "GB",
                "party_id": "TWK",
                "kind": "hosted",
                "roles": [{"role": "CPO"}, {"role": "EMSP", "kind": "partner"}],
            },
            True,
        ),
        ({"country_code": "GB", "party_id": "OLD", "deleted": True}, True),  # a tombstone needs no kind
    ],
)
def test_kind_is_required_except_on_a_tombstone(document: dict[str, Any], valid: bool) -> None:
    validator = Draft202012Validator(_load(schema_directory() / "party.schema.json"))
    assert validator.is_valid(document) is valid
