#!/usr/bin/env python3
"""Writes the made-up DUO fixture files in this folder, and README.md with the
totals the tests in query/src/duo.rs rely on.

Deterministic: counts come from a fixed linear congruential generator, not from
`random`, so every Python 3 writes the same bytes. Run from anywhere:

    python3 reference/tests/data/duo/make_fixtures.py
"""

import csv
import io
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))

# The hub municipalities (schemas/codes/hubs.json): "the region".
REGION = {"Apeldoorn", "Deventer", "Zutphen", "Epe"}


class Lcg:
    """glibc-style LCG: stable across Python versions, unlike `random`."""

    def __init__(self, seed):
        self.x = seed

    def below(self, n):
        self.x = (self.x * 1103515245 + 12345) % 2**31
        return (self.x >> 8) % n


# ---------------------------------------------------------------------------
# VO pupils

VMBO, HAVO, VWO, PRO = "vmbo", "havo", "vwo", "pro"

# brin, vestigingsnummer per file (2022, 2023, 2024), name, place, municipality,
# province, school types offered.
VO_SCHOOLS = [
    ("12AB", ("1", "01", "12AB01"), "Sint-Ludgercollège", "Zutphen", "Zutphen",
     "Gelderland", {VMBO, HAVO, VWO}),
    ("23CD", ("0", "00", "23cd00"), "Veluws Lyceum, locatie Zuid", "Apeldoorn",
     "Apeldoorn", "Gelderland", {HAVO, VWO}),
    ("34EF", ("2", "02", "34EF02"), "Athénée De Worp", "Deventer", "Deventer",
     "Overijssel", {VMBO, HAVO}),
    ("45GH", ("00", "00", "45GH00"), "Stedelijk College Utrecht", "Utrecht",
     "Utrecht", "Utrecht", {VMBO, HAVO, VWO, PRO}),
    ("56JK", ("01", "01", "56JK01"), "Noorderlicht College", "Groningen",
     "Groningen", "Groningen", {VMBO, HAVO, VWO}),
]

# (school type, kind, opleiding code, technical profile?, leerjaren,
#  base count per gender as (offset, spread) for man and vrouw). `kind` is the
#  onderwijstype the tests group by; how DUO writes each opleiding is in DUO_VALUES.
VO_OPLEIDINGEN = [
    (VMBO, "VMBO BB", "BWI", True, (3, 4), ((8, 20), (0, 7))),
    (VMBO, "VMBO KB", "BWI", True, (3, 4), ((6, 15), (0, 6))),
    (VMBO, "VMBO KB", "PIE", True, (3, 4), ((8, 20), (0, 6))),
    (VMBO, "VMBO GL", "MVI", True, (3, 4), ((5, 15), (0, 9))),
    (VMBO, "VMBO BB", "Z&W", False, (3, 4), ((0, 8), (8, 20))),
    (VMBO, "VMBO KB", "Z&W", False, (3, 4), ((0, 8), (10, 20))),
    (VMBO, "VMBO KB", "E&O", False, (3, 4), ((5, 15), (5, 15))),
    (VMBO, "VMBO GL", "E&O", False, (3, 4), ((4, 12), (4, 12))),
    (VMBO, "VMBO TL", "TL", False, (3, 4), ((20, 30), (20, 30))),
    (VMBO, "VMBO KB", "ONDERBOUW", False, (1, 2), ((25, 30), (25, 30))),
    (HAVO, "HAVO", "ONDERBOUW", False, (1, 2, 3), ((30, 40), (30, 40))),
    (HAVO, "HAVO", "N&T", True, (4, 5), ((6, 15), (0, 8))),
    (HAVO, "HAVO", "N&G", True, (4, 5), ((4, 10), (8, 15))),
    (HAVO, "HAVO", "N&T+N&G", True, (4, 5), ((0, 8), (0, 8))),
    (HAVO, "HAVO", "E&M", False, (4, 5), ((10, 20), (10, 20))),
    (HAVO, "HAVO", "C&M", False, (4, 5), ((0, 8), (6, 15))),
    (VWO, "VWO", "ONDERBOUW", False, (1, 2, 3), ((25, 30), (25, 30))),
    (VWO, "VWO", "N&T", True, (4, 5, 6), ((5, 12), (0, 8))),
    (VWO, "VWO", "N&G", True, (4, 5, 6), ((4, 10), (6, 12))),
    (VWO, "VWO", "N&T+N&G", True, (4, 5, 6), ((0, 8), (0, 8))),
    (VWO, "VWO", "E&M", False, (4, 5, 6), ((8, 15), (8, 15))),
    (VWO, "VWO", "C&M", False, (4, 5, 6), ((0, 6), (4, 10))),
    (PRO, "PRO", "PRO", False, (1, 2, 3, 4), ((5, 10), (3, 8))),
]

