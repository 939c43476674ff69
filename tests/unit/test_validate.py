"""Rules and the desired state built from valid files. No database."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.errors import UsageError
from reconciler.load import load_file
from reconciler.model import BusinessDetails, DesiredState, Identity, Image, Kind, Problem, Severity
from reconciler.secret import hide_url_secrets, url_secrets
from reconciler.validate import DEFAULT_FILE, DEFAULT_SCHEMA, PARTY_SCHEMA, check_file, schema, validate_path
from reconciler.validate.problems import format_path

REPOSITORY = Path(__file__).parents[2] / "parties"


def _write(directory: Path, files: dict[str, str]) -> Path:
    parties = directory / "parties"
    parties.mkdir()
    for name, text in files.items():
        (parties / name).write_text(text, encoding="utf-8")
    return parties


def _state(directory: Path, files: dict[str, str]) -> DesiredState:
    result = validate_path(_write(directory, files), "parties")
    assert not result.errors, result.errors
    assert result.state is not None
    return result.state


def test_shipped_repository_state() -> None:
    result = validate_path(REPOSITORY, "parties")
    assert result.problems == ()
    assert result.files_checked == 5
    state = result.state
    assert state is not None
    assert state.default_party == Identity("GB", "TWK")
    assert [str(p.identity) for p in state.parties] == ["DE-EMO", "ES-CPO", "GB-TWK", "NL-VLT"]
    assert [r.role for r in state.parties[0].roles] == ["CPO", "EMSP"]
    kinds = {str(p.identity): [str(r.kind) for r in p.roles] for p in state.parties}
    assert kinds == {
        "DE-EMO": ["partner", "partner"],
        "ES-CPO": ["hosted"],
        "GB-TWK": ["hosted"],
        "NL-VLT": ["partner"],
    }
    assert [str(p.identity) for p in state.parties if p.hosted_cpo] == ["ES-CPO", "GB-TWK"]


def test_shared_details_merge_field_by_field(tmp_path: Path) -> None:
    state = _state(
        tmp_path,
        {
            "default-party.yaml": "default_party: DE-EMO\n",
            "DE-EMO.yaml": (
                "country_code: DE\nparty_id: EMO\nkind: hosted\nurl: https://ocpi.emo.example/versions\n"
                "business_details:\n  name: Emo\n  website: https://emo.example\n"
                "  logo: {url: https://emo.example/l.svg, category: OPERATOR, type: svg}\n"
                "roles:\n  - role: CPO\n  - role: EMSP\n    kind: partner\n"
                "    business_details:\n      name: Emo Card\n"
                "      logo: {url: https://emo.example/card.png, category: NETWORK, type: png, width: 64}\n"
            ),
        },
    )
    party = state.parties[0]
    assert party.url == "https://ocpi.emo.example/versions"
    cpo, emsp = party.roles
    assert cpo.business_details == BusinessDetails(
        "Emo", "https://emo.example", Image("https://emo.example/l.svg", "OPERATOR", "svg")
    )
    assert emsp.business_details == BusinessDetails(
        "Emo Card", "https://emo.example", Image("https://emo.example/card.png", "NETWORK", "png", width=64)
    )
    assert emsp.business_details.to_ocpi() == {
        "name": "Emo Card",
        "website": "https://emo.example",
        "logo": {"url": "https://emo.example/card.png", "category": "NETWORK", "type": "png", "width": 64},
    }
    assert (cpo.source.file, cpo.source.line) == ("parties/DE-EMO.yaml", 10)
    assert (cpo.kind, emsp.kind) == (Kind.HOSTED, Kind.PARTNER)  # the role's own kind overrides the file's


def test_case_is_normalised_with_warnings(tmp_path: Path) -> None:
    files = {
        "default-party.yaml": "default_party: gb-twk\n",
        "GB-TWK.yaml": (
            "country_code: gb\nparty_id: twk\nkind: hosted\n"
            "roles: [{role: Cpo, business_details: {name: T}}]\n"
        ),
    }
    result = validate_path(_write(tmp_path, files), "parties")
    assert not result.errors
    assert [p.path for p in result.warnings] == [
        "$.country_code",
        "$.party_id",
        "$.roles[0].role",
        "$.default_party",
    ]
    assert all(p.severity is Severity.WARNING and p.code == "case" for p in result.warnings)
    assert result.state is not None
    assert result.state.parties[0].identity == Identity("GB", "TWK")
    assert result.state.parties[0].roles[0].role == "CPO"


def test_no_state_when_any_file_has_errors(tmp_path: Path) -> None:
    files = {
        "default-party.yaml": "default_party: GB-TWK\n",
        "GB-TWK.yaml": (
            "country_code: GB\nparty_id: TWK\nkind: hosted\n"
            "roles: [{role: CPO, business_details: {name: T}}]\n"
        ),
        "GB-BAD.yaml": "country_code: GB\nparty_id: BAD\n",
    }
    result = validate_path(_write(tmp_path, files), "parties")
    assert [(p.code, p.message.split(";")[0]) for p in result.errors] == [
        ("schema", "missing required keys kind, roles")
    ]
    assert result.state is None


def test_every_file_is_checked_before_returning(tmp_path: Path) -> None:
    files = {f"GB-A{n:02d}.yaml": "country_code: GB\n" for n in range(12)}
    result = validate_path(_write(tmp_path, files), "parties")
    assert result.files_checked == 12
    assert len([p for p in result.errors if p.code == "schema"]) == 12
    assert [p.code for p in result.errors if p.code != "schema"] == ["no-default-party"]


def test_single_file_is_checked_without_cross_file_rules(tmp_path: Path) -> None:
    parties = _write(
        tmp_path, {"GB-TWK.yaml": "country_code: GB\nparty_id: TWK\nkind: partner\nroles: [{role: EMSP}]\n"}
    )
    result = validate_path(parties / "GB-TWK.yaml", "parties/GB-TWK.yaml")
    assert [(p.code, p.path) for p in result.problems] == [("missing-name", "$.roles[0]")]
    assert result.files_checked == 1 and result.state is None
    default = validate_path(REPOSITORY / "default-party.yaml")
    assert default.problems == () and default.files_checked == 1


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="nowhere: no such file or directory"):
        validate_path(tmp_path / "nowhere", "nowhere")


def test_json_paths_quote_keys_that_are_not_names() -> None:
    assert format_path(()) == "$"
    assert format_path(("roles", 0, "business_details")) == "$.roles[0].business_details"
    assert format_path(("a b", "x.y")) == '$["a b"]["x.y"]'


def test_identity_parse() -> None:
    assert Identity.parse("gb-twk") == Identity("GB", "TWK")
    assert str(Identity("GB", "TWK")) == "GB-TWK"
    assert Identity.parse("GBTWK") is None
    assert Identity.parse("GB-TW") is None


def test_moves_claims_and_tombstones_reach_the_desired_state() -> None:
    from reconciler.model import Tombstone

    case = Path(__file__).parents[1] / "examples" / "valid" / "moves-and-tombstones" / "parties"
    result = validate_path(case, "parties")
    assert not result.errors
    state = result.state
    assert state is not None
    spain = state.party(Identity("ES", "CPO"))
    assert spain is not None
    assert [m.value for m in spain.moved_from] == [
        Identity("PT", "CPO"),
        Identity("FR", "CPO"),
        Identity("GB", "OLD"),
    ]
    assert str(spain.moved_from[0].source) == "parties/ES-CPO.yaml:11:5"
    assert [c.value for c in spain.locations] == ["LOC-LIS-0007"]
    assert [r.role for r in spain.roles] == ["CPO"]
    assert state.party(Identity("GB", "OLD")) is None
    assert state.tombstones == (
        Tombstone(Identity("ES", "CPO"), "EMSP"),
        Tombstone(Identity("GB", "OLD"), None),
    )


_TWK = "country_code: GB\nparty_id: TWK\nkind: hosted\nbusiness_details: {name: T}\nroles: [{role: CPO}]\n"


def test_a_role_kind_overrides_the_file_kind() -> None:
    case = Path(__file__).parents[1] / "examples" / "valid" / "hosted-cpo-partner-emsp" / "parties"
    result = validate_path(case, "parties")
    assert result.problems == () and result.state is not None
    party = result.state.party(Identity("GB", "ABC"))
    assert party is not None and party.hosted_cpo
    assert [(r.role, r.kind, r.hosted) for r in party.roles] == [
        ("CPO", Kind.HOSTED, True),
        ("EMSP", Kind.PARTNER, False),
    ]


def test_a_tombstone_needs_no_kind_and_keeps_none(tmp_path: Path) -> None:
    files = {
        "default-party.yaml": "default_party: GB-TWK\n",
        "GB-TWK.yaml": _TWK,
        "NL-VLT.yaml": "country_code: NL\nparty_id: VLT\ndeleted: true\n",
    }
    assert _state(tmp_path, files).tombstones[0].identity == Identity("NL", "VLT")
    deleted_role = (
        "country_code: NL\nparty_id: EMO\nkind: partner\n"
        "roles: [{role: EMSP, kind: partner, deleted: true}]\n"
    )
    found = check_file("NL-EMO.yaml", text=deleted_role)
    problems, party, tombstones = found.problems, found.party, found.tombstones
    assert [(p.code, p.path, p.message) for p in problems] == [
        ("deleted-with-content", "$.roles[0].kind", "role EMSP is marked deleted: remove its kind")
    ]
    assert (party, tombstones) == (None, ())


@pytest.mark.parametrize(
    ("text", "path", "says"),
    [
        ("kind: hosted\nroles: [{role: EMSP}]", "$.roles[0].role",
         "MaEVe pushes every new location to every EMSP"),
        ("kind: partner\nroles: [{role: CPO}, {role: EMSP, kind: hosted}]", "$.roles[1].kind",
         "Declare it `kind: partner`"),
        ("kind: hosted\nroles: [{role: CPO}, {role: NSP}]", "$.roles[1].role",
         "a peer's NSP row is written by OCPI registration"),
    ],
)  # fmt: skip
def test_only_a_cpo_can_be_hosted_and_the_message_says_why(text: str, path: str, says: str) -> None:
    document = f"country_code: NL\nparty_id: VLT\nbusiness_details: {{name: V}}\n{text}\n"
    found = check_file("NL-VLT.yaml", text=document)
    problems, party = found.problems, found.party
    assert [(p.code, p.path) for p in problems] == [("hosted-not-cpo", path)]
    assert says in problems[0].message and "only a CPO can be hosted" in problems[0].message
    assert party is None


@pytest.mark.parametrize(
    ("value", "shown"), [("", "nothing"), ("[hosted]", "a list"), ("true", "true/false")]
)
def test_a_kind_that_is_not_a_word_gets_one_message_naming_both_values(value: str, shown: str) -> None:
    document = f"country_code: NL\nparty_id: VLT\nkind: {value}\nbusiness_details: {{name: V}}\n"
    document += "roles: [{role: EMSP}]\n"
    found = check_file("NL-VLT.yaml", text=document)
    problems, party = found.problems, found.party
    assert [(p.code, p.path) for p in problems] == [("schema", "$.kind")]
    assert problems[0].message.startswith("kind must be hosted (this CSMS operates it")
    assert problems[0].message.endswith(f"which creates its rows), not {shown}")
    assert party is None


def test_an_unknown_role_is_not_also_reported_as_hosted() -> None:
    document = (
        "country_code: NL\nparty_id: VLT\nkind: hosted\nbusiness_details: {name: V}\nroles: [{role: CAR}]\n"
    )
    problems = check_file("NL-VLT.yaml", text=document).problems
    assert [p.code for p in problems] == ["schema"]


EXAMPLES = Path(__file__).parents[1] / "examples"
_SCHEMA_FILES = sorted([*EXAMPLES.glob("*/*/parties/*.yaml"), *REPOSITORY.glob("*.yaml")])


def _agree(data: object, name: str) -> None:
    """The fast check accepts a document exactly when jsonschema finds no problem in it."""
    assert schema.fast_validator(name).is_valid(data) == schema.plain_validator(name).is_valid(data), data


@pytest.mark.parametrize("path", _SCHEMA_FILES, ids=lambda p: str(p.relative_to(p.parents[2])))
def test_the_fast_schema_check_agrees_with_jsonschema_on_every_example(path: Path) -> None:
    loaded = load_file(path, path.name)
    if isinstance(loaded, Problem):
        return
    _agree(loaded.data, DEFAULT_SCHEMA if path.name == DEFAULT_FILE else PARTY_SCHEMA)


_TEXT = st.sampled_from(
    ["", "GB", "gb", "GBR", "TWK", "T W", "CPO", "EMSP", "HUB", "OPERATOR", "png", "PNG", "x" * 101,
     "https://a.example/v", "https://a.example/l.png", "htp:/x", "https://", "https://a b.example",
     "GB-TWK", "GB-TW", "Name", "hosted", "partner", "HOSTED"]
)  # fmt: skip
_INNER_KEYS = ["name", "website", "logo", "url", "thumbnail", "category", "type", "width", "role",
               "business_details", "deleted", "kind", "extra"]  # fmt: skip
_PARTY_KEYS = ["country_code", "party_id", "kind", "url", "business_details", "roles", "moved_from",
               "locations", "deleted"]  # fmt: skip
_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers(-1, 100_000) | st.floats(allow_nan=False) | _TEXT,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_INNER_KEYS), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.sampled_from([*_PARTY_KEYS, "token"]), _VALUE, max_size=6))
def test_the_fast_schema_check_agrees_with_jsonschema_on_any_party_document(data: dict[str, object]) -> None:
    _agree(data, PARTY_SCHEMA)


@given(st.dictionaries(st.sampled_from(["default_party", "extra"]), _VALUE, max_size=2))
def test_the_fast_schema_check_agrees_with_jsonschema_on_any_default_document(
    data: dict[str, object],
) -> None:
    _agree(data, DEFAULT_SCHEMA)


@given(st.from_regex(schema.PLAIN_URL, fullmatch=True))
def test_every_url_the_quick_url_check_accepts_passes_the_full_check(url: str) -> None:
    assert schema.is_split_url(url), url


@given(st.from_regex(schema.PLAIN_URL, fullmatch=True))
def test_a_plain_url_carries_no_credential(url: str) -> None:
    assert url_secrets(url) == [], url


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example/ocpi",
        "http://h:8080/x?y=1",
        "https://\u00e9.example/",
        "https://h/a b",
        "ftp://h/",
    ],
)
def test_the_quick_and_the_full_url_check_agree(url: str) -> None:
    assert schema.is_url(url) == schema.is_split_url(url), url


@pytest.mark.parametrize(
    ("url", "found"),
    [
        ("https://ocpi:S3cr3t@api.example/versions", ["user info"]),
        ("https://tok3n@api.example/versions", ["user info"]),
        ("https://api.example/versions?token=abcdef", ["query parameter token"]),
        ("https://api.example/v?a=1&Access_Token=x&API-KEY=y",
         ["query parameter Access_Token", "query parameter API-KEY"]),
        ("https://api.example/v?password=x&client_secret=y&sig=z",
         ["query parameter password", "query parameter client_secret", "query parameter sig"]),
        ("https://api.example/cb#access_token=x", ["fragment parameter access_token"]),
        ("https://api.example/v?token=", []),  # no value: nothing secret
        ("https://api.example/v?monkey=1&keyword=x&page=2", []),
        ("https://api.example/login@v1/x", []),  # @ in the path is no user info
        ("https://api.example/versions", []),
        ("not a url ?token=x", []),
    ],
)  # fmt: skip
def test_credentials_in_urls(url: str, found: list[str]) -> None:
    assert url_secrets(url) == found


@pytest.mark.parametrize(
    ("url", "shown", "without_user"),
    [
        ("https://u:pw@h.example/x", "https://u:***@h.example/x", "https://***@h.example/x"),
        ("https://u@h.example/x?token=t&a=1", "https://u@h.example/x?token=***&a=1", "https://***@h.example/x?token=***&a=1"),
        ("https://h.example/x?a=1", "https://h.example/x?a=1", "https://h.example/x?a=1"),
        ("plain text", "plain text", "plain text"),
    ],
)  # fmt: skip
def test_hiding_the_credentials_of_a_url(url: str, shown: str, without_user: str) -> None:
    assert hide_url_secrets(url) == shown
    assert hide_url_secrets(url, user=False) == without_user


def test_a_credential_in_a_url_is_refused_without_being_shown() -> None:
    text = (
        "country_code: GB\nparty_id: ABC\nkind: hosted\nurl: https://ocpi:S3cr3t@api.example/"
        + "v" * 300
        + "\nbusiness_details:\n  name: ABC\n  website: https://abc.example/?token=abcdef\n"
        + "roles:\n  - role: CPO\n"
    )
    found = check_file("GB-ABC.yaml", text=text)
    problems, party = found.problems, found.party
    assert party is None
    assert [p.code for p in problems][:2] == ["secret-in-git", "secret-in-git"]
    shown = " ".join(p.message for p in problems)
    assert "S3cr3t" not in shown and "abcdef" not in shown


@pytest.mark.parametrize(
    ("url", "valid"),
    [
        ("https://ocpi.example/versions", True),
        ("http://127.0.0.1:8080/ocpi", True),
        ("https://ocpi.example/versions?token=x", True),  # a URL; the credential is another check's
        ("HTTPS://ocpi.example/", True),
        ("https://", False),
        ("ftp://ocpi.example/", False),
        ("https://ocpi example/", False),
        ("https://[::1/", False),
        ("https://ocpi.exämple/", False),
        (42, True),  # not text: the type keyword reports it
    ],
)
def test_urls(url: object, valid: bool) -> None:
    assert schema.is_url(url) is valid


_GB_TWK = "country_code: GB\nparty_id: TWK\nkind: hosted\nbusiness_details: {name: T}\nroles: [{role: CPO}]\n"


def test_check_file_on_text_and_on_the_same_file_written(tmp_path: Path) -> None:
    from_text = check_file("GB-TWK.yaml", text=_GB_TWK)
    assert from_text.problems == () and not from_text.failed
    assert from_text.party is not None and from_text.party.identity == Identity("GB", "TWK")
    assert (from_text.tombstones, from_text.default) == ((), None)
    (tmp_path / "GB-TWK.yaml").write_text(_GB_TWK, encoding="utf-8")
    from_file = check_file("GB-TWK.yaml", path=tmp_path / "GB-TWK.yaml")
    assert from_file == from_text
    assert from_file.party is not None and str(from_file.party.source) == "GB-TWK.yaml:1:1"
    assert check_file(str(tmp_path / "GB-TWK.yaml")) == check_file(
        "GB-TWK.yaml", path=str(tmp_path / "GB-TWK.yaml")
    )


def test_check_file_reads_the_kind_of_file_from_its_name() -> None:
    named = check_file("parties/default-party.yaml", text="default_party: gb-twk\n")
    assert named.default is not None and named.default.value == Identity("GB", "TWK")
    assert str(named.default.source) == "parties/default-party.yaml:1:16"
    assert [p.code for p in named.problems] == ["case"] and not named.failed
    assert named.party is None
    renamed = check_file("parties/NL-VLT.yaml", text=_GB_TWK)
    assert [p.code for p in renamed.problems] == ["file-name"] and renamed.failed
    assert renamed.party is None


def test_check_file_reports_what_keeps_a_file_from_loading_and_keeps_tombstones(tmp_path: Path) -> None:
    unreadable = check_file("GB-TWK.yaml", path=tmp_path / "missing.yaml")
    assert [p.code for p in unreadable.problems] == ["unreadable"] and unreadable.failed
    assert check_file("default-party.yaml", text="default_party: [\n").default is None
    deleted = check_file("NL-VLT.yaml", text="country_code: NL\nparty_id: VLT\ndeleted: true\n")
    assert deleted.problems == () and deleted.party is None
    assert [(str(t.identity), t.role) for t in deleted.tombstones] == [("NL-VLT", None)]


def test_ctrl_c_is_held_back_while_jsonschema_rs_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """jsonschema-rs may drop a KeyboardInterrupt raised while it runs Python code for it (seen as "Exception
    ignored in: 'uri'", then a validate that ended with exit 1 and false problems): Ctrl-C waits until it
    returns, and is raised then."""
    import os
    import signal

    import jsonschema_rs

    blocked_in_check: list[bool] = []

    def url(value: str) -> bool:
        blocked_in_check.append(signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, set()))
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C lands while jsonschema-rs runs
        return True

    def compiled(name: str) -> jsonschema_rs.Validator:
        blocked_in_check.append(signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, set()))
        return jsonschema_rs.validator_for(
            {"type": "string", "format": "uri"}, validate_formats=True, formats={"uri": url}
        )

    monkeypatch.setattr(schema, "fast_validator", compiled)
    with pytest.raises(KeyboardInterrupt):
        schema._fast_is_valid("party", "https://example.com")
    assert blocked_in_check == [True, True]  # while compiling and while checking
    assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())  # and not after
