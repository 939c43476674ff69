"""Party files made from database rows and from MaEVe's config: grouping, shared details, quoting."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler import importer, migrations
from reconciler.changes import PartyRow
from reconciler.database import Connection
from reconciler.errors import ReconcilerError
from reconciler.model import Identity, Kind


def row(
    role: str,
    cc: str,
    pid: str,
    url: str = "https://peer.example/versions",
    *,
    credentials: bool = True,
    **details: Any,
) -> PartyRow:
    """A row as `import` reads it; by default one OCPI registration wrote (it holds credentials)."""
    return PartyRow(Identity(cc, pid), role, url, details or None, not credentials, credentials=credentials)


def created(
    role: str, cc: str, pid: str, url: str = "https://own.example/versions", **details: Any
) -> PartyRow:
    """A row ocpi-parties created: it holds no OCPI credentials."""
    return row(role, cc, pid, url, credentials=False, **details)


def only(rows: list[PartyRow]) -> importer.Draft:
    result = importer.plan_import(rows)
    assert result.skipped == ()
    (draft,) = result.drafts
    return draft


def test_roles_of_one_identity_share_the_details_they_agree_on() -> None:
    draft = only(
        [
            row("EMSP", "DE", "EMO", name="Elektromobil Karte", website="https://emo.example"),
            row("CPO", "DE", "EMO", name="Elektromobil", website="https://emo.example"),
        ]
    )
    assert importer.render(draft) == (
        "# yaml-language-server: $schema=../schema/party.schema.json\n"
        "# Imported from the database by `ocpi-parties import`: written by OCPI registration.\n"
        f"# {importer.URL_LEFT_OUT}\n"
        "country_code: DE\n"
        "party_id: EMO\n"
        "kind: partner  # a roaming peer: OCPI registration creates its rows, with their url and token\n"
        "business_details:  # shared by every role below\n"
        "  website: https://emo.example\n"
        "roles:\n"
        "  - role: CPO\n"
        "    business_details:\n"
        "      name: Elektromobil\n"
        "  - role: EMSP\n"
        "    business_details:\n"
        "      name: Elektromobil Karte\n"
    )
    assert draft.expected() == {
        "CPO": {"name": "Elektromobil", "website": "https://emo.example"},
        "EMSP": {"name": "Elektromobil Karte", "website": "https://emo.example"},
    }


def test_rows_registration_wrote_get_the_identity_as_a_marked_name() -> None:
    draft = only([row("CPO", "BE", "PEE"), row("EMSP", "BE", "PEE")])
    text = importer.render(draft)
    assert (
        "business_details:  # shared by every role below\n  name: BE-PEE  # not recorded in the database"
        in text
    )
    assert "  - role: CPO\n  - role: EMSP\n" in text
    assert importer.check(draft, text) is None


def test_a_role_without_a_name_beside_one_with_a_name_gets_its_own_marked_name() -> None:
    draft = only([row("CPO", "FR", "ION", name="Ionity"), row("EMSP", "FR", "ION")])
    text = importer.render(draft)
    assert "      name: Ionity\n" in text and "      name: FR-ION  # not recorded" in text


def test_a_partners_url_is_never_written() -> None:
    """url and token are one pair, owned by registration: a file that wrote the url back would tear them."""
    draft = only(
        [
            row("CPO", "FR", "ION", "https://a.example/v", name="X"),
            row("EMSP", "FR", "ION", "https://b.example/v", name="X"),
        ]
    )
    text = importer.render(draft)
    assert draft.url is None and "url:" not in text.split("country_code")[1]
    assert [(r.role, r.kind) for r in draft.roles] == [("CPO", Kind.PARTNER), ("EMSP", Kind.PARTNER)]
    assert importer.URL_LEFT_OUT in text and importer.check(draft, text) is None


def test_a_credential_less_cpo_row_is_hosted_and_keeps_its_url() -> None:
    draft = only([created("CPO", "GB", "TWK", name="Own")])
    text = importer.render(draft)
    assert "kind: hosted  # this CSMS operates it: ocpi-parties creates its row and owns it\n" in text
    assert "url: https://own.example/versions\n" in text and importer.URL_LEFT_OUT not in text
    assert importer.check(draft, text) is None


def test_a_hosted_cpo_and_a_registered_emsp_share_a_file_with_a_role_kind() -> None:
    draft = only([created("CPO", "GB", "ABC", name="ABC"), row("EMSP", "GB", "ABC", name="ABC")])
    text = importer.render(draft)
    assert "kind: hosted  #" in text
    assert "  - role: CPO\n  - role: EMSP\n    kind: partner  # a roaming peer" in text
    assert draft.url is None and importer.URL_LEFT_OUT in text
    assert importer.check(draft, text) is None


@pytest.mark.parametrize("cpo", [None, "registered", "created"])
def test_a_credential_less_emsp_row_is_a_partner_awaiting_registration(cpo: str | None) -> None:
    """An earlier ocpi-parties created partner rows with no token; only a CPO can be hosted."""
    rows = [created("EMSP", "DE", "EMO", name="Emo")]
    if cpo is not None:
        rows.append(row("CPO", "DE", "EMO", name="Emo", credentials=cpo == "registered"))
    draft = only(rows)
    emsp = draft.roles[-1]
    assert (emsp.role, emsp.kind, emsp.awaiting) == ("EMSP", Kind.PARTNER, True)
    text = importer.render(draft)
    assert f"partner  # {importer.AWAITING_NOTE}\n" in text
    assert "url:" not in text.split("country_code")[1]
    assert importer.check(draft, text) is None


@pytest.mark.parametrize(("how", "credentials"), [("created", False), ("adopted", True), (None, True)])
def test_before_migration_0006_only_created_rows_count_as_credential_less(
    connection: Connection, how: str | None, credentials: bool
) -> None:
    """Without `holds_credentials`, the tool never reads the token: a row it did not create holds some."""
    migrations.migrate(connection, to=5)
    connection.execute(
        "INSERT INTO ocpi_parties (id, role, country_code, party_id, url, token)"
        " VALUES (901, 'CPO', 'GB', 'QQQ', 'https://q.example/v', 'secret-token')"
    )
    if how is not None:
        connection.execute(
            "INSERT INTO reconciler_managed_parties (party_row_id, how) VALUES (901, %s)", (how,)
        )
    rows, _ = importer.read_party_rows(connection)
    (found,) = [r for r in rows if r.identity.party_id == "QQQ"]
    assert found.credentials is credentials
    assert "token" not in {f.name for f in dataclasses.fields(found)} and "secret-token" not in str(rows)


def test_the_holds_credentials_column_decides_once_it_exists(connection: Connection) -> None:
    """Migration 0006's generated column, as it defines it: a created row given a token holds credentials."""
    migrations.migrate(connection, to=5)
    if not _has_column(connection):
        connection.execute(
            "ALTER TABLE ocpi_parties ADD COLUMN holds_credentials boolean"
            " GENERATED ALWAYS AS (token <> '') STORED"
        )
    connection.execute(
        "INSERT INTO ocpi_parties (id, role, country_code, party_id, url, token) VALUES"
        " (901, 'CPO', 'GB', 'QQQ', 'https://q.example/v', 'registered-later'),"
        " (902, 'CPO', 'GB', 'RRR', 'https://r.example/v', '')"
    )
    connection.execute(
        "INSERT INTO reconciler_managed_parties (party_row_id, how) VALUES (901, 'created'), (902, 'created')"
    )
    rows, _ = importer.read_party_rows(connection)
    assert {r.identity.party_id: r.credentials for r in rows} == {"QQQ": True, "RRR": False}