# DUO's ONDERWIJSTYPE VO EN LEER- OF VERBLIJFSJAAR per kind and leerjaar: the value
# names the leerjaren of its line (the values as DUO's files hold them).
def duo_onderwijstype(kind, leerjaar):
    if leerjaar <= 2 and kind != "PRO":
        return "Brugjaar 1-2"
    if kind in ("HAVO", "VWO") and leerjaar == 3:
        return "HAVO/VWO lj 3"
    return {"VMBO BB": "VMBO BL lj 3-4", "VMBO KB": "VMBO KL lj 3-4",
            "VMBO GL": "VMBO GL lj 3-4", "VMBO TL": "VMBO TL lj 3-4",
            "HAVO": "HAVO lj 4-5", "VWO": "VWO lj 4-6",
            "PRO": "Praktijkonderwijs alle vj"}[kind]


VMBO_PROFIELEN = {"BWI": ("Techniek", "Bouwen, wonen en interieur"),
                  "PIE": ("Techniek", "Produceren, installeren en energie"),
                  "MVI": ("Techniek", "Media, vormgeving en ICT"),
                  "Z&W": ("Zorg en welzijn", "Zorg en welzijn"),
                  "E&O": ("Economie", "Economie en ondernemen")}
# The elementcode table's names and codes (Regeling codetabellen, x70 to x79).
OLDER_HAVO_VWO = {"N&T": ("70", "Prf Nat/Tech"), "N&G": ("71", "Prf Nat/Gezond"),
                  "E&M": ("72", "Prf Ec/Maat"), "C&M": ("73", "Prf Cul/Maat"),
                  "N&T+N&G": ("74", "Prf Nat/Tech & Nat/Gezond")}
# The exam file's names (HAVO - N&T, VWO - N&T / N&G).
NEWER_HAVO_VWO = {"N&T": "N&T", "N&G": "N&G", "E&M": "E&M", "C&M": "C&M",
                  "N&T+N&G": "N&T / N&G"}
LEERWEG = {"VMBO BB": "BB", "VMBO KB": "KB", "VMBO GL": "GL", "VMBO TL": "TL"}


def duo_values(kind, code, leerjaar, newer):
    """(VMBO SECTOR, AFDELING, ELEMENTCODE, OPLEIDINGSNAAM) of one line."""
    if code in VMBO_PROFIELEN:
        sector, afdeling = VMBO_PROFIELEN[code]
        name = f"VMBO {LEERWEG[kind]} {afdeling}" if newer else \
            f"VMBO {LEERWEG[kind]} {afdeling.upper()}"
        return sector, afdeling, "", name
    if code in OLDER_HAVO_VWO:
        number, older = OLDER_HAVO_VWO[code]
        prefix = {"HAVO": ("03", "HAVO"), "VWO": ("01", "VWO-ATH")}[kind]
        if newer:
            return "n.v.t.", "n.v.t.", prefix[0] + number, f"{kind} - {NEWER_HAVO_VWO[code]}"
        return "n.v.t.", "n.v.t.", prefix[0] + number, f"{prefix[1]} {older}"
    if code == "TL":
        return "n.v.t.", "n.v.t.", "0400", "VMBO TL"
    if code == "PRO":
        return "n.v.t.", "n.v.t.", "0090", "Praktijkonderwijs"
    # Onderbouw: leerjaren 1 to 3 before the profile choice.
    return "n.v.t.", "n.v.t.", {"VMBO KB": "0011", "HAVO": "0300", "VWO": "0100"}[kind], \
        {"VMBO KB": "Ljvb op VMBO", "HAVO": "HAVO (1-3)", "VWO": "VWO-ATHENEUMSTROOM (1-3)"}[kind]


