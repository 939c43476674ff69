"""Editor support in a party repository of one's own: the schemas its modelines name, checked by an editor.

`schema`, `init` and `import` write the packaged JSON Schemas into `schema/` beside the parties directory,
where every `# yaml-language-server: $schema=../schema/...` first line points. The YAML language server (the
npm package editors run, installed into tests/lsp/ by .ci/run) is driven over stdio as an editor drives it:
a party repository made by `init` in a temporary folder gets completion and inline errors. Those tests skip
only where node or npm is absent.
"""

from __future__ import annotations

import json
import queue
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Run

from reconciler.database import Connection
from reconciler.validate import schema_directory

ROOT = Path(__file__).parents[2]
LSP = ROOT / "tests" / "lsp"
SERVER = LSP / "node_modules" / "yaml-language-server" / "bin" / "yaml-language-server"
SCHEMAS = ("party.schema.json", "default-party.schema.json")
MODELINE = re.compile(r"^# yaml-language-server: \$schema=(\S+)$")


def packaged(name: str) -> str:
    return (schema_directory() / name).read_text(encoding="utf-8")


@pytest.fixture
def repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: Run) -> Path:
    """A fresh party repository made by `init`, outside this checkout, as the working directory."""
    monkeypatch.chdir(tmp_path)
    code, out, err = run("init", "--party", "GB-TWK", "--name", "Own CPO")
    assert (code, err) == (0, ""), err
    assert "wrote schema/party.schema.json\nwrote schema/default-party.schema.json\n" in out
    return tmp_path


def assert_modelines_resolve(parties: Path) -> None:
    files = sorted(parties.glob("*.yaml"))
    assert files
    for path in files:
        first = path.read_text(encoding="utf-8").splitlines()[0]
        match = MODELINE.match(first)
        assert match, f"{path.name} starts with {first!r}"
        target = (path.parent / match.group(1)).resolve()
        assert target.is_file(), f"{path.name} names {match.group(1)}, which is absent"
        assert target.read_text(encoding="utf-8") == packaged(target.name)


# -- schema, init and import write the schemas ------------------------------------------------------------


def test_schema_writes_the_packaged_schemas_and_replaces_a_different_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: Run
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run("schema")
    assert (code, out) == (0, "wrote schema/party.schema.json\nwrote schema/default-party.schema.json\n")
    for name in SCHEMAS:
        assert (tmp_path / "schema" / name).read_text(encoding="utf-8") == packaged(name)
    code, out, _ = run("schema")
    assert out == "schema/party.schema.json is up to date\nschema/default-party.schema.json is up to date\n"
    (tmp_path / "schema" / "party.schema.json").write_text("{}\n")
    code, out, _ = run("schema", "--out", "schema")
    assert code == 0
    assert out.startswith("updated schema/party.schema.json: it differed from the schema of ocpi-parties ")
    assert (tmp_path / "schema" / "party.schema.json").read_text(encoding="utf-8") == packaged(SCHEMAS[0])
    assert sorted(p.name for p in (tmp_path / "schema").iterdir()) == sorted(SCHEMAS), "no temporary left"


def test_schema_out_names_any_folder(tmp_path: Path, run: Run) -> None:
    code, out, _ = run("schema", "--out", str(tmp_path / "deep" / "schemas"))
    assert code == 0 and out.count("wrote ") == 2
    assert sorted(p.name for p in (tmp_path / "deep" / "schemas").iterdir()) == sorted(SCHEMAS)


def test_a_file_where_the_schemas_go_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: Run
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("schema").write_text("not a folder\n")
    code, out, err = run("schema")
    assert (code, out) == (2, "") and "'schema' is a file" in err
    code, out, err = run("init", "--party", "GB-TWK", "--name", "Own CPO")
    assert code == 1 and out.startswith("wrote parties/GB-TWK.yaml")
    assert err.endswith("error: schema is not a directory: the JSON Schemas go into a folder\n")
    assert Path("schema").read_text() == "not a folder\n"


def test_init_writes_the_schemas_its_modelines_name_and_a_gitignore(repository: Path, run: Run) -> None:
    assert_modelines_resolve(repository / "parties")
    assert (repository / ".gitignore").read_text().splitlines()[1:] == ["plan.json", ".ocpi-parties/"]
    code, out, _ = run("validate", "parties")
    assert code == 0, out


