"""`ocpi-parties fmt`: one canonical form of party files that keeps comments and what the files declare."""

from __future__ import annotations

import os
import random
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Run
from hypothesis import HealthCheck, assume, given, note, settings
from hypothesis import strategies as st

from reconciler import fmt, importer
from reconciler.changes import PartyRow
from reconciler.load import MAX_FILE_BYTES
from reconciler.model import Identity, Problem
from reconciler.validate import check_file, read_back

ROOT = Path(__file__).parents[2]
VALID = sorted((ROOT / "tests" / "examples" / "valid").glob("*/parties"))
EXAMPLE_FILES = [path for directory in [ROOT / "parties", *VALID] for path in fmt.party_files(directory)]


def canonical(text: str, file: str = "GB-TWK.yaml") -> str:
    result = fmt.canonical_text(text, file, default=file == "default-party.yaml")
    assert isinstance(result, str), result
    return result


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: f"{p.parent.parent.name}/{p.name}")
def test_every_valid_example_reads_back_the_same_and_formats_once(path: Path) -> None:
    text = path.read_bytes().decode("utf-8").removeprefix("\ufeff")
    default = path.name == "default-party.yaml"
    once = canonical(text, path.name)
    assert read_back(once, path.name, default=default) == read_back(text, path.name, default=default)
    assert canonical(once, path.name) == once
    comments = [line.strip() for line in text.splitlines() if line.strip().startswith("#")]
    assert all(comment in once for comment in comments)


def test_the_shipped_parties_are_in_canonical_form(run: Run) -> None:
    assert run("fmt", "--check", str(ROOT / "parties")) == (0, "", "")


def test_canonical_form_orders_keys_cases_codes_and_quotes_only_what_needs_it() -> None:
    text = (
        "# yaml-language-server: $schema=../schema/party.schema.json\n"
        "party_id: 007  # the agent\n"
        "roles: [{business_details: {website: 'https://x.example', name: 'yes'}, role: cpo}]\n"
        "kind: 'hosted'\n"
        "country_code: gb\n"
        "business_details:\n"
        '    name: "Plain: quoted"   # kept\n'
        "    logo: {type: PNG, category: OPERATOR, url: https://x.example/l.png, width: 0x10}\n"
    )
    assert canonical(text, "GB-007.yaml") == (
        "# yaml-language-server: $schema=../schema/party.schema.json\n"
        "country_code: GB\n"
        'party_id: "007" # the agent\n'
        "kind: hosted\n"
        "business_details:\n"
        '  name: "Plain: quoted"     # kept\n'
        "  logo:\n"
        "    url: https://x.example/l.png\n"
        "    category: OPERATOR\n"
        "    type: png\n"
        "    width: 16\n"
        "roles:\n"
        "  - role: CPO\n"
        "    business_details:\n"
        '      name: "yes"\n'
        "      website: https://x.example\n"
    )


def test_default_party_file_is_upper_cased() -> None:
    assert (
        canonical("default_party: gb-twk  # ours\n", "default-party.yaml")
        == "default_party: GB-TWK  # ours\n"
    )


def test_anchors_and_aliases_are_kept() -> None:
    text = (
        "country_code: GB\nparty_id: ABC\nkind: partner\nurl: &u https://a.example/v\n"
        "business_details:\n  name: ABC\n  website: *u\nroles:\n  - role: EMSP\n"
    )
    assert canonical(text) == text


# ---------------------------------------------------------------------------------------------------------
# Generated valid party files, written in many ways


_NAME = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=30
).filter(lambda name: name.strip() == name)
_URL = st.from_regex(r"https://[a-z]{1,8}\.example(/[a-z0-9]{0,6}){0,2}", fullmatch=True)
_LOGO = st.fixed_dictionaries(
    {
        "url": _URL,
        "category": st.sampled_from(["OPERATOR", "OWNER", "ENTITY"]),
        "type": st.sampled_from(["png", "svg"]),
    },
    optional={"thumbnail": _URL, "width": st.integers(1, 1000), "height": st.integers(1, 1000)},
)
_DETAILS = st.fixed_dictionaries({"name": _NAME}, optional={"website": _URL, "logo": _LOGO})


