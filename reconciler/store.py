"""The party store: read and change parties, the default party and location owners in MaEVe's database.

Plain functions over an open connection. Every query works on sets of rows in SQL: counts and orphans
are computed by the database, location lists are paged, and nothing loads all locations into Python.
Party tokens (credentials) are never read.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from psycopg import sql
from psycopg.rows import RowFactory, kwargs_row

from reconciler.changes import PartyRow
from reconciler.database import Connection, exists, snapshot
from reconciler.errors import StoreError
from reconciler.migrations import Applied, DatabaseObject, Migration, applied, available, missing, unknown
from reconciler.model import CPO, Identity
from reconciler.state import (
    DEFAULT_PARTY_KEY,
    default_recorded,
    get_default_party,
    location_columns,
    party_rows,
    zoned,
)

LOCATION_KEY = "locations_party_fk"
#: Set to 'on' in a transaction to move owned locations to exactly the party written (see 0005).
MOVE_SETTING = "ocpi_parties.move_locations"


T = TypeVar("T")


@dataclass(frozen=True)
class PartyDetails:
    """Every role of one identity, with what the database says about it."""

    identity: Identity
    roles: tuple[PartyRow, ...]
    locations: int
    is_default: bool
    #: False before migration 0001 adds `system_config`, where the default party is recorded.
    default_recorded: bool = True


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, with the number of rows of the whole list (one count query)."""

    rows: list[T]
    offset: int
    limit: int
    total: int

    @property
    def next_offset(self) -> int | None:
        """The offset of the next page; None on the last page."""
        end = self.offset + len(self.rows)
        return end if end < self.total and self.rows else None


@dataclass(frozen=True)
class LocationRow:
    id: str
    identity: Identity
    #: False while the location has no owner (party_role NULL).
    owned: bool
    name: str | None
    city: str | None
    country: str | None
    updated_at: datetime


@dataclass(frozen=True)
class LocationCounts:
    """Locations per recorded identity, and how many of them name no CPO party (orphans)."""

    by_identity: Mapping[Identity, int]
    orphans: int
    #: The recorded identities that name no CPO party: their locations are the orphans.
    orphan_identities: frozenset[Identity] = frozenset()

    @property
    def total(self) -> int:
        return sum(self.by_identity.values())


@dataclass(frozen=True)
class MigrationState:
    migration: Migration
    applied: Applied | None

    @property
    def changed(self) -> bool:
        """The file differs from the one that was applied."""
        return self.applied is not None and self.applied.checksum != self.migration.checksum


@dataclass(frozen=True)
class Status:
    """What `db status` reports."""

    migrations: tuple[MigrationState, ...]
    #: Versions applied by a newer ocpi-parties, unknown to this one.
    unknown_migrations: tuple[int, ...]
    parties: int
    managed: int
    locations: int
    orphans: int
    default_party: Identity | None
    default_is_cpo: bool
    #: "absent", "not valid" or "valid".
    location_key: str
    #: Applied migrations whose objects the database lacks, with those objects (`migrations.missing`).
    missing: tuple[tuple[Migration, tuple[DatabaseObject, ...]], ...] = ()

    @property
    def unmanaged(self) -> int:
        return self.parties - self.managed

    @property
    def pending(self) -> tuple[Migration, ...]:
        return tuple(s.migration for s in self.migrations if s.applied is None)


def _page(offset: int, limit: int) -> None:
    if offset < 0 or limit < 1:
        raise StoreError(f"offset must be 0 or more and limit 1 or more (got offset {offset}, limit {limit})")


def spellings(identity: Identity) -> list[tuple[str, str]]:
    """Every spelling of `identity` in upper and lower case: identities match case-insensitively, and a
    match on these uses the (country_code, party_id) indexes that `upper()` would not."""
    variants = [""]
    for char in identity.country_code + identity.party_id:
        cases = {char.upper(), char.lower()}
        variants = [prefix + case for prefix in variants for case in sorted(cases)]
    return [(v[:2], v[2:]) for v in variants]


def _matching(
    identity: Identity, country_code: str = "country_code", party_id: str = "party_id"
) -> sql.Composed:
    """`(country_code, party_id) IN (every spelling of identity)`, the values as SQL literals."""
    return sql.SQL("({}, {}) IN ({})").format(
        sql.Identifier(*country_code.split(".")),
        sql.Identifier(*party_id.split(".")),
        sql.SQL(", ").join(
            sql.SQL("({}, {})").format(sql.Literal(c), sql.Literal(p)) for c, p in spellings(identity)
        ),
    )


def _cpo_row(connection: Connection, identity: Identity) -> Identity | None:
    """The identity of `identity`'s CPO row as the row spells it (the oldest, among spellings), or None."""
    query = sql.SQL(
        "SELECT country_code, party_id FROM ocpi_parties WHERE role = %s AND {} ORDER BY id LIMIT 1"
    ).format(_matching(identity))
    row = connection.execute(query, (CPO,)).fetchone()
    return Identity(row[0], row[1]) if row else None


def _cpo_exists(connection: Connection, identity: Identity) -> bool:
    return _cpo_row(connection, identity) is not None