def test_init_extends_a_gitignore_once_and_refreshes_an_old_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run: Run
) -> None:
    monkeypatch.chdir(tmp_path)
    Path(".gitignore").write_text("*.pyc\n/plan.json")  # no final newline
    Path("schema").mkdir()
    Path("schema/party.schema.json").write_text("{}\n")
    code, out, _ = run("init", "--party", "GB-TWK", "--name", "Own CPO", "--out", "parties")
    assert code == 0
    assert "updated schema/party.schema.json: it differed" in out
    assert "added .ocpi-parties/ to .gitignore\n" in out
    lines = Path(".gitignore").read_text().splitlines()
    assert lines[:2] == ["*.pyc", "/plan.json"] and lines[-1] == ".ocpi-parties/"
    code, out, _ = run("init", "--party", "GB-TWK", "--name", "Own CPO")
    assert code == 0 and "schema" not in out and ".gitignore" not in out, "nothing left to write"
    assert Path(".gitignore").read_text().splitlines() == lines
    assert_modelines_resolve(tmp_path / "parties")


def test_init_out_elsewhere_puts_the_schemas_beside_that_directory(tmp_path: Path, run: Run) -> None:
    code, out, _ = run(
        "init", "--party", "GB-TWK", "--name", "Own CPO", "--out", str(tmp_path / "repo" / "p")
    )
    assert code == 0, out
    assert_modelines_resolve(tmp_path / "repo" / "p")
    assert (tmp_path / "repo" / ".gitignore").is_file()


