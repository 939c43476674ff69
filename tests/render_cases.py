"""Plans built by hand for the rendering tests and the examples of docs/plan-format.md."""

from __future__ import annotations

from reconciler.changes import (
    ActualState,
    AppliedRow,
    ClaimedLocation,
    CreateParty,
    LocationGroup,
    LocationRules,
    PartyRow,
    Plan,
)
from reconciler.model import (
    BusinessDetails,
    Declared,
    DesiredState,
    Identity,
    Image,
    Kind,
    Party,
    PartyRole,
    Source,
    Tombstone,
)
from reconciler.plan import compute_plan

TWK = Identity("GB", "TWK")
ES = Identity("ES", "CPO")
EMO = Identity("DE", "EMO")
VLT = Identity("NL", "VLT")
OLD = Identity("GB", "OLD")
OFF = Identity("GB", "OFF")
GON = Identity("GB", "GON")
PEER = Identity("BE", "PEE")
PT = Identity("PT", "CPO")
FR = Identity("FR", "CPO")


def _role(
    role: str, file: str, line: int, name: str, kind: Kind = Kind.HOSTED, **details: object
) -> PartyRole:
    return PartyRole(role, BusinessDetails(name, **details), Source(file, line, 5), kind)  # type: ignore[arg-type]


def every_change() -> Plan:
    """One plan with every kind of change, a blocked deletion, a partner awaiting registration, unmanaged
    rows, drift, a warning and a note, computed by `compute_plan` from files and a database as they could be.

    The database: GB-TWK and ES-CPO are hosted CPO rows that ocpi-parties created (no credentials); GB-TWK was
    the default party. NL-VLT registered over OCPI as `nl`/`vlt`, from another url than its file expects. An
    earlier ocpi-parties created a credential-less row for DE-EMO's EMSP, a partner. GB-GON's EMSP (a partner,
    managed) lost its file; GB-OFF's CPO (hosted, managed) lost its file without a tombstone; GB-OLD's CPO is
    tombstoned. Locations: MaEVe's writes (nothing recorded) under the placeholder XXX from before any default
    and on GB-TWK; another writer's under PT-CPO and FR-CPO (which ES-CPO's `moved_from` names), DE-EMO (a
    CPO declared late), GB-OLD, GB-TWK and BE-PEE.
    """
    logo = Image("https://www.elektromobil.example/logo.svg", "OPERATOR", "svg", width=512, height=512)
    parties = (
        Party(
            TWK,
            (_role("CPO", "parties/GB-TWK.yaml", 6, "Twinkle Charging"),),
            "https://ocpi.twinkle.example/versions",
        ),
        Party(
            ES,
            (_role("CPO", "parties/ES-CPO.yaml", 7, "Carga Ibérica"),),
            moved_from=(
                Declared(PT, Source("parties/ES-CPO.yaml", 9, 5)),
                Declared(FR, Source("parties/ES-CPO.yaml", 10, 5)),
            ),
            locations=(Declared("LOC-0042"), Declared("LOC-GONE", Source("parties/ES-CPO.yaml", 12, 5))),
        ),
        Party(
            EMO,
            (
                _role(
                    "CPO",
                    "parties/DE-EMO.yaml",
                    12,
                    "Elektromobil Österreich GmbH",
                    website="https://www.elektromobil.example",
                    logo=logo,
                ),
                _role("EMSP", "parties/DE-EMO.yaml", 14, "Elektromobil Ladekarte Österreich", Kind.PARTNER),
            ),
            "https://ocpi.elektromobil.example/versions",
        ),
        Party(
            VLT,
            (_role("EMSP", "parties/NL-VLT.yaml", 7, "Voltaro", Kind.PARTNER),),
            "https://ocpi.voltaro.example/versions",
        ),
    )
    desired = DesiredState(
        parties,
        ES,
        Source("parties/default-party.yaml", 1, 1),
        (Tombstone(OLD, None, Source("parties/GB-OLD.yaml", 3, 1)),),
    )
    emo_emsp = (EMO, "EMSP", "https://ocpi.elektromobil.example/versions", {"name": "Elektromobil"})
    actual = ActualState(
        rows=(
            PartyRow(
                TWK, "CPO", "https://ocpi.twinkle.example/versions", {"name": "Twinkle"}, True, 1, False
            ),
            PartyRow(ES, "CPO", "", {"name": "Carga Ibérica"}, True, 2, False),
            PartyRow(OLD, "CPO", "https://old.example/versions", {"name": "Old Charging"}, True, 3, False),
            PartyRow(OFF, "CPO", "", {"name": "Off Charging"}, True, 4, False),
            PartyRow(GON, "EMSP", "https://gone.example/versions", {"name": "Gone"}, True, 5),
            PartyRow(*emo_emsp, True, 6, False),
            PartyRow(PEER, "CPO", "https://ocpi.peer.example/versions", None, False, 7),
            PartyRow(PEER, "EMSP", "https://ocpi.peer.example/versions", None, False, 8),
            PartyRow(
                Identity("nl", "vlt"), "EMSP", "https://api.voltaro.example/ocpi/versions", None, False, 9
            ),
        ),
        default_party=TWK,
        location_groups=(
            LocationGroup(None, Identity("GB", "XXX"), 999, owned=False),
            LocationGroup(None, Identity("BE", "XXX"), 200, owned=False),
            LocationGroup(None, TWK, 301),
            LocationGroup(TWK, TWK, 5_000),
            LocationGroup(PT, TWK, 30),
            LocationGroup(FR, FR, 12, owned=False),
            LocationGroup(EMO, TWK, 25),
            LocationGroup(OLD, OLD, 77),
            LocationGroup(PEER, PEER, 40),
        ),
        claimed={"LOC-0042": ClaimedLocation(None, TWK)},
        last_applied=(
            AppliedRow(TWK, "CPO", "https://ocpi.twinkle.example/v2.2.1", {"name": "Twinkle"}),
            AppliedRow(ES, "CPO", "", {"name": "Carga Ibérica"}),
            AppliedRow(OLD, "CPO", "https://old.example/versions", {"name": "Old Charging"}),
            AppliedRow(OFF, "CPO", "", {"name": "Off Charging"}),
            AppliedRow(GON, "EMSP", "https://gone.example/versions", {"name": "Gone"}),
            AppliedRow(*emo_emsp),
            AppliedRow(Identity("GB", "LST"), "NSP", "https://lost.example/versions", {"name": "Lost"}),
        ),
        rules=LocationRules(),
    )
    return compute_plan(desired, actual)


def creates(count: int) -> Plan:
    """`count` new EMSP rows: a plan far longer than a pull-request comment may be."""
    return Plan(
        tuple(
            CreateParty(
                Identity(f"N{chr(65 + n // 1000 % 26)}", f"{n % 1000:03d}"),
                "EMSP",
                f"https://ocpi.party-{n}.example/versions",
                {"name": f"Party number {n}", "website": f"https://party-{n}.example"},
                Source(f"parties/party-{n}.yaml", 6, 5),
            )
            for n in range(count)
        )
    )