@st.composite
def party_documents(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    country = draw(st.sampled_from(["GB", "NL", "DE", "NO", "ES", "YE"]))
    party_id = draw(st.from_regex(r"[A-Z0-9]{3}", fullmatch=True))
    hosted = draw(st.booleans())
    document: dict[str, Any] = {
        "country_code": draw(st.sampled_from([country, country.lower()])),
        "party_id": draw(st.sampled_from([party_id, party_id.lower()])),
        "kind": "hosted" if hosted else "partner",
        "business_details": draw(_DETAILS),
    }
    if draw(st.booleans()):
        document["url"] = draw(_URL)
    if hosted:
        document["roles"] = [{"role": draw(st.sampled_from(["CPO", "cpo"]))}]
        if draw(st.booleans()):
            document["locations"] = draw(
                st.lists(st.from_regex(r"LOC-[0-9]{1,4}", fullmatch=True), unique=True)
            )
        if draw(st.booleans()):
            document["moved_from"] = draw(
                st.lists(st.sampled_from(["PT-CPO", "fr-cpo", "BE-OLD"]), unique=True)
            )
    else:
        chosen = draw(
            st.lists(st.sampled_from(["EMSP", "HUB", "NSP", "cpo"]), min_size=1, unique_by=str.upper)
        )
        document["roles"] = [
            {"role": role, **({"business_details": draw(_DETAILS)} if draw(st.booleans()) else {})}
            for role in chosen
        ]
    keys = draw(st.permutations(list(document)))
    return f"{country}-{party_id}.yaml", {key: document[key] for key in keys}


def _written(document: dict[str, Any], rng: random.Random) -> tuple[str, list[str]]:
    """YAML text of `document` in one of many styles, with a comment after and between random lines."""
    text = yaml.dump(
        document,
        sort_keys=False,
        allow_unicode=rng.random() < 0.5,
        default_flow_style=rng.choice([False, None]),
        default_style=rng.choice([None, None, '"', "'"]),
        indent=rng.choice([2, 4]),
        width=10_000,
    )
    comments: list[str] = []
    lines = ["# a header comment"]
    for number, line in enumerate(text.splitlines()):
        if rng.random() < 0.2:
            comments.append(f"# before {number}")
            lines.append(comments[-1])
        if rng.random() < 0.3:
            comments.append(f"# line {number}")
            lines.append(f"{line}  {comments[-1]}")
        else:
            lines.append(line)
    return "\n".join(lines) + "\n", ["# a header comment", *comments]


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
@given(party_documents(), st.randoms(use_true_random=False))
def test_generated_valid_files_read_back_the_same_keep_comments_and_format_once(
    generated: tuple[str, dict[str, Any]], rng: random.Random
) -> None:
    file, document = generated
    text, comments = _written(document, rng)
    note(text)
    found = check_file(file, text=text)
    assume(found.party is not None and not found.failed)
    result = fmt.canonical_text(text, file)
    if isinstance(result, Problem):  # a comment ruamel.yaml drops: only ever after a flow item of a list
        assert result.code == "fmt-comment" and re.search(r"^-? *- [{\[]", text, re.MULTILINE), result
        return
    once = result
    assert read_back(once, file) == read_back(text, file)
    assert canonical(once, file) == once
    for comment in comments:
        assert comment in once
    after = check_file(file, text=once).problems
    assert not any(p.code in ("case", "unquoted") for p in after)  # nothing left for validate to warn about


# ---------------------------------------------------------------------------------------------------------
# The command


@pytest.fixture
def repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    shutil.copytree(ROOT / "parties", tmp_path / "parties")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "parties"


LOWER = (
    "country_code: nl  # Dutch\nparty_id: vlt\nkind: partner\n"
    "roles:\n- role: emsp\nbusiness_details: {name: V}\n"
)


def test_fmt_rewrites_only_the_files_that_change_and_names_them(run: Run, repository: Path) -> None:
    (repository / "NL-VLT.yaml").write_text(LOWER, encoding="utf-8")
    untouched = repository / "GB-TWK.yaml"
    os.utime(untouched, (1, 1))
    assert run("fmt", "--check") == (1, "parties/NL-VLT.yaml\n", "")
    assert (repository / "NL-VLT.yaml").read_text(encoding="utf-8") == LOWER  # --check changes nothing
    assert run("fmt") == (0, "parties/NL-VLT.yaml\n", "")
    assert (repository / "NL-VLT.yaml").read_text(encoding="utf-8") == (
        "country_code: NL  # Dutch\nparty_id: VLT\nkind: partner\nbusiness_details:\n  name: V\n"
        "roles:\n  - role: EMSP\n"
    )
    assert untouched.stat().st_mtime == 1
    assert run("fmt") == (0, "", "")
    assert run("fmt", "--check") == (0, "", "")
    assert run("validate")[0] == 0


def test_fmt_of_one_file(run: Run, repository: Path) -> None:
    (repository / "NL-VLT.yaml").write_text(LOWER, encoding="utf-8")
    assert run("fmt", "--check", "parties/NL-VLT.yaml") == (1, "parties/NL-VLT.yaml\n", "")
    assert run("fmt", "parties/NL-VLT.yaml") == (0, "parties/NL-VLT.yaml\n", "")


def test_invalid_yaml_is_reported_like_validate_and_left_alone(run: Run, repository: Path) -> None:
    broken = "country_code: GB\nparty_id: [TWK\n"
    (repository / "GB-TWK.yaml").write_text(broken, encoding="utf-8")
    (repository / "NL-VLT.yaml").write_text(LOWER, encoding="utf-8")
    for args in (("fmt", "--check"), ("fmt",)):
        code, out, err = run(*args)
        assert code == 1 and "Traceback" not in err
        assert re.fullmatch(r"parties/GB-TWK\.yaml:3:1: invalid YAML: .*\n", err), err
        assert out == "parties/NL-VLT.yaml\n"
    assert (repository / "GB-TWK.yaml").read_text(encoding="utf-8") == broken


def test_a_failed_write_leaves_the_file_whole(
    run: Run, repository: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (repository / "NL-VLT.yaml").write_text(LOWER, encoding="utf-8")

    def fail(source: str, target: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fmt.os, "replace", fail)
    with pytest.raises(OSError):
        fmt.format_path(repository, "parties", write=True)
    assert (repository / "NL-VLT.yaml").read_text(encoding="utf-8") == LOWER
    assert sorted(p.name for p in repository.iterdir() if p.name.startswith(".")) == []


def test_missing_path_is_a_usage_error(run: Run, repository: Path) -> None:
    code, _, err = run("fmt", "nowhere")
    assert code == 2 and "nowhere: no such file or directory" in err


def test_init_writes_files_fmt_leaves_as_they_are(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run("init", "--party", "gb-twk")[0] == 0
    assert sorted(p.name for p in (tmp_path / "parties").iterdir()) == ["GB-TWK.yaml", "default-party.yaml"]
    assert run("fmt", "--check") == (0, "", "")
    assert run("init", "--party", "NL-OWN", "--name", "Own: yes", "--out", "named")[0] == 0
    assert run("fmt", "--check", "named") == (0, "", "")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {"role": st.sampled_from(["CPO", "EMSP", "HUB"]), "credentials": st.booleans()},
            optional={"name": _NAME, "website": _URL},
        ),
        min_size=1,
        max_size=3,
        unique_by=lambda r: r["role"],
    )
)
def test_import_renders_files_in_canonical_form(specs: list[dict[str, Any]]) -> None:
    rows = [
        PartyRow(
            Identity("GB", "ABC"),
            spec["role"],
            "https://abc.example/versions",
            {k: spec[k] for k in ("name", "website") if k in spec} or None,
            not spec["credentials"],
            credentials=spec["credentials"],
        )
        for spec in specs
    ]
    for draft in importer.plan_import(rows).drafts:
        text = importer.render(draft)
        assert canonical(text, draft.file_name) == text
    assert canonical(importer.render_default(Identity("GB", "ABC")), "default-party.yaml").endswith(
        "GB-ABC\n"
    )