def set_default_party(connection: Connection, identity: Identity) -> None:
    """Make `identity` the default party. It must hold the CPO role: the default party owns locations."""
    with connection.transaction():
        if not _cpo_exists(connection, identity):
            raise StoreError(f"{identity} cannot be the default party: it has no CPO role in ocpi_parties")
        connection.execute(
            "INSERT INTO system_config (key, value) VALUES (%s, %s) "
            "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = NOW()",
            (DEFAULT_PARTY_KEY, str(identity)),
        )


def _with_identity(make: Callable[..., T]) -> RowFactory[T]:
    """Rows with country_code and party_id columns -> `make(identity=..., **the other columns)`."""

    def build(*, country_code: str, party_id: str, **columns: Any) -> T:
        return make(identity=Identity(country_code, party_id), **columns)

    return kwargs_row(build)


def list_parties(
    connection: Connection, role: str | None = None, offset: int = 0, limit: int = 100
) -> list[PartyRow]:
    """Party rows ordered by identity then role, optionally of one role, one page at a time."""
    _page(offset, limit)
    where = sql.SQL("WHERE p.role = %(role)s") if role else sql.SQL("")
    rest = sql.SQL("{} ORDER BY p.country_code, p.party_id, p.role, p.id OFFSET %(offset)s LIMIT %(limit)s")
    params = {"role": role.upper() if role else None, "offset": offset, "limit": limit}
    return party_rows(connection, rest.format(where), params)


def _count(
    connection: Connection, query: sql.SQL | sql.Composed, params: tuple[str, ...] | None = None
) -> int:
    row = connection.execute(query, params).fetchone()
    return int(row[0]) if row else 0


def party_page(
    connection: Connection, role: str | None = None, offset: int = 0, limit: int = 100
) -> Page[PartyRow]:
    """A page of `list_parties` and the number of rows of every page (one count query), in one snapshot."""
    with snapshot(connection):
        rows = list_parties(connection, role=role, offset=offset, limit=limit)
        where = sql.SQL(" WHERE role = %s") if role else sql.SQL("")
        total = _count(
            connection,
            sql.SQL("SELECT count(*) FROM ocpi_parties") + where,
            (role.upper(),) if role else None,
        )
    return Page(rows, offset, limit, total)


def get_party(connection: Connection, identity: Identity) -> PartyDetails | None:
    """Every role of `identity`, the number of locations recorded under it, and whether it is the default."""
    rest = sql.SQL("WHERE {identity} ORDER BY p.role, p.id").format(
        identity=_matching(identity, "p.country_code", "p.party_id")
    )
    roles = tuple(party_rows(connection, rest))
    if not roles:
        return None
    count = connection.execute(
        sql.SQL("SELECT count(*) FROM locations WHERE {}").format(_matching(identity))
    ).fetchone()
    return PartyDetails(
        identity=identity,
        roles=roles,
        locations=int(count[0]) if count else 0,
        is_default=str(get_default_party(connection)).upper() == str(identity).upper(),
        default_recorded=default_recorded(connection),
    )


def set_location_party(connection: Connection, location_id: str, identity: Identity) -> None:
    """Give location `location_id` to `identity`, which must hold the CPO role."""
    with connection.transaction():
        owner = _cpo_row(connection, identity)
        if owner is None:
            raise StoreError(
                f"location {location_id} cannot belong to {identity}: it has no CPO role in ocpi_parties"
            )
        connection.execute("SELECT set_config(%s, 'on', true)", (MOVE_SETTING,))
        row = connection.execute(
            "UPDATE locations SET country_code = %s, party_id = %s, party_role = %s, updated_at = NOW()"
            " WHERE id = %s RETURNING id",
            (owner.country_code, owner.party_id, CPO, location_id),
        ).fetchone()
        connection.execute("SELECT set_config(%s, 'off', true)", (MOVE_SETTING,))
        if row is None:
            raise StoreError(f"no location {location_id} in the database")


def list_locations(
    connection: Connection, identity: Identity, offset: int = 0, limit: int = 100
) -> list[LocationRow]:
    """The locations recorded under `identity`, newest first (MaEVe's order), one page at a time."""
    _page(offset, limit)
    query = (
        "SELECT l.id, l.country_code, l.party_id, {owned} IS NOT NULL AS owned,"
        " coalesce(l.location_data->>'Name', l.location_data->>'name') AS name,"
        " coalesce(l.location_data->>'City', l.location_data->>'city') AS city,"
        " coalesce(l.location_data->>'Country', l.location_data->>'country') AS country,"
        " {updated_at} AS updated_at"
        " FROM locations AS l WHERE {identity}"
        " ORDER BY l.created_at DESC, l.id OFFSET %s LIMIT %s"
    )
    statement = sql.SQL(query).format(
        # Before migration 0005 adds party_role, a location is owned when its identity names a CPO row.
        owned=location_columns(connection)["owned"],
        updated_at=zoned("l.updated_at"),
        identity=_matching(identity, "l.country_code", "l.party_id"),
    )
    with connection.cursor(row_factory=_with_identity(LocationRow)) as cursor:
        return cursor.execute(statement, (offset, limit)).fetchall()


