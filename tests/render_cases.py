"""Plans built by hand for the rendering tests and the examples of docs/plan-format.md."""

from __future__ import annotations

from reconciler.model import (
    BusinessDetails,
    Declared,
    DesiredState,
    Identity,
    Image,
    Party,
    PartyRole,
    Source,
    Tombstone,
)
from reconciler.plan import (
    ActualState,
    AppliedRow,
    CreateParty,
    LocationGroup,
    PartyRow,
    Plan,
    compute_plan,
)

TWK = Identity("GB", "TWK")
ES = Identity("ES", "CPO")
EMO = Identity("DE", "EMO")
VLT = Identity("NL", "VLT")
OLD = Identity("GB", "OLD")
GON = Identity("GB", "GON")
PEER = Identity("BE", "PEE")


def _role(role: str, file: str, line: int, name: str, **details: object) -> PartyRole:
    return PartyRole(role, BusinessDetails(name, **details), Source(file, line, 5))  # type: ignore[arg-type]


def every_change() -> Plan:
    """One plan with every kind of change, a blocked deletion, unmanaged rows, drift and a note."""
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
                Declared(Identity("PT", "CPO"), Source("parties/ES-CPO.yaml", 9, 5)),
                Declared(Identity("FR", "CPO"), Source("parties/ES-CPO.yaml", 10, 5)),
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
                    "Elektromobil GmbH",
                    website="https://www.elektromobil.example",
                    logo=logo,
                ),
                _role("EMSP", "parties/DE-EMO.yaml", 13, "Elektromobil Ladekarte Österreich"),
            ),
            "https://ocpi.elektromobil.example/versions",
        ),
        Party(
            VLT,
            (_role("EMSP", "parties/NL-VLT.yaml", 6, "Voltaro"),),
            "https://ocpi.voltaro.example/versions",
        ),
    )
    desired = DesiredState(
        parties,
        ES,
        Source("parties/default-party.yaml", 1, 1),
        (Tombstone(OLD, None, Source("parties/GB-OLD.yaml", 3, 1)),),
    )
    actual = ActualState(
        rows=(
            PartyRow(TWK, "CPO", "https://ocpi.twinkle.example/versions", {"name": "Twinkle"}, True),
            PartyRow(ES, "CPO", "", {"name": "Carga Ibérica"}, True),
            PartyRow(VLT, "EMSP", "https://ocpi.voltaro.example/versions", None, False),
            PartyRow(OLD, "CPO", "https://old.example/versions", {"name": "Old Charging"}, True),
            PartyRow(GON, "EMSP", "https://gone.example/versions", {"name": "Gone"}, True),
            PartyRow(PEER, "CPO", "https://ocpi.peer.example/versions", None, False),
            PartyRow(PEER, "EMSP", "https://ocpi.peer.example/versions", None, False),
        ),
        default_party=TWK,
        location_groups=(
            LocationGroup(Identity("GB", "XXX"), 1_000),
            LocationGroup(Identity("BE", "XXX"), 200),
            LocationGroup(Identity("PT", "CPO"), 30),
            LocationGroup(Identity("FR", "CPO"), 12),
            LocationGroup(OLD, 77),
            LocationGroup(TWK, 5_000),
        ),
        claimed={"LOC-0042": Identity("GB", "XXX")},
        last_applied=(
            AppliedRow(TWK, "CPO", "https://ocpi.twinkle.example/v2.2.1", {"name": "Twinkle"}),
            AppliedRow(ES, "CPO", "", {"name": "Carga Ibérica"}),
            AppliedRow(OLD, "CPO", "https://old.example/versions", {"name": "Old Charging"}),
            AppliedRow(GON, "EMSP", "https://gone.example/versions", {"name": "Gone"}),
            AppliedRow(Identity("GB", "LST"), "NSP", "", {"name": "Lost"}),
        ),
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