YEARS = (2022, 2023, 2024)


def year_factor(year, region, technical):
    """Technical profiles grow faster in the region than nationally."""
    step = year - 2022
    if technical:
        return 1 + step * (0.15 if region else 0.02)
    return 1 - step * (0.03 if region else 0.0)


def base_counts():
    """{(school index, opleiding index, leerjaar, gender): base count}."""
    lcg = Lcg(20221001)
    counts = {}
    for s, school in enumerate(VO_SCHOOLS):
        for o, (kind, _, _, _, leerjaren, spreads) in enumerate(VO_OPLEIDINGEN):
            if kind not in school[6]:
                continue
            for leerjaar in leerjaren:
                for gender, (offset, spread) in zip(("MAN", "VROUW"), spreads):
                    counts[(s, o, leerjaar, gender)] = offset + lcg.below(spread)
    return counts


def suppressed_marker(year):
    """2022 alternates `<5` and `-1`; 2023 writes `< 5`; 2024 writes `<5`."""
    if year == 2022:
        state = {"n": 0}

        def marker():
            state["n"] += 1
            return "<5" if state["n"] % 2 else "-1"

        return marker
    return lambda: "< 5" if year == 2023 else "<5"


GENDERS = ("MAN", "VROUW")
COUNT_COLUMNS = [f"LEER- OF VERBLIJFSJAAR {j} - {g}" for j in range(1, 7) for g in GENDERS]

# DUO's VO file until about 2019 and since: the same counts, other school codes and
# columns (no municipality in either: the address files have it).
OLDER_HEADER = ["BRIN NUMMER", "VESTIGINGSNUMMER", "INSTELLINGSNAAM VESTIGING",
                "PLAATSNAAM VESTIGING", "PROVINCIE VESTIGING",
                "ONDERWIJSTYPE VO EN LEER- OF VERBLIJFSJAAR", "LWOO INDICATIE",
                "VMBO SECTOR", "AFDELING", "ELEMENTCODE", "OPLEIDINGSNAAM"]
NEWER_HEADER = ["INSTELLINGSCODE", "VESTIGINGSCODE", "INSTELLINGSNAAM VESTIGING",
                "PLAATSNAAM VESTIGING", "PROVINCIE VESTIGING",
                "SAMENWERKINGSVERBAND PASSEND ONDERWIJS VO",
                "ONDERWIJSTYPE VO EN LEER- OF VERBLIJFSJAAR", "VMBO SECTOR", "AFDELING",
                "ERKENDE OPLEIDINGSCODE", "OPLEIDINGSNAAM"]


