"""`credentials-roles`: the hosted parties' CredentialsRole list, valid against OCPI 2.2.1's definition."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
from click.testing import CliRunner

from reconciler.cli import cli

ROOT = Path(__file__).parents[2]
SCHEMA = json.loads((Path(__file__).parents[1] / "ocpi-2.2.1-credentials-role.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA, format_checker=jsonschema.FormatChecker())


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["credentials-roles", *args])
    return result.exit_code, result.output


def test_json_is_a_valid_ocpi_credentials_role_list_of_every_hosted_party() -> None:
    code, out = _run(str(ROOT / "parties"), "--format", "json")
    roles = json.loads(out)
    assert code == 0
    assert list(VALIDATOR.iter_errors(roles)) == []
    assert [(r["country_code"], r["party_id"], r["role"]) for r in roles] == [
        ("ES", "CPO", "CPO"),
        ("GB", "TWK", "CPO"),
    ]  # the example's hosted CPOs; its partner NL-VLT is presented by its own platform
    assert roles[1]["business_details"]["logo"]["category"] == "OPERATOR"


def test_the_schema_refuses_what_ocpi_refuses() -> None:
    """The schema is no rubber stamp: a role without business details, or a name over 100, is invalid."""
    good = {"role": "CPO", "business_details": {"name": "X"}, "party_id": "TWK", "country_code": "GB"}
    assert VALIDATOR.is_valid([good])
    assert not VALIDATOR.is_valid([{k: v for k, v in good.items() if k != "business_details"}])
    assert not VALIDATOR.is_valid([{**good, "business_details": {"name": "x" * 101}}])
    assert not VALIDATOR.is_valid([{**good, "role": "CSMS"}])
    assert not VALIDATOR.is_valid([{**good, "party_id": "TWKX"}])


def test_text_lists_each_hosted_role_with_its_details() -> None:
    code, out = _run(str(ROOT / "parties"))
    assert code == 0
    assert "GB-TWK CPO: Thoughtworks EV Charging\n    website: https://" in out
    assert "NL-VLT" not in out


def test_invalid_files_are_refused(tmp_path: Path) -> None:
    (tmp_path / "GB-TWK.yaml").write_text("country_code: GB\n")
    code, _ = _run(str(tmp_path), "--format", "json")
    assert code == 1


def test_readme_documents_how_a_csms_serves_it() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "ocpi-parties credentials-roles" in text and "business_details" in text