def _has_column(connection: Connection) -> bool:
    found = connection.execute(
        "SELECT count(*) FROM information_schema.columns"
        " WHERE table_name = 'ocpi_parties' AND column_name = 'holds_credentials'"
    ).fetchone()
    return bool(found and found[0])


def test_an_empty_url_is_left_out() -> None:
    assert only([created("CPO", "GB", "ABC", "", name="X")]).url is None


def test_a_url_party_files_refuse_is_left_to_the_row() -> None:
    long_url = "https://peer.example/" + "v" * 300
    draft = only([created("CPO", "GB", "ABC", long_url, name="X")])
    assert draft.url is None
    assert "refused here" in importer.render(draft)


@pytest.mark.parametrize(
    "url", ["https://ocpi:S3cr3t@own.example/versions", "https://own.example/versions?token=S3cr3t"]
)
def test_a_url_with_a_credential_is_never_written_to_a_file(url: str) -> None:
    draft = only([created("CPO", "GB", "ABC", url, name="X")])
    text = importer.render(draft)
    assert draft.url is None
    assert "refused here (this URL carries a credential" in text
    assert "S3cr3t" not in text


def test_details_with_a_credential_skip_the_party_without_showing_it() -> None:
    result = importer.plan_import(
        [created("CPO", "GB", "ABC", name="X", website="https://x.example/?apikey=S3cr3t")]
    )
    assert result.drafts == ()
    (skipped,) = result.skipped
    assert "this URL carries a credential (query parameter apikey)" in str(skipped)
    assert "S3cr3t" not in str(skipped)


@pytest.mark.parametrize(
    ("rows", "reason"),
    [
        ([row("CPO", "gb", "abc", name="X")], "country_code 'gb' is not two upper-case letters"),
        ([row("CPO", "GB", "A_C", name="X")], "party_id 'A_C' is not three upper-case letters or digits"),
        ([row("eMSP", "GB", "ABC", name="X")], "role 'eMSP' is not an OCPI 2.2.1 role"),
        ([row("CPO", "XX", "ABC", name="X")], "$.country_code:"),
        ([row("CPO", "GB", "ABC", name="x" * 101)], "$.business_details.name: name is too long"),
    ],
)
def test_rows_no_party_file_can_declare_are_skipped_with_the_reason(
    rows: list[PartyRow], reason: str
) -> None:
    result = importer.plan_import(rows)
    assert result.drafts == ()
    (skipped,) = result.skipped
    assert skipped.reason.startswith(reason)


