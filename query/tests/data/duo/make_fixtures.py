#!/usr/bin/env python3
"""Writes the made-up DUO fixture files in this folder, and README.md with the
totals the tests in query/src/duo.rs rely on.

Deterministic: counts come from a fixed linear congruential generator, not from
`random`, so every Python 3 writes the same bytes. Run from anywhere:

    python3 query/tests/data/duo/make_fixtures.py
"""

import csv
import io
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

# (school type, onderwijstype, opleidingsnaam, technical profile?, leerjaren,
#  base count per gender as (offset, spread) for man and vrouw)
VO_OPLEIDINGEN = [
    (VMBO, "VMBO BB", "VMBO BB BOUWEN, WONEN EN INTERIEUR", True, (3, 4), ((8, 20), (0, 7))),
    (VMBO, "VMBO KB", "VMBO KB BOUWEN, WONEN EN INTERIEUR", True, (3, 4), ((6, 15), (0, 6))),
    (VMBO, "VMBO KB", "VMBO KB PRODUCEREN, INSTALLEREN EN ENERGIE", True, (3, 4), ((8, 20), (0, 6))),
    (VMBO, "VMBO GL", "VMBO GL MEDIA, VORMGEVING EN ICT", True, (3, 4), ((5, 15), (0, 9))),
    (VMBO, "VMBO BB", "VMBO BB ZORG EN WELZIJN", False, (3, 4), ((0, 8), (8, 20))),
    (VMBO, "VMBO KB", "VMBO KB ZORG EN WELZIJN", False, (3, 4), ((0, 8), (10, 20))),
    (VMBO, "VMBO KB", "VMBO KB ECONOMIE EN ONDERNEMEN", False, (3, 4), ((5, 15), (5, 15))),
    (VMBO, "VMBO GL", "VMBO GL ECONOMIE EN ONDERNEMEN", False, (3, 4), ((4, 12), (4, 12))),
    (VMBO, "VMBO TL", "VMBO TL ALGEMEEN", False, (3, 4), ((20, 30), (20, 30))),
    (VMBO, "VMBO KB", "VMBO KB LEERJAAR 1 EN 2", False, (1, 2), ((25, 30), (25, 30))),
    (HAVO, "HAVO", "HAVO ONDERBOUW", False, (1, 2, 3), ((30, 40), (30, 40))),
    (HAVO, "HAVO", "HAVO NATUUR EN TECHNIEK", True, (4, 5), ((6, 15), (0, 8))),
    (HAVO, "HAVO", "HAVO NATUUR EN GEZONDHEID", True, (4, 5), ((4, 10), (8, 15))),
    (HAVO, "HAVO", "HAVO NATUUR EN TECHNIEK/NATUUR EN GEZONDHEID", True, (4, 5), ((0, 8), (0, 8))),
    (HAVO, "HAVO", "HAVO ECONOMIE EN MAATSCHAPPIJ", False, (4, 5), ((10, 20), (10, 20))),
    (HAVO, "HAVO", "HAVO CULTUUR EN MAATSCHAPPIJ", False, (4, 5), ((0, 8), (6, 15))),
    (VWO, "VWO", "VWO ONDERBOUW", False, (1, 2, 3), ((25, 30), (25, 30))),
    (VWO, "VWO", "VWO NATUUR EN TECHNIEK", True, (4, 5, 6), ((5, 12), (0, 8))),
    (VWO, "VWO", "VWO NATUUR EN GEZONDHEID", True, (4, 5, 6), ((4, 10), (6, 12))),
    (VWO, "VWO", "VWO NATUUR EN TECHNIEK/NATUUR EN GEZONDHEID", True, (4, 5, 6), ((0, 8), (0, 8))),
    (VWO, "VWO", "VWO ECONOMIE EN MAATSCHAPPIJ", False, (4, 5, 6), ((8, 15), (8, 15))),
    (VWO, "VWO", "VWO CULTUUR EN MAATSCHAPPIJ", False, (4, 5, 6), ((0, 6), (4, 10))),
    (PRO, "PRO", "PRAKTIJKONDERWIJS", False, (1, 2, 3, 4), ((5, 10), (3, 8))),
]

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


COUNT_COLUMNS = [f"LEERJAAR {j} {g}" for j in range(1, 7) for g in ("MAN", "VROUW")]