def vo_table(year, newer):
    """(header, rows, cells) of the VO file for `year` in the newer or older layout;
    cells are (school, opleiding, leerjaar, gender, text)."""
    counts = base_counts()
    marker = suppressed_marker(year)
    y = YEARS.index(year)
    header = (NEWER_HEADER if newer else OLDER_HEADER) + COUNT_COLUMNS
    rows, cells = [], []
    for s, (brin, vest, name, place, municipality, province, kinds) in enumerate(VO_SCHOOLS):
        region = municipality in REGION
        brin_cell = brin.lower() if vest[y] == "23cd00" else brin
        vestiging = vest[y][-2:] if newer else vest[y]
        # Older DUO files pad some names; the parser trims.
        place_cell = place + "   " if year == 2022 and s == 2 else place
        for o, (kind, onderwijstype, code, technical, leerjaren, _) in enumerate(VO_OPLEIDINGEN):
            if kind not in kinds:
                continue
            # One line per onderwijstype value: an onderbouw splits at leerjaar 3.
            lines = {}
            for leerjaar in leerjaren:
                lines.setdefault(duo_onderwijstype(onderwijstype, leerjaar), []).append(leerjaar)
            for value, line_years in lines.items():
                sector, afdeling, elementcode, opleiding = duo_values(
                    onderwijstype, code, line_years[0], newer)
                if newer:
                    row = [brin_cell, vestiging, name, place_cell, province, "SWV VO 25.01",
                           value, sector, afdeling, elementcode, opleiding]
                else:
                    row = [brin_cell, vestiging, name, place_cell, province, value, "N",
                           sector, afdeling, elementcode, opleiding]
                for leerjaar in range(1, 7):
                    for gender in GENDERS:
                        base = counts.get((s, o, leerjaar, gender))
                        if base is None or leerjaar not in line_years:
                            text = ""
                        else:
                            n = int(base * year_factor(year, region, technical) + 0.5)
                            text = marker() if 1 <= n <= 4 else str(n)
                            cells.append((s, o, leerjaar, gender, text))
                        row.append(text)
                rows.append(row)
    return header, rows, cells


def write_csv(name, header, rows, delimiter, encoding, lineterminator="\r\n",
              trailing=(), quoting=csv.QUOTE_MINIMAL):
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=lineterminator,
                        quoting=quoting)
    writer.writerow(header)
    writer.writerows(rows)
    for line in trailing:
        buffer.write(line + lineterminator)
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(buffer.getvalue().encode(encoding))


class Total:
    """A sum of published cells: exact part plus the number of suppressed cells."""

    def __init__(self):
        self.exact, self.suppressed = 0, 0

    def add(self, text):
        if text in ("<5", "< 5", "-1"):
            self.suppressed += 1
        else:
            self.exact += int(text or 0)

    def bounds(self):
        return self.exact + self.suppressed, self.exact + 4 * self.suppressed

    def __str__(self):
        low, high = self.bounds()
        return f"exact {self.exact} + {self.suppressed} suppressed → {low}–{high}"


def vo_facts(cells):
    """{(group, scope, technical-only?): Total} for vmbo bb/kb/gl leerjaar 3 and
    havo/vwo leerjaar 4."""
    facts = {}
    groups = {"vmbo bb/kb/gl, leerjaar 3": ({"VMBO BB", "VMBO KB", "VMBO GL"}, 3),
              "havo/vwo, leerjaar 4": ({"HAVO", "VWO"}, 4)}
    for s, o, leerjaar, _, text in cells:
        region = VO_SCHOOLS[s][4] in REGION
        _, onderwijstype, _, technical, _, _ = VO_OPLEIDINGEN[o]
        for group, (types, year) in groups.items():
            if onderwijstype not in types or leerjaar != year:
                continue
            for scope in ("region", "national") if region else ("national",):
                for tech_only in (False, True):
                    if tech_only and not technical:
                        continue
                    facts.setdefault((group, scope, tech_only), Total()).add(text)
    return facts


# ---------------------------------------------------------------------------
# PO pupils

PO_SCHOOLS = [
    # brin, vestigingsnummer, name, place, municipality, counts for ages 3..12
    ("07XY", "0", "OBS De Regenboog", "Apeldoorn", "Apeldoorn",
     ["0", "28", "31", "27", "30", "29", "26", "31", "28", "6"]),
    ("08XZ", "1", "CBS Het Kompas, locatie Noord", "Deventer", "Deventer",
     ["", "22", "24", "25", "21", "23", "26", "22", "24", "5"]),
    ("09YA", "0", "IKC Brinkhorst", "Zutphen", "Zutphen",
     ["0", "15", "17", "16", "18", "14", "15", "17", "16", "7"]),
    ("10YB", "2", "Basisschool De Vlinderboom", "Vaassen", "Epe",
     ["0", "12", "11", "13", "12", "10", "12", "11", "13", "<5"]),
]
PO_AGES = range(3, 13)