def test_import_writes_the_schemas_its_modelines_name(
    run: Run, live: Connection, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run("import", "--database-url", database_url)
    assert code == 0, err
    assert "wrote schema/party.schema.json\n" in out
    assert_modelines_resolve(tmp_path / "parties")
    assert not (tmp_path / ".gitignore").exists(), "only init sets the repository up"


# -- the YAML language server, as an editor runs it ----------------------------------------------------


class LanguageServer:
    """A minimal LSP client over stdio: Content-Length framed JSON-RPC, answering the server's requests."""

    def __init__(self, node: str, root: Path) -> None:
        self.process = subprocess.Popen(
            [node, str(SERVER), "--stdio"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.last_id = 0
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.request(
            "initialize",
            {
                "processId": None,
                "rootUri": root.as_uri(),
                "capabilities": {"textDocument": {"completion": {}, "publishDiagnostics": {}}},
            },
        )
        self.notify("initialized", {})
        # No yaml.schemas: the files' first lines alone must lead the server to the schemas.
        self.notify("workspace/didChangeConfiguration", {"settings": {"yaml": self.settings}})

    settings: dict[str, Any] = {  # noqa: RUF012
        "validate": True,
        "completion": True,
        "hover": True,
        "schemaStore": {"enable": False},
    }

    def _read(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        while True:
            length = None
            while (line := stream.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode("ascii").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            if not line or length is None:
                self.messages.put(None)
                return
            self.messages.put(json.loads(stream.read(length)))

    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.process.stdin is not None
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self._send({"method": method, "params": params})

    def request(self, method: str, params: dict[str, Any]) -> Any:
        self.last_id += 1
        asked = self.last_id
        self._send({"id": asked, "method": method, "params": params})
        answer = self._wait(lambda m: m.get("id") == asked and "method" not in m)
        assert "error" not in answer, answer
        return answer["result"]

    def _wait(self, wanted: Any, timeout: float = 60) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while True:
            message = self.messages.get(timeout=max(end - time.monotonic(), 0.01))
            assert message is not None, "the language server exited"
            if "method" in message and "id" in message:  # a request from the server
                items = message.get("params", {}).get("items", [])
                result = (
                    [self.settings if i.get("section") == "yaml" else None for i in items]
                    if message["method"] == "workspace/configuration"
                    else None
                )
                self._send({"id": message["id"], "result": result})
            elif wanted(message):
                return message

    def open(self, path: Path, text: str) -> list[dict[str, Any]]:
        """Open `text` as the document `path`; the diagnostics the server publishes for it."""
        uri = path.resolve().as_uri()
        self.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "yaml", "version": 1, "text": text}},
        )
        published = self._wait(
            lambda m: m.get("method") == "textDocument/publishDiagnostics" and m["params"]["uri"] == uri
        )
        diagnostics: list[dict[str, Any]] = published["params"]["diagnostics"]
        return diagnostics

    def completion(self, path: Path, line: int, character: int) -> list[str]:
        result = self.request(
            "textDocument/completion",
            {
                "textDocument": {"uri": path.resolve().as_uri()},
                "position": {"line": line, "character": character},
            },
        )
        items = result["items"] if isinstance(result, dict) else result
        return [item["label"] for item in items]

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        self.reader.join(timeout=10)
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


@pytest.fixture(scope="module")
def node() -> str:
    """node, with the YAML language server installed into tests/lsp/ (by .ci/run, or here by npm)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or (npm is None and not SERVER.is_file()):
        pytest.skip("node and npm are needed to run the YAML language server")
    if not SERVER.is_file():
        assert npm is not None
        done = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--no-package-lock"],
            cwd=LSP,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0 and SERVER.is_file(), f"npm install in tests/lsp failed:\n{done.stderr}"
    return node


@pytest.fixture
def server(node: str, repository: Path) -> Iterator[LanguageServer]:
    started = LanguageServer(node, repository)
    yield started
    started.close()


def line_of(text: str, start: str) -> int:
    return next(n for n, line in enumerate(text.splitlines()) if line.startswith(start))


def test_the_files_init_writes_are_clean_in_the_editor(server: LanguageServer, repository: Path) -> None:
    # A schema the server could not load would be a diagnostic here ("Unable to load schema ...").
    for path in sorted((repository / "parties").glob("*.yaml")):
        assert server.open(path, path.read_text()) == [], path.name


def test_an_invalid_party_file_gets_diagnostics_on_its_lines(
    server: LanguageServer, repository: Path
) -> None:
    path = repository / "parties" / "GB-TWK.yaml"
    text = path.read_text().replace("kind: hosted", "kind: hostedd") + "colour: blue\n"
    diagnostics = server.open(path, text)
    assert {(d["range"]["start"]["line"], d["message"]) for d in diagnostics} == {
        (line_of(text, "kind:"), 'Value is not accepted. Valid values: "hosted", "partner".'),
        (line_of(text, "colour:"), "Property colour is not allowed."),
    }
    for diagnostic in diagnostics:
        assert diagnostic["data"]["schemaUri"] == [(repository / "schema" / SCHEMAS[0]).as_uri()]


def test_an_invalid_default_party_file_gets_a_diagnostic(server: LanguageServer, repository: Path) -> None:
    path = repository / "parties" / "default-party.yaml"
    text = path.read_text() + "extra: 1\n"
    (diagnostic,) = server.open(path, text)
    assert diagnostic["range"]["start"]["line"] == line_of(text, "extra:")
    assert diagnostic["message"] == "Property extra is not allowed."
    assert diagnostic["data"]["schemaUri"] == [(repository / "schema" / SCHEMAS[1]).as_uri()]


def test_completion_offers_the_keys_and_the_enums(server: LanguageServer, repository: Path) -> None:
    modeline = (repository / "parties" / "GB-TWK.yaml").read_text().splitlines()[0]
    path = repository / "parties" / "NL-NEW.yaml"
    server.open(path, f"{modeline}\n\n")
    keys = set(server.completion(path, 1, 0))
    assert {"country_code", "party_id", "kind", "url", "business_details", "roles"} <= keys

    text = (
        f"{modeline}\ncountry_code: NL\nparty_id: NEW\nkind: partner\n"
        "business_details:\n  name: New\n  logo:\n    url: https://new.example/logo.png\n    type: png\n"
        "    category: \nroles:\n  - role: \n"
    )
    path = repository / "parties" / "NL-LOG.yaml"
    server.open(path, text)
    category = line_of(text, "    category:")
    assert set(server.completion(path, category, len("    category: "))) == {
        "CHARGER",
        "ENTRANCE",
        "LOCATION",
        "NETWORK",
        "OPERATOR",
        "OTHER",
        "OWNER",
    }
    role = line_of(text, "  - role:")
    assert {"CPO", "EMSP", "HUB", "NAP", "NSP", "SCSP", "OTHER"} <= set(
        server.completion(path, role, len("  - role: "))
    )