def test_key_orders_are_the_schema_orders() -> None:
    import json

    schema = json.loads((ROOT / "schema" / "party.schema.json").read_text(encoding="utf-8"))
    defs = schema["$defs"]
    assert tuple(schema["properties"]) == fmt.PARTY_KEYS
    assert tuple(defs["role"]["properties"]) == fmt.ROLE_KEYS
    assert tuple(defs["business_details"]["properties"]) == fmt.DETAIL_KEYS
    assert tuple(defs["image"]["properties"]) == fmt.LOGO_KEYS


def test_pre_commit_hook_formats_a_party_repository(repository: Path) -> None:
    """The hook runs as pre-commit runs it: its entry, split like a shell, in the party repository's root.

    pre-commit fails a hook that changes files, so a commit of unformatted files stops with them formatted.
    """
    hooks = {hook["id"]: hook for hook in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())}
    hook = hooks["ocpi-parties-fmt"]
    assert hook["pass_filenames"] is False and re.search(hook["files"], "parties/GB-TWK.yaml")
    program, *args = shlex.split(hook["entry"])
    assert program == "ocpi-parties"
    exe = shutil.which(program, path=str(Path(sys.executable).parent)) or program

    def entry() -> tuple[int, str, str]:
        done = subprocess.run(
            [exe, *args], cwd=repository.parent, capture_output=True, text=True, check=False
        )
        return done.returncode, done.stdout, done.stderr

    assert entry() == (0, "", "")
    (repository / "NL-VLT.yaml").write_text(LOWER, encoding="utf-8")
    assert entry() == (0, "parties/NL-VLT.yaml\n", "")
    assert entry() == (0, "", "")