def groep_band(age):
    """As in duo.rs: age on 1 October → groep band."""
    if age <= 3:
        return "none (age 3)"
    if age <= 5:
        return "groep_1_2"
    if age <= 9:
        return "groep_3_6"
    return "groep_7_8"


# ---------------------------------------------------------------------------
# School addresses

VO_ADDRESSES = [
    ["12AB", "01", "Sint-Ludgercollège", "Isendoornstraat", "12", "7201 NJ", "Zutphen",
     "Zutphen", "VMBO/HAVO/VWO"],
    ["23CD", "00", "Veluws Lyceum, locatie Zuid", "Jachtlaan", "40", "7312 GL", "Apeldoorn",
     "Apeldoorn", "HAVO/VWO"],
    ["34EF", "02", "Athénée De Worp", "Worpplein", "3", "7411 AB", "Deventer", "Deventer",
     "VMBO/HAVO"],
    ["45GH", "00", "Stedelijk College Utrecht", "Oudegracht", "210", "3511 NR", "Utrecht",
     "Utrecht", ""],
    ["56JK", "01", "Noorderlicht College", "Zernikelaan", "5", "9747 AA", "Groningen",
     "Groningen", "VMBO/HAVO/VWO"],
]
PO_ADDRESSES = [
    ["07XY", "07XY00", "OBS De Regenboog", "Regenboogpad", "1", "7321AB", "Apeldoorn",
     "Apeldoorn", "Bo"],
    ["08XZ", "08XZ01", "CBS Het Kompas, locatie Noord", "Coöperatieweg", "8", "7421 CD",
     "Deventer", "Deventer", "Bo"],
    ["09YA", "09YA00", "IKC Brinkhorst", "Brinkhorstlaan", "2", "7207 BA", "Zutphen",
     "Zutphen", "Bo"],
    ["10YB", "10YB02", "Basisschool De Vlinderboom", "Vlinderweg", "14", "8171 AZ",
     "Vaassen", "Epe", "Sbo"],
]


LAYOUT_NOTES = """Made-up files in the layouts of DUO open onderwijsdata, for the tests of
`query/src/duo.rs` and `query/tests/reference.rs`. Written by `make_fixtures.py`
(deterministic; do not edit the files by hand: change the script and rerun it,
then update the figures in the tests). School names, BRIN numbers and counts are
invented; no file of DUO's was at hand to quote rows from.

What is DUO's and what is reconstructed:
- VO pupils, older layout (`BRIN NUMMER`, `VESTIGINGSNUMMER`, `INSTELLINGSNAAM
  VESTIGING`, `PLAATSNAAM VESTIGING`, `PROVINCIE VESTIGING`, `ONDERWIJSTYPE VO EN
  LEER- OF VERBLIJFSJAAR`, `LWOO INDICATIE`, `VMBO SECTOR`, `AFDELING`,
  `ELEMENTCODE`, `OPLEIDINGSNAAM`, `LEER- OF VERBLIJFSJAAR n - MAN|VROUW`): the
  column names as code that reads DUO's files spells them (openstate
  openonderwijsdata-api, `onderwijsscrapers/spiders/duo.py`); their order is
  reconstructed. Newer layout (`INSTELLINGSCODE` with a two-digit `VESTIGINGSCODE`,
  a samenwerkingsverband column, no `LWOO INDICATIE`): names and order as public
  import scripts of the 2023 to 2025 files read them; the samenwerkingsverband and
  code columns' exact names are not known (here `SAMENWERKINGSVERBAND PASSEND
  ONDERWIJS VO`, `ERKENDE OPLEIDINGSCODE`). Neither layout has a municipality.
- Onderwijstype values (`VMBO BL lj 3-4`, `HAVO lj 4-5`, `VWO lj 4-6`, `HAVO/VWO
  lj 3`, `Brugjaar 1-2`, `Praktijkonderwijs alle vj`) are DUO's. havo/vwo profile
  names: older files as DUO's elementcode table (`HAVO Prf Nat/Tech`, `VWO-ATH Prf
  Nat/Tech & Nat/Gezond`, codes x70 to x79), newer as DUO's exam file (`HAVO -
  N&T`, `VWO - N&T / N&G`). vmbo values (`VMBO SECTOR` Techniek, `AFDELING` with
  the profiel's name) are reconstructed.
- PO pupils (`01.-leerlingen-po-soort-po-cluster-leeftijd-2024-2025.csv`):
  `INSTELLINGSCODE`, `SOORT_PO` (`Bo`), `LEEFTIJD_4` … with underscores as DUO
  writes them; the other columns and their order reconstructed from an import
  script.
- Addresses: `02.-alle-vestigingen-vo.csv` in the newer layout (`INSTELLINGSCODE`,
  six-character `VESTIGINGSCODE`, upper-case `GEMEENTENAAM`),
  `02.-alle-schoolvestigingen-basisonderwijs.csv` in the older one (`BRIN NUMMER`,
  six-character `VESTIGINGSNUMMER`); the column names are DUO's, their order partly
  reconstructed. Neither file names a year.
- `ckan-datastore-search-vo-2024.json`: the 2024 VO counts as the CKAN datastore
  of DUO's newer portal answers `datastore_search` (fields and records; counts of 1
  to 4 written as 4).

"Region" = the hub municipalities (Apeldoorn, Deventer, Zutphen, Epe);
"national" = every school in the file. A suppressed cell (`<5`, `< 5`, `-1`)
is 1 to 4 pupils, so a total is given as its exact part, the number of
suppressed cells *k*, and the bounds exact + k … exact + 4k."""