def vo_table(year):
    """(header, rows, cells): cells are (school, opleiding, leerjaar, gender, text)."""
    counts = base_counts()
    marker = suppressed_marker(year)
    y = YEARS.index(year)
    if year == 2024:
        ids = ["INSTELLINGSCODE", "Vestigingscode"]
        names = ["Instellingsnaam vestiging", "Plaatsnaam vestiging", "Gemeentenaam",
                 "Provincie", "Onderwijstype VO", "Opleidingsnaam"]
    else:
        ids = ["BRIN NUMMER", "VESTIGINGSNUMMER"]
        names = ["INSTELLINGSNAAM VESTIGING", "PLAATSNAAM VESTIGING", "GEMEENTENAAM",
                 "PROVINCIE", "ONDERWIJSTYPE VO", "OPLEIDINGSNAAM"]
    header = ids + names + COUNT_COLUMNS
    rows, cells = [], []
    for s, (brin, vest, name, place, municipality, province, kinds) in enumerate(VO_SCHOOLS):
        region = municipality in REGION
        brin_cell = brin.lower() if vest[y] == "23cd00" else brin
        # Older DUO files pad some names; the parser trims.
        municipality_cell = municipality + "   " if year == 2022 and s == 2 else municipality
        for o, (kind, onderwijstype, opleiding, technical, _, _) in enumerate(VO_OPLEIDINGEN):
            if kind not in kinds:
                continue
            row = [brin_cell, vest[y], name, place, municipality_cell, province,
                   onderwijstype, opleiding]
            for column in COUNT_COLUMNS:
                _, leerjaar, gender = column.split()
                base = counts.get((s, o, int(leerjaar), gender))
                if base is None:
                    text = ""
                else:
                    n = int(base * year_factor(year, region, technical) + 0.5)
                    text = marker() if 1 <= n <= 4 else str(n)
                    cells.append((s, o, int(leerjaar), gender, text))
                row.append(text)
            rows.append(row)
    return header, rows, cells


def write_csv(name, header, rows, delimiter, encoding, lineterminator="\r\n",
              trailing=()):
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=lineterminator)
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
    ["08XZ", "08XZ01", "CBS Het Kompas, locatie Noord", "Kompasweg", "8", "7421 CD",
     "Deventer", "Deventer", "Bo"],
    ["09YA", "09YA00", "IKC Brinkhorst", "Brinkhorstlaan", "2", "7207 BA", "Zutphen",
     "Zutphen", "Bo"],
    ["10YB", "10YB02", "Basisschool De Vlinderboom", "Vlinderweg", "14", "8171 AZ",
     "Vaassen", "Epe", "Sbo"],
]