def test_filters_by_role_and_identity() -> None:
    rows = [
        row("CPO", "DE", "EMO", name="A"),
        row("EMSP", "DE", "EMO", name="A"),
        row("EMSP", "NL", "VLT", name="V"),
    ]
    by_role = importer.plan_import(rows, roles=("EMSP",))
    assert [(str(d.identity), [r.role for r in d.roles]) for d in by_role.drafts] == [
        ("DE-EMO", ["EMSP"]),
        ("NL-VLT", ["EMSP"]),
    ]
    by_identity = importer.plan_import(rows, identities=(Identity("NL", "VLT"),))
    assert [str(d.identity) for d in by_identity.drafts] == ["NL-VLT"]


_TEXT = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Co", "Cn", "Zl", "Zp")),
    min_size=1,
    max_size=100,
).filter(lambda text: text.strip() == text and text != "")


@settings(max_examples=300, deadline=None)
@given(name=_TEXT)
def test_any_name_reads_back_exactly(name: str) -> None:
    """Quotes, colons, '#', YAML words (yes, null, 007), unicode: the file reads back as the row."""
    draft = only([row("CPO", "GB", "ABC", name=name)])
    assert importer.check(draft, importer.render(draft)) is None


@pytest.mark.parametrize(
    "name",
    [
        "007",
        "NO",
        "yes",
        "null",
        "~",
        "a: b",
        "a #b",
        "'quoted'",
        '"dq"',
        "- x",
        "*x",
        "&x",
        "Ünïcødé ⚡",
        "1e3",
        "0o7",
        "@home",
        "x:",
    ],
)
def test_awkward_names_read_back_exactly(name: str) -> None:
    draft = only([row("CPO", "GB", "ABC", name=name)])
    assert importer.check(draft, importer.render(draft)) is None


def test_a_plain_name_stays_plain() -> None:
    draft = only([row("CPO", "ES", "CPO", name="Carga Ibérica (Lisboa & Paris)")])
    assert "  name: Carga Ibérica (Lisboa & Paris)\n" in importer.render(draft)


def test_write_files_writes_all_or_nothing(tmp_path: Path) -> None:
    (tmp_path / "nl-vlt.yaml").write_text("kept\n")
    with pytest.raises(ReconcilerError, match=r"parties/nl-vlt.yaml already exists: nothing was written"):
        importer.write_files(tmp_path, "parties", {"GB-ABC.yaml": "a\n", "NL-VLT.yaml": "b\n"}, force=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nl-vlt.yaml"]
    importer.write_files(tmp_path, "parties", {"GB-ABC.yaml": "a\n", "NL-VLT.yaml": "b\n"}, force=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["GB-ABC.yaml", "NL-VLT.yaml"]
    assert (tmp_path / "NL-VLT.yaml").read_text() == "b\n"


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "manager.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_own_party_comes_from_maeve_ocpi_config(tmp_path: Path) -> None:
    path = _config(
        tmp_path,
        '[api]\norg_name = "Thoughtworks"\n\n[ocpi]\naddr = ":9090"\nexternal_url = "http://lb:9090"\n'
        'country_code = "gb"\nparty_id = "twk"\n',
    )
    draft = importer.draft_from_maeve_config(path, "manager.toml")
    assert importer.render(draft) == (
        "# yaml-language-server: $schema=../schema/party.schema.json\n"
        "# This CSMS's own charge point operator: [ocpi] in manager.toml.\n"
        "# Its name is [api] org_name in manager.toml.\n"
        "country_code: GB\n"
        "party_id: TWK\n"
        "kind: hosted  # this CSMS operates it: ocpi-parties creates its row and owns it\n"
        "business_details:\n"
        "  name: Thoughtworks\n"
        "roles:\n"
        "  - role: CPO\n"
    )
    named = importer.draft_from_maeve_config(path, "manager.toml", name="TWK Charging")
    assert named.shared == {"name": "TWK Charging"}
    assert "org_name" not in importer.render(named)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[api]\naddr = ":9410"\n', "manager.toml: no [ocpi] section"),
        ('[ocpi]\ncountry_code = "GB"\n', "manager.toml: [ocpi] has no party_id"),
        ('[ocpi]\ncountry_code = "GB"\nparty_id = 7\n', "manager.toml: [ocpi] has no party_id"),
        (
            '[ocpi]\ncountry_code = "GBR"\nparty_id = "TWK"\n',
            "manager.toml: [ocpi] country_code 'GBR' is not",
        ),
        ("[ocpi\ncountry_code = 1\n", "manager.toml: invalid TOML: "),
    ],
)
def test_a_config_that_names_no_party_is_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ReconcilerError) as raised:
        importer.draft_from_maeve_config(_config(tmp_path, text), "manager.toml")
    assert raised.value.message.startswith(message)


def test_invalid_toml_names_the_line(tmp_path: Path) -> None:
    with pytest.raises(ReconcilerError, match=r"line 2"):
        importer.draft_from_maeve_config(_config(tmp_path, '[ocpi]\ncountry_code = = "GB"\n'), "manager.toml")


def test_an_unreadable_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ReconcilerError, match=r"^missing.toml: cannot read the file"):
        importer.draft_from_maeve_config(tmp_path / "missing.toml", "missing.toml")