def vo_name(year):
    return f"01.-leerlingen-vo-per-vestiging-naar-onderwijstype-{year}.csv"


def write_vo(folder, year, newer):
    """Writes one VO file; returns its cells."""
    header, rows, cells = vo_table(year, newer)
    name = os.path.join(folder, vo_name(year))
    if year == 2022:
        write_csv(name, header, rows, ";", "cp1252", trailing=[";" * (len(header) - 1)])
    elif year == 2023:
        write_csv(name, header, rows, ";", "latin-1", lineterminator="\n")
    else:
        write_csv(name, header, rows, ",", "utf-8-sig", quoting=csv.QUOTE_ALL)
    return header, rows, cells


def write_ckan(name, header, rows):
    """The rows as a CKAN `datastore_search` answer; suppressed counts as 4."""
    count_columns = set(COUNT_COLUMNS)
    fields = [{"id": "_id", "type": "int"}] + [
        {"id": h, "type": "int4" if h in count_columns else "text"} for h in header]
    records = []
    for i, row in enumerate(rows):
        record = {"_id": i + 1}
        for h, text in zip(header, row):
            if h not in count_columns:
                record[h] = text
            elif text in ("<5", "< 5", "-1"):
                record[h] = 4
            else:
                record[h] = int(text) if text else None
        records.append(record)
    answer = {"help": "https://onderwijsdata.duo.nl/api/3/action/help_show?name=datastore_search",
              "success": True,
              "result": {"include_total": True, "limit": 32000, "records_format": "objects",
                         "resource_id": "00000000-0000-4000-8000-000000002024",
                         "records": records, "fields": fields,
                         "_links": {"start": "/api/3/action/datastore_search?resource_id=00000000-0000-4000-8000-000000002024&limit=32000",
                                    "next": "/api/3/action/datastore_search?resource_id=00000000-0000-4000-8000-000000002024&limit=32000&offset=32000"},
                         "total": len(records), "total_was_estimated": False}}
    with open(os.path.join(HERE, name), "w", encoding="utf-8") as f:
        json.dump(answer, f, ensure_ascii=False, indent=1)
        f.write("\n")