def main():
    readme = [
        "# DUO fixtures",
        "",
        "Made-up files in the layouts of DUO open onderwijsdata, for the unit tests in",
        "`query/src/duo.rs`. Written by `make_fixtures.py` (deterministic; do not edit",
        "the CSV files by hand — change the script and rerun it, then update the",
        "figures in the tests). All school names, BRIN numbers and counts are invented.",
        "",
        "\"Region\" = the hub municipalities (Apeldoorn, Deventer, Zutphen, Epe);",
        "\"national\" = every school in the file. A suppressed cell (`<5`, `< 5`, `-1`)",
        "is 1 to 4 pupils, so a total is given as its exact part, the number of",
        "suppressed cells *k*, and the bounds exact + k … exact + 4k.",
        "",
        "## VO pupils",
        "",
        "| file | encoding | separator | notes |",
        "|---|---|---|---|",
        "| `01.-leerlingen-vo-per-vestiging-naar-onderwijstype-2022.csv` | windows-1252 "
        "| `;` | legacy: BRIN NUMMER + 1–2 digit VESTIGINGSNUMMER, `<5` and `-1`, padded "
        "GEMEENTENAAM, trailing all-empty line |",
        "| `01.-leerlingen-vo-per-vestiging-naar-onderwijstype-2023.csv` | ISO-8859-1 "
        "| `;` | LF line ends, `< 5` |",
        "| `01.-leerlingen-vo-per-vestiging-naar-onderwijstype-2024.csv` | UTF-8 with "
        "BOM | `,` | INSTELLINGSCODE/VESTIGINGSCODE (6 characters, one in lower case), "
        "mixed-case header, quoted names with commas, `<5` |",
        "",
        "Schools: 12AB01 Sint-Ludgercollège (Zutphen), 23CD00 Veluws Lyceum, locatie "
        "Zuid (Apeldoorn), 34EF02 Athénée De Worp (Deventer) in the region; 45GH00 "
        "(Utrecht) and 56JK01 (Groningen) outside it.",
        "",
        "Technical profiles: BWI, PIE, MVI (vmbo) and N&T, N&G, N&T+N&G (havo/vwo).",
        "",
    ]
    shares = {}
    for year in YEARS:
        header, rows, cells = vo_table(year)
        name = f"01.-leerlingen-vo-per-vestiging-naar-onderwijstype-{year}.csv"
        if year == 2022:
            write_csv(name, header, rows, ";", "cp1252",
                      trailing=[";" * (len(header) - 1)])
        elif year == 2023:
            write_csv(name, header, rows, ";", "latin-1", lineterminator="\n")
        else:
            write_csv(name, header, rows, ",", "utf-8-sig")
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

    # PO
    po_header = (["BRIN NUMMER", "VESTIGINGSNUMMER", "INSTELLINGSNAAM VESTIGING",
                  "PLAATSNAAM VESTIGING", "GEMEENTENAAM", "SOORT PO"]
                 + [f"LEEFTIJD {a}" for a in PO_AGES])
    po_rows = [[b, v, n, p, m, "Bo"] + counts for b, v, n, p, m, counts in PO_SCHOOLS]
    write_csv("01.-leerlingen-po-per-onderwijssoort-en-leeftijd-2024.csv", po_header,
              po_rows, ",", "utf-8")
    bands = {}
    for *_, counts in PO_SCHOOLS:
        for age, text in zip(PO_AGES, counts):
            bands.setdefault(groep_band(age), Total()).add(text)
    readme += ["## PO pupils", "",
               "`01.-leerlingen-po-per-onderwijssoort-en-leeftijd-2024.csv`: UTF-8 without "
               "BOM, `,`, LEEFTIJD 3 … LEEFTIJD 12; four schools, all in the region "
               "(07XY00 Apeldoorn, 08XZ01 Deventer, 09YA00 Zutphen, 10YB02 Vaassen in Epe).",
               "Groep bands (age on 1 October: 4–5 → groep_1_2, 6–9 → groep_3_6, 10+ → "
               "groep_7_8, 3 → none):", "",
               "| band | pupils |", "|---|---|"]
    for band in ("none (age 3)", "groep_1_2", "groep_3_6", "groep_7_8"):
        readme.append(f"| {band} | {bands[band]} |")
    readme.append("")

    # Addresses
    write_csv("adressen-alle-vestigingen-vo-2024.csv",
              ["BRIN NUMMER", "VESTIGINGSNUMMER", "VESTIGINGSNAAM", "STRAATNAAM",
               "HUISNUMMER-TOEVOEGING", "POSTCODE", "PLAATSNAAM", "GEMEENTENAAM",
               "ONDERWIJSSTRUCTUUR"], VO_ADDRESSES, ";", "utf-8")
    write_csv("adressen-alle-vestigingen-po-2024.csv",
              ["INSTELLINGSCODE", "VESTIGINGSCODE", "INSTELLINGSNAAM VESTIGING",
               "STRAATNAAM", "HUISNUMMER-TOEVOEGING", "POSTCODE", "PLAATSNAAM",
               "GEMEENTENAAM", "SOORT PO"], PO_ADDRESSES, ";", "utf-8")
    readme += ["## School addresses", "",
               "`adressen-alle-vestigingen-vo-2024.csv` (the five VO schools; 45GH00 has "
               "no ONDERWIJSSTRUCTUUR) and `adressen-alle-vestigingen-po-2024.csv` (the "
               "four PO schools, with the INSTELLINGSCODE/VESTIGINGSCODE and INSTELLINGSNAAM "
               "VESTIGING aliases, postcode 7321AB without a space): UTF-8 without BOM, `;`.",
               ""]
    with open(os.path.join(HERE, "README.md"), "w", encoding="utf-8") as f:
        f.write("\n".join(readme))


if __name__ == "__main__":
    main()
