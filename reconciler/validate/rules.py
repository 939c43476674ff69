"""The rules across the files of a parties directory: the default party, and the locations parties claim
or take over (moved_from)."""

from __future__ import annotations

from reconciler.model import CPO, Declared, Identity, Party, Problem, Source, Tombstone
from reconciler.validate.names import DEFAULT_FILE, shown_path

#: Who first claimed something, and where.
_Claims = dict[Identity, tuple[Party, Source]]


def default_problems(
    shown: str,
    *,
    seen: bool,
    default: Declared[Identity] | None,
    parties: dict[Identity, Party],
    named: dict[Identity, str],
    tombstones: list[Tombstone],
) -> list[Problem]:
    """The default party must be declared, by a file the directory `shown` holds, as a hosted CPO."""
    if not seen:
        return [
            Problem(
                Source(shown_path(shown, DEFAULT_FILE)),
                "no-default-party",
                f"no default party: create {shown_path(shown, DEFAULT_FILE)} with `default_party: CC-PID` "
                "naming the CPO that owns every location no other party claims",
            )
        ]
    if default is None:
        return []
    fault = _default_fault(shown, default.value, parties, named, tombstones)
    if fault is None:
        return []
    code, message = fault
    return [Problem(default.source, code, message, "$.default_party")]


def _default_fault(
    shown: str,
    identity: Identity,
    parties: dict[Identity, Party],
    named: dict[Identity, str],
    tombstones: list[Tombstone],
) -> tuple[str, str] | None:
    """What is wrong with naming `identity` the default party (code and message), if anything."""
    deleted = next((t for t in tombstones if t.identity == identity and t.role is None), None)
    if deleted is not None:
        return (
            "default-party-not-cpo",
            f"the default party {identity} is marked deleted at {deleted.source}: "
            "name another default party first",
        )
    party = parties.get(identity)
    if party is None and identity in named:
        return None  # that party's file is invalid and already reported
    if party is None:
        return (
            "default-party-undeclared",
            f"the default party {identity} is not declared: add {shown_path(shown, f'{identity}.yaml')}",
        )
    return _not_hosted_cpo(identity, party)


def _not_hosted_cpo(identity: Identity, party: Party) -> tuple[str, str] | None:
    cpo = party.role(CPO)
    if cpo is None:
        return (
            "default-party-not-cpo",
            f"the default party {identity} does not hold the CPO role (it holds "
            f"{', '.join(r.role for r in party.roles)}): locations can only belong to a CPO",
        )
    if not cpo.hosted:
        return (
            "default-party-not-cpo",
            f"the default party {identity} is a partner (its CPO role at {cpo.source} is kind: partner): "
            "the default party owns every location no other party claims, so it must be a CPO this CSMS "
            "hosts; name a hosted CPO, or declare this one `kind: hosted` if this CSMS operates it",
        )
    return None


def move_problems(parties: dict[Identity, Party]) -> list[Problem]:
    """moved_from and locations across files: only onto a hosted CPO, each claimed once, never from a live
    CPO."""
    problems: list[Problem] = []
    moved_to: _Claims = {}
    owned_by: dict[str, tuple[Party, Source]] = {}
    for identity in sorted(parties):
        party = parties[identity]
        problems.extend(_claims_need_a_hosted_cpo(party))
        problems.extend(_moves_from(party, parties, moved_to))
        problems.extend(_locations(party, owned_by))
    return problems


def _claims_need_a_hosted_cpo(party: Party) -> list[Problem]:
    claims = [(f"$.moved_from[{i}]", d.source) for i, d in enumerate(party.moved_from)]
    claims += [(f"$.locations[{i}]", d.source) for i, d in enumerate(party.locations)]
    if not claims or party.hosted_cpo:
        return []
    path, source = claims[0]
    if party.role(CPO) is None:
        message = f"{party.identity} does not hold the CPO role: only a CPO can own locations"
    else:
        message = (
            f"{party.identity}'s CPO role is a partner: only a CPO this CSMS hosts (kind: hosted) can "
            "claim locations or take them over with moved_from; a partner's CPO row owns just the "
            "locations recorded under its own identity"
        )
    return [Problem(source, "move-to-non-cpo", message, path.split("[")[0])]


def _moves_from(party: Party, parties: dict[Identity, Party], moved_to: _Claims) -> list[Problem]:
    """The parties `party` takes locations over from: none twice, never itself or a live CPO."""
    problems: list[Problem] = []
    for index, moved in enumerate(party.moved_from):
        message = _move_fault(party, moved.value, parties, moved_to)
        if message is None:
            moved_to[moved.value] = (party, moved.source)
        else:
            problems.append(Problem(moved.source, "move-conflict", message, f"$.moved_from[{index}]"))
    return problems


def _move_fault(
    party: Party, origin: Identity, parties: dict[Identity, Party], moved_to: _Claims
) -> str | None:
    identity = party.identity
    other = parties.get(origin)
    if origin == identity:
        return f"{identity} cannot be moved from itself"
    if other is not None and (other_cpo := other.role(CPO)) is not None:
        if any(back.value == identity for back in other.moved_from):
            return f"cycle of moves: {identity} moves from {origin} and {origin} from {identity}"
        if not other_cpo.hosted:
            return (
                f"{origin} is a partner CPO declared in {other.source.file}: the locations recorded "
                "under it belong to its CPO row, which OCPI registration owns"
            )
        return (
            f"{origin} is a CPO declared in {other.source.file}: its locations stay with it; "
            "mark it deleted (deleted: true) to move them"
        )
    if origin in moved_to:
        first, where = moved_to[origin]
        return f"{origin} is already moved to {first.identity} at {where}"
    return None


def _locations(party: Party, owned_by: dict[str, tuple[Party, Source]]) -> list[Problem]:
    """The locations `party` claims: each by one party only."""
    problems: list[Problem] = []
    for index, location in enumerate(party.locations):
        if location.value in owned_by:
            first, where = owned_by[location.value]
            problems.append(
                Problem(
                    location.source,
                    "move-conflict",
                    f"location {location.value!r} is already claimed by {first.identity} at {where}",
                    f"$.locations[{index}]",
                )
            )
        else:
            owned_by[location.value] = (party, location.source)
    return problems