def main():
    readme = ["# DUO fixtures", "", LAYOUT_NOTES, "",
        "## VO pupils",
        "",
        "| file | layout | encoding | separator | notes |",
        "|---|---|---|---|---|",
        f"| `{vo_name(2022)}` | older | windows-1252 | `;` | 1–2 digit VESTIGINGSNUMMER, "
        "`<5` and `-1`, a padded place name, trailing all-empty line |",
        f"| `{vo_name(2023)}` | newer | ISO-8859-1 | `;` | LF line ends, `< 5` |",
        f"| `{vo_name(2024)}` | newer | UTF-8 with BOM | `,` | every cell quoted (as the "
        "portal's CSV), a BRIN in lower case, `<5` |",
        "",
        "`other-layout/` holds the same counts of each year in the other layout (2022 "
        "newer, 2023 and 2024 older); `ckan-datastore-search-vo-2024.json` the 2024 "
        "counts as a CKAN answer.",
        "",
        "Schools: 12AB01 Sint-Ludgercollège (Zutphen), 23CD00 Veluws Lyceum, locatie "
        "Zuid (Apeldoorn), 34EF02 Athénée De Worp (Deventer) in the region; 45GH00 "
        "(Utrecht) and 56JK01 (Groningen) outside it. The municipality comes from the "
        "address file.",
        "",
        "Technical profiles: BWI, PIE, MVI (vmbo) and N&T, N&G, N&T+N&G (havo/vwo).",
        "",
    ]
    os.makedirs(os.path.join(HERE, "other-layout"), exist_ok=True)
    shares = {}
    for year in YEARS:
        header, rows, cells = write_vo(HERE, year, newer=year != 2022)
        write_vo(os.path.join(HERE, "other-layout"), year, newer=year == 2022)
        if year == 2024:
            write_ckan("ckan-datastore-search-vo-2024.json", header, rows)
        facts = vo_facts(cells)
        readme += [f"### {year} (school year {year}/{(year + 1) % 100:02})", "",
                   "| pupils | scope | all profiles | technical profiles |",
                   "|---|---|---|---|"]
        for group in ("vmbo bb/kb/gl, leerjaar 3", "havo/vwo, leerjaar 4"):
            for scope in ("region", "national"):
                everything, technical = facts[(group, scope, False)], facts[(group, scope, True)]
                assert technical.suppressed > 0, (year, group, scope)
                readme.append(f"| {group} | {scope} | {everything} | {technical} |")
                low = technical.bounds()[0] / everything.bounds()[0]
                high = technical.bounds()[1] / everything.bounds()[1]
                shares[(year, group, scope)] = (low, high)
        readme.append("")
        counted = sum(1 for cell in cells if cell[4] in ("<5", "< 5", "-1"))
        readme += [f"Suppressed cells in the whole file: {counted}.", ""]
    readme += ["### Technical share", "",
               "Technical / all, with every suppressed cell counted as 1 / as 4:", "",
               "| pupils | scope | 2022 | 2023 | 2024 |", "|---|---|---|---|---|"]
    for group in ("vmbo bb/kb/gl, leerjaar 3", "havo/vwo, leerjaar 4"):
        for scope in ("region", "national"):
            cols = " | ".join(f"{100 * shares[(y, group, scope)][0]:.1f} % / "
                              f"{100 * shares[(y, group, scope)][1]:.1f} %" for y in YEARS)
            readme.append(f"| {group} | {scope} | {cols} |")
    readme += ["", "The region's technical share rises more from 2022 to 2024 than the "
               "national share (by construction: technical counts grow 15 % a year in the "
               "region and 2 % elsewhere).", ""]

    # PO: ages under 4 are LEEFTIJD_JONGER, over 24 LEEFTIJD_OUDER.
    ages = list(range(4, 25))
    po_header = (["PEILDATUM", "INSTELLINGSCODE", "VESTIGINGSCODE", "INSTELLINGSNAAM_VESTIGING",
                  "POSTCODE_VESTIGING", "PLAATSNAAM", "GEMEENTENUMMER", "GEMEENTENAAM",
                  "PROVINCIE", "SOORT_PO", "CLUSTER", "DENOMINATIE_VESTIGING",
                  "BEVOEGD_GEZAG_NUMMER", "LEEFTIJD_JONGER"]
                 + [f"LEEFTIJD_{a}" for a in ages] + ["LEEFTIJD_OUDER"])
    po_rows = []
    for brin, vest, name, place, municipality, counts in PO_SCHOOLS:
        by_age = dict(zip(PO_AGES, counts))
        po_rows.append(["20241001", brin, vest.zfill(2), name, "", place.upper(), "0000",
                        municipality.upper(), "Gelderland", "Bo", "", "Openbaar", "00000",
                        by_age[3]] + [by_age.get(a, "0") for a in ages] + ["0"])
    write_csv("01.-leerlingen-po-soort-po-cluster-leeftijd-2024-2025.csv", po_header,
              po_rows, ";", "utf-8")
    bands = {}
    for *_, counts in PO_SCHOOLS:
        for age, text in zip(PO_AGES, counts):
            if age >= 4:
                bands.setdefault(groep_band(age), Total()).add(text)
    readme += ["## PO pupils", "",
               "`01.-leerlingen-po-soort-po-cluster-leeftijd-2024-2025.csv`: UTF-8 without "
               "BOM, `;`, PEILDATUM 20241001, LEEFTIJD_JONGER, LEEFTIJD_4 … LEEFTIJD_24, "
               "LEEFTIJD_OUDER; four schools, all in the region (07XY00 Apeldoorn, 08XZ01 "
               "Deventer, 09YA00 Zutphen, 10YB02 Vaassen in Epe).",
               "Groep bands (age on 1 October: 4–5 → groep_1_2, 6–9 → groep_3_6, 10+ → "
               "groep_7_8):", "",
               "| band | pupils |", "|---|---|"]
    for band in ("groep_1_2", "groep_3_6", "groep_7_8"):
        readme.append(f"| {band} | {bands[band]} |")
    readme.append("")

    # Addresses
    province = {"Deventer": "Overijssel", "Utrecht": "Utrecht", "Groningen": "Groningen"}
    vo_addresses = [[province.get(m, "Gelderland"), "40000",
                     b, b + v, n, street, number, postcode, p.upper(), "0000", m.upper(),
                     "Openbaar", "", "", structure]
                    for b, v, n, street, number, postcode, p, m, structure in VO_ADDRESSES]
    write_csv("02.-alle-vestigingen-vo.csv",
              ["PROVINCIE", "BEVOEGD GEZAG NUMMER", "INSTELLINGSCODE", "VESTIGINGSCODE",
               "VESTIGINGSNAAM", "STRAATNAAM", "HUISNUMMER-TOEVOEGING", "POSTCODE",
               "PLAATSNAAM", "GEMEENTENUMMER", "GEMEENTENAAM", "DENOMINATIE",
               "TELEFOONNUMMER", "INTERNETADRES", "ONDERWIJSSTRUCTUUR"],
              vo_addresses, ";", "utf-8")
    po_addresses = [[b, v, n, street, number, postcode, p.upper(), "0000", m.upper(),
                     "Gelderland", "Openbaar"]
                    for b, v, n, street, number, postcode, p, m, _ in PO_ADDRESSES]
    write_csv("02.-alle-schoolvestigingen-basisonderwijs.csv",
              ["BRIN NUMMER", "VESTIGINGSNUMMER", "VESTIGINGSNAAM", "STRAATNAAM",
               "HUISNUMMER-TOEVOEGING", "POSTCODE", "PLAATSNAAM", "GEMEENTENUMMER",
               "GEMEENTENAAM", "PROVINCIE", "DENOMINATIE"], po_addresses, ";", "cp1252")
    readme += ["## School addresses", "",
               "`02.-alle-vestigingen-vo.csv` (the five VO schools; 45GH00 has no "
               "ONDERWIJSSTRUCTUUR; UTF-8, `;`) and "
               "`02.-alle-schoolvestigingen-basisonderwijs.csv` (the four PO schools; "
               "postcode 7321AB without a space; Windows-1252, `;`). Place and "
               "municipality in upper case, as DUO writes them.",
               ""]
    with open(os.path.join(HERE, "README.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(readme))


if __name__ == "__main__":
    main()
