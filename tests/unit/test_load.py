"""The YAML loader: positions, strictness, limits. No database."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler import load
from reconciler.load import MAX_FILE_BYTES, CoreResolver, LoadedFile, load_file, parse_text
from reconciler.model import Problem, Source


def _loaded(text: str) -> LoadedFile:
    result = parse_text(text, "f.yaml")
    assert isinstance(result, LoadedFile), result
    return result


def _problem(text: str) -> Problem:
    result = parse_text(text, "f.yaml")
    assert isinstance(result, Problem), result
    return result


def test_positions_of_values_and_keys_are_one_based() -> None:
    loaded = _loaded("a: 1\nroles:\n  - role: CPO\n    x: [1, 2]\n")
    assert loaded.source(("a",)) == Source("f.yaml", 1, 4)
    assert loaded.source(("a",), key=True) == Source("f.yaml", 1, 1)
    assert loaded.source(("roles", 0)) == Source("f.yaml", 3, 5)
    assert loaded.source(("roles", 0, "role")) == Source("f.yaml", 3, 11)
    assert loaded.source(("roles", 0, "x", 1)) == Source("f.yaml", 4, 12)


def test_unknown_path_falls_back_to_nearest_parent() -> None:
    loaded = _loaded("roles:\n  - role: CPO\n")
    assert loaded.source(("roles", 0, "business_details", "name")) == Source("f.yaml", 2, 5)
    assert loaded.source(("nothing",)) == Source("f.yaml", 1, 1)


def test_yaml_1_2_core_scalars_norway_stays_text() -> None:
    data = _loaded(
        "no: NO\nyes: yes\non: off\nt: true\nf: False\nn: null\ne:\ni: 42\no: 0o17\nx: 0x1F\n"
        "lead: 007\nfl: 1.5\nd: 2024-01-01\nsex: 1:20\n"
    ).data
    assert data == {
        "no": "NO",
        "yes": "yes",
        "on": "off",
        "t": True,
        "f": False,
        "n": None,
        "e": None,
        "i": 42,
        "o": 15,
        "x": 31,
        "lead": 7,
        "fl": 1.5,
        "d": "2024-01-01",
        "sex": "1:20",
    }


def test_duplicate_key_names_both_lines() -> None:
    problem = _problem("a: 1\nb: 2\na: 3\n")
    assert (problem.code, str(problem.source)) == ("duplicate-key", "f.yaml:3:1")
    assert problem.message == "duplicate key 'a' (first at line 1)"


def test_duplicate_key_in_nested_mapping() -> None:
    problem = _problem("roles:\n  - role: CPO\n    role: EMSP\n")
    assert (problem.code, str(problem.source)) == ("duplicate-key", "f.yaml:3:5")


@pytest.mark.parametrize(
    ("text", "shown"),
    [("1: x\n", "1"), ("true: x\n", "true"), ("null: x\n", "null"), ("? [a]\n: x\n", "a collection")],
)
def test_non_text_keys_are_refused(text: str, shown: str) -> None:
    problem = _problem(text)
    assert problem.code == "key-not-text"
    assert problem.message == f"key {shown} is not text: quote it, or use a text key"


def test_quoted_number_key_is_text() -> None:
    assert _loaded('"1": x\n').data == {"1": "x"}


def test_benign_alias_is_followed() -> None:
    assert _loaded("a: &x {k: v}\nb: *x\n").data == {"a": {"k": "v"}, "b": {"k": "v"}}


def test_alias_bomb_is_refused_quickly() -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for level in range(1, 9):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{refs}]")
    problem = _problem("\n".join(lines) + "\n")
    assert problem.code == "too-large"
    assert "anchors and aliases" in problem.message


def test_many_values_without_aliases_name_no_alias() -> None:
    problem = _problem("a: [" + ", ".join(["1"] * 10_001) + "]\n")
    assert problem.code == "too-large"
    assert problem.message == "the document expands to more than 10,000 values"


def test_self_referencing_alias_is_refused() -> None:
    problem = _problem("a: &a [*a]\n")
    assert problem.code == "too-deep"
    assert problem.message.endswith("(an alias refers to itself)")


def test_deep_nesting_is_refused() -> None:
    problem = _problem("a: " + "[" * 40 + "]" * 40 + "\n")
    assert problem.code == "too-deep"


def test_multiple_documents_point_at_the_second() -> None:
    problem = _problem("a: 1\n---\nb: 2\n")
    assert (problem.code, problem.source.line) == ("multiple-documents", 2)


def test_document_end_marker_alone_is_one_document() -> None:
    assert _loaded("a: 1\n...\n").data == {"a": 1}


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_empty_file(text: str) -> None:
    assert _problem(text).code == "empty-file"


def test_explicit_empty_document_is_null_for_the_schema_to_report() -> None:
    assert _loaded("---\n").data is None


def test_tab_in_indentation_names_the_column() -> None:
    problem = _problem("a:\n  \tb: 1\n")
    assert (problem.code, str(problem.source)) == ("tab", "f.yaml:2:3")


def test_tab_inside_a_quoted_value_is_fine() -> None:
    assert _loaded('a: "x\ty"\n').data == {"a": "x\ty"}


def test_merge_key_is_refused_but_quoted_key_is_text() -> None:
    assert _problem("a: 1\n<<: {b: 2}\n").code == "merge-key"
    assert _loaded('"<<": x\n').data == {"<<": "x"}


@pytest.mark.parametrize("text", ["a: !!binary aGk=\n", "a: !!set {x}\n", "a: !local x\n", "a: !!omap []\n"])
def test_explicit_tags_are_refused(text: str) -> None:
    assert _problem(text).code == "yaml-tag"


def test_explicit_core_tags_are_honoured() -> None:
    assert _loaded('a: !!str 123\nb: !!int "7"\n').data == {"a": "123", "b": 7}


@pytest.mark.parametrize("text", ["a: !!int abc\n", "a: !!float x\n", "a: .nan\n", "a: -.inf\n"])
def test_bad_or_unusable_numbers(text: str) -> None:
    assert _problem(text).code == "yaml-value"


@pytest.mark.parametrize("text", ['a: "x\\0y"\n', '"k\\0": 1\n', 'a: ["\\0"]\n'])
def test_a_nul_character_is_refused_before_it_reaches_the_database(text: str) -> None:
    assert "\x00" not in text
    assert _problem(text).code == "yaml-value"


def test_syntax_error_has_a_position() -> None:
    problem = _problem("a: [1, 2\nb: 3\n")
    assert problem.code == "yaml-syntax"
    assert problem.message.startswith("invalid YAML: ")
    assert problem.source.line >= 1


def test_control_character_position() -> None:
    problem = _problem("a: ok\nb: x\x1by\n")
    assert (problem.code, str(problem.source)) == ("yaml-syntax", "f.yaml:2:5")
    assert problem.message == "invalid YAML: character U+001B is not allowed"


def test_not_utf8_position(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_bytes(b"a: ok\nname: Caf\xe9\n")
    problem = load_file(path, "f.yaml")
    assert isinstance(problem, Problem)
    assert (problem.code, str(problem.source)) == ("not-utf8", "f.yaml:2:10")


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_bytes("\ufeffname: Café\n".encode())
    loaded = load_file(path, "f.yaml")
    assert isinstance(loaded, LoadedFile)
    assert loaded.data == {"name": "Café"}


def test_file_over_the_size_limit_is_not_read(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_bytes(b"# " + b"x" * MAX_FILE_BYTES + b"\n")
    problem = load_file(path, "f.yaml")
    assert isinstance(problem, Problem)
    assert problem.code == "too-large"


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.symlink_to(tmp_path / "missing.yaml")
    problem = load_file(path, "f.yaml")
    assert isinstance(problem, Problem)
    assert problem.code == "unreadable"
    assert problem.message.startswith("cannot read the file: ")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text("a: 1\n")
    path.chmod(0)
    problem = load_file(path, "f.yaml")
    assert isinstance(problem, Problem)
    assert problem.code == "unreadable"


@pytest.mark.parametrize(
    ("written", "read"),
    [("~", None), ("Null", None), ("NULL", None), ("TRUE", True), ("false", False), ("1e3", 1000.0),
     ("1.", 1.0), (".5", 0.5), ("+1", 1), ("-7", -7), ("007", 7), ("0o17", 15), ("0x1F", 31),
     ("1_000", "1_000"), ("12:30", "12:30"), ("2026-12-01", "2026-12-01"), ("0b11", "0b11"), ("y", "y"),
     ("Off", "Off"), ("0x", "0x"), ("+.5e-1", 0.05)],
)  # fmt: skip
def test_plain_scalars_are_read_as_the_yaml_1_2_core_schema_says(written: str, read: object) -> None:
    """PyYAML's resolver with the core schema's implicit tags: no YAML 1.1 booleans, times or dates."""
    data = _loaded(f"a: {written}\n").data
    assert data == {"a": read} and type(data["a"]) is type(read)


@given(value=st.text(max_size=12), plain=st.booleans(), quoted_implicit=st.booleans())
def test_the_composer_tags_every_scalar_as_the_core_resolver_does(
    value: str, plain: bool, quoted_implicit: bool
) -> None:
    implicit = (plain, quoted_implicit)
    expected = CoreResolver().resolve(ScalarNode, value, implicit)
    assert load._ComposingResolver().resolve(ScalarNode, value, implicit) == expected


@pytest.mark.parametrize(
    "written", ["true", "False", "~", "null", "", "0o17", "0x1F", "-1.5e3", ".inf", ".NaN"]
)
def test_the_composer_tags_the_core_schema_spellings_as_the_core_resolver_does(written: str) -> None:
    expected = CoreResolver().resolve(ScalarNode, written, (True, False))
    assert load._ComposingResolver().resolve(ScalarNode, written, (True, False)) == expected


@pytest.mark.parametrize("kind", [MappingNode, SequenceNode])
def test_the_composer_tags_collections_as_the_core_resolver_does(kind: type[Node]) -> None:
    for implicit in (True, False):
        assert load._ComposingResolver().resolve(kind, None, implicit) == CoreResolver().resolve(
            kind, None, implicit
        )


def test_the_core_resolver_has_no_resolver_the_composer_leaves_out() -> None:
    # The composer looks resolvers up by a scalar's first character and tracks no paths.
    assert None not in load.IMPLICIT_RESOLVERS
    assert not CoreResolver.yaml_path_resolvers


def test_a_file_is_never_read_past_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file that says it is small (a device, a file still being written) is read only up to the limit."""
    from reconciler import load as load_module

    path = tmp_path / "GB-BIG.yaml"
    path.write_bytes(b"a: 1\n" + b"#" * (MAX_FILE_BYTES + 10))
    real_fstat = os.fstat

    class Small:
        def __init__(self, real: os.stat_result) -> None:
            self.st_size = 5
            self.real = real

    monkeypatch.setattr(load_module.os, "fstat", lambda fd: Small(real_fstat(fd)))
    problem = load_module.read_file(path, "GB-BIG.yaml")
    assert isinstance(problem, Problem) and problem.code == "too-large"
    assert (
        problem.message
        == f"the file is more than {MAX_FILE_BYTES:,} bytes; party files are limited to {MAX_FILE_BYTES:,}"
    )
