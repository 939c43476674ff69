"""Refresh the ISO 3166-1 alpha-2 list in schema/party.schema.json from pycountry.

Run after upgrading pycountry: `python scripts/update_country_codes.py`. tests/unit/test_schema.py fails while
the schema's list and pycountry's differ, so a new or withdrawn code cannot go unnoticed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pycountry

SCHEMA = Path(__file__).resolve().parent.parent / "schema" / "party.schema.json"


def assigned_alpha2_codes() -> list[str]:
    return sorted(country.alpha_2 for country in pycountry.countries)


def main() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    schema["$defs"]["country_code"]["enum"] = assigned_alpha2_codes()
    SCHEMA.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"{SCHEMA}: {len(schema['$defs']['country_code']['enum'])} country codes")


if __name__ == "__main__":
    main()