def test_problem_type_is_returned_for_unreadable_bytes(tmp_path: Path) -> None:
    path = tmp_path / "GB-TWK.yaml"
    path.write_bytes(b"country_code: G\xffB\n")
    result = fmt.format_file(path, "GB-TWK.yaml")
    assert isinstance(result.canonical, Problem) and result.canonical.code == "not-utf8"


#: Valid examples that exist to show validate reading what is not canonical: each keeps its warning.
NOT_CANONICAL = {
    "lower-case-codes",  # codes in lower case: `case` warnings
    "moves-and-tombstones",  # moved_from `fr-cpo`: a `case` warning
    "norway-unquoted",  # `country_code: NO` read as Norway
    "unquoted-numeric-party-id",  # `party_id: 007` and `1E3`: `unquoted` warnings
    "utf8-bom-and-unicode",  # a byte order mark
}


def test_valid_examples_are_canonical_except_those_that_show_what_validate_reads(run: Run) -> None:
    for directory in VALID:
        code, out, err = run("fmt", "--check", str(directory))
        assert (code == 0) == (directory.parent.name not in NOT_CANONICAL), (directory, out, err)


def test_a_file_past_the_size_limit_is_refused_as_validate_refuses_it(tmp_path: Path) -> None:
    path = tmp_path / "GB-TWK.yaml"
    path.write_text("# " + "x" * MAX_FILE_BYTES + "\ncountry_code: GB\n", encoding="utf-8")
    result = fmt.format_file(path, "GB-TWK.yaml")
    assert isinstance(result.canonical, Problem) and result.canonical.code == "too-large"


def test_a_linked_file_given_as_path_stays_a_link(run: Run, repository: Path) -> None:
    target = repository.parent / "NL-VLT.yaml"
    target.write_text(LOWER, encoding="utf-8")
    (repository / "NL-VLT.yaml").unlink()
    (repository / "NL-VLT.yaml").symlink_to(target)
    assert run("fmt", "parties/NL-VLT.yaml") == (0, "parties/NL-VLT.yaml\n", "")
    assert (repository / "NL-VLT.yaml").is_symlink() and "country_code: NL" in target.read_text()
    assert run("fmt", "--check") == (0, "", "")  # links in the directory are left to validate