def location_page(
    connection: Connection, identity: Identity, offset: int = 0, limit: int = 100
) -> Page[LocationRow]:
    """A page of `list_locations` and the number of locations recorded under `identity` (one count query), in
    one snapshot."""
    with snapshot(connection):
        rows = list_locations(connection, identity, offset=offset, limit=limit)
        total = _count(
            connection, sql.SQL("SELECT count(*) FROM locations WHERE {}").format(_matching(identity))
        )
    return Page(rows, offset, limit, total)


_ORPHAN = sql.SQL(
    "NOT EXISTS (SELECT 1 FROM ocpi_parties AS p"
    " WHERE p.role = 'CPO' AND p.country_code = l.country_code AND p.party_id = l.party_id)"
)


def count_locations(connection: Connection) -> LocationCounts:
    """Locations per recorded identity and the orphan count, one grouped query (one row per identity)."""
    query = sql.SQL(
        "SELECT l.country_code, l.party_id, count(*) AS n, {orphan} AS orphan"
        " FROM locations AS l GROUP BY l.country_code, l.party_id"
    ).format(orphan=_ORPHAN)
    by_identity: dict[Identity, int] = {}
    orphan_identities = set()
    for country_code, party_id, count, orphan in connection.execute(query):
        identity = Identity(country_code, party_id)
        by_identity[identity] = count
        if orphan:
            orphan_identities.add(identity)
    orphans = sum(by_identity[identity] for identity in orphan_identities)
    return LocationCounts(by_identity, orphans, frozenset(orphan_identities))


def count_orphans(connection: Connection) -> int:
    """Locations whose (country_code, party_id) names no CPO party."""
    query = sql.SQL("SELECT count(*) FROM locations AS l WHERE {orphan}").format(orphan=_ORPHAN)
    row = connection.execute(query).fetchone()
    return int(row[0]) if row else 0


def location_key_state(connection: Connection) -> str:
    """ "absent", "not valid" or "valid": the state of the location ownership foreign key."""
    row = connection.execute(
        "SELECT convalidated FROM pg_constraint WHERE conname = %s AND conrelid = to_regclass('locations')",
        (LOCATION_KEY,),
    ).fetchone()
    if row is None:
        return "absent"
    return "valid" if row[0] else "not valid"


def owns_locations(connection: Connection) -> bool:
    """Whether the session's role may alter `locations` (owns it, is a member of its owner, or superuser)."""
    row = connection.execute(
        "SELECT pg_has_role(current_user, relowner, 'USAGE')"
        " FROM pg_class WHERE oid = to_regclass('locations')"
    ).fetchone()
    return bool(row and row[0])


def validate_location_key(connection: Connection) -> bool:
    """Validate the location foreign key once no location is left without an owner; True when valid.

    VALIDATE scans `locations` under a lock that lets MaEVe go on reading and writing. Only the owner of
    `locations` may run it: for any other role (a deploy role with only the grants `apply` needs) the key
    stays not valid, and `db migrate`, run by the owner, validates it later.
    """
    state = location_key_state(connection)
    if state != "not valid":
        return state == "valid"
    unowned = connection.execute(
        "SELECT EXISTS (SELECT 1 FROM locations WHERE party_role IS NULL)"
    ).fetchone()
    if (unowned and unowned[0]) or not owns_locations(connection):
        return False
    connection.execute(
        sql.SQL("ALTER TABLE locations VALIDATE CONSTRAINT {}").format(sql.Identifier(LOCATION_KEY))
    )
    return True


def _managed_count(connection: Connection) -> int:
    """The party rows ocpi-parties manages; 0 before migration 0004 adds its records."""
    if not exists(connection, "reconciler_managed_parties"):
        return 0
    # From 0006 on, a record names its row by id and creation time: after MaEVe dropped and created
    # ocpi_parties again, a new row that reuses an id is not the row the record was made for.
    same_row = sql.SQL("p.id = m.party_row_id")
    if exists(connection, "reconciler_managed_parties", "row_created_at"):
        same_row = sql.SQL("p.id = m.party_row_id AND p.created_at = m.row_created_at")
    return _count(
        connection,
        sql.SQL("SELECT count(*) FROM reconciler_managed_parties AS m JOIN ocpi_parties AS p ON {}").format(
            same_row
        ),
    )


def status(connection: Connection) -> Status:
    """Migrations, party and location counts, the default party and the foreign key, in one snapshot."""
    with snapshot(connection):
        done = applied(connection)
        default = get_default_party(connection)
        return Status(
            migrations=tuple(MigrationState(m, done.get(m.version)) for m in available()),
            unknown_migrations=tuple(unknown(connection)),
            parties=_count(connection, sql.SQL("SELECT count(*) FROM ocpi_parties")),
            managed=_managed_count(connection),
            locations=_count(connection, sql.SQL("SELECT count(*) FROM locations")),
            orphans=count_orphans(connection),
            default_party=default,
            default_is_cpo=default is not None and _cpo_exists(connection, default),
            location_key=location_key_state(connection),
            missing=tuple(missing(connection)),
        )
