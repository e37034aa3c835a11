"""The DuckDB reference for `techmon bench transform`: the equivalent JSON →
pseudonymised Parquet on the same input (the NDJSON that `techmon bench transform
--ndjson FILE` writes): one Parquet dataset per event kind with the columns of
techmon's lake table, partitioned by school year, personal fields dropped or
generalised, participants as a keyed hash, attendances linked to registrations.

DuckDB has no HMAC; sha256(key || identity) stands in (weaker, but the same work).

    pip install duckdb
    python3 bench/duckdb_transform.py --ndjson events.ndjson --out /tmp/duck-lake
"""

import argparse
import os
import shutil
import time

import duckdb

KEY = "bench-key-0123456789abcdef0123456789abcdef"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ndjson", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)

    con = duckdb.connect()
    started = time.perf_counter()
    con.execute(
        f"""
        CREATE TEMP TABLE events AS
        SELECT * FROM read_json('{args.ndjson}', format = 'newline_delimited',
            columns = {{event_id: 'VARCHAR', event_type: 'VARCHAR', schema_version: 'INTEGER', hub_id: 'VARCHAR',
                       occurred_at: 'TIMESTAMPTZ', sent_at: 'TIMESTAMPTZ', payload: 'JSON'}})
        """
    )
    school_year = """CASE WHEN month(occurred_at) >= 8
        THEN year(occurred_at)::VARCHAR || '/' || lpad(((year(occurred_at) + 1) % 100)::VARCHAR, 2, '0')
        ELSE (year(occurred_at) - 1)::VARCHAR || '/' || lpad((year(occurred_at) % 100)::VARCHAR, 2, '0') END"""
    # The columns every techmon table starts with; the NDJSON has no log positions, so
    # a hash of the event id and the row number stand in for them.
    common = "event_id, hub_id, occurred_at, (hash(event_id) % 4)::INTEGER AS log_partition, rowid AS log_offset"
    key_id = "'k1' AS pseudonym_key_id"
    registered = f"sha256('{KEY}' || 'participant' || lower(trim(payload->>'email')))"
    referenced = f"sha256('{KEY}' || 'participant' || hub_id || ':' || (payload->>'participant_ref'))"
    # An attendance's participant is the one the hub registered under that reference.
    links = f"""(SELECT hub_id AS link_hub, payload->>'participant_ref' AS link_ref, any_value({registered}) AS linked
        FROM events WHERE event_type = 'participant_registered' GROUP BY ALL)"""
    text_list = "(payload->'{0}')::VARCHAR[] AS {0}"
    queries = {
        "group_participations": f"""SELECT {common}, payload->>'school_year' AS school_year,
            payload->>'activity_id' AS activity_id, payload->>'school_brin6' AS school_brin6, payload->>'sector' AS sector,
            (payload->>'groep')::INTEGER AS groep, (payload->>'leerjaar')::INTEGER AS leerjaar,
            payload->>'onderwijstype' AS onderwijstype,
            (payload->'participants'->>'girls')::INTEGER AS participants_girls,
            (payload->'participants'->>'boys')::INTEGER AS participants_boys,
            (payload->'participants'->>'other')::INTEGER AS participants_other,
            participants_girls + participants_boys + coalesce(participants_other, 0) AS participants_total,
            (payload->>'accompanying_teachers')::INTEGER AS accompanying_teachers
            FROM events WHERE event_type = 'group_participated'""",
        "participants": f"""SELECT {common}, {school_year} AS school_year,
            {registered} AS participant_pseudonym, {key_id},
            year((payload->>'birth_date')::DATE)::INTEGER AS birth_year, left(payload->>'postcode', 4) AS pc4,
            payload->>'school_brin6' AS school_brin6, payload->>'sector' AS sector,
            (payload->>'groep')::INTEGER AS groep, (payload->>'leerjaar')::INTEGER AS leerjaar,
            payload->>'onderwijstype' AS onderwijstype, payload->>'gender' AS gender, payload->>'role' AS role,
            (payload->>'consent_research')::BOOLEAN AS consent_research
            FROM events WHERE event_type = 'participant_registered'""",
        "attendances": f"""SELECT {common}, {school_year} AS school_year,
            payload->>'activity_id' AS activity_id, coalesce(linked, {referenced}) AS participant_pseudonym, {key_id},
            payload->>'role' AS role
            FROM events LEFT JOIN {links} ON link_hub = hub_id AND link_ref = payload->>'participant_ref'
            WHERE event_type = 'participant_attended'""",
        "activities": f"""SELECT {common}, {school_year} AS school_year,
            payload->>'activity_id' AS activity_id, payload->>'activity_type' AS activity_type, payload->>'title' AS title,
            (payload->>'starts_at')::TIMESTAMPTZ AS starts_at, (payload->>'ends_at')::TIMESTAMPTZ AS ends_at,
            (payload->>'duration_minutes')::INTEGER AS duration_minutes, (payload->'worlds')::INTEGER[] AS worlds,
            {text_list.format('target_groups')}, payload->>'location' AS location, {text_list.format('partner_organisations')}
            FROM events WHERE event_type = 'activity_held'""",
        "survey_answers": f"""SELECT {common}, {school_year} AS school_year,
            payload->>'activity_id' AS activity_id,
            CASE WHEN payload->>'participant_ref' IS NOT NULL THEN {referenced} END AS participant_pseudonym, {key_id},
            payload->>'respondent_role' AS respondent_role, (payload->>'score')::DOUBLE AS score,
            (payload->>'scale_max')::INTEGER AS scale_max, score * 10 / scale_max AS score_of_10
            FROM events WHERE event_type = 'survey_answered'""",
        "profile_choices": f"""SELECT {common}, payload->>'school_year' AS school_year,
            payload->>'school_brin6' AS school_brin6, (payload->>'leerjaar')::INTEGER AS leerjaar,
            payload->>'onderwijstype' AS onderwijstype, payload->>'profile_code' AS profile_code,
            payload->>'profile_code' IN ('BWI', 'PIE', 'MVI', 'M&T', 'MaT', 'N&T', 'N&G', 'N&T+N&G') AS technical,
            CASE WHEN payload->>'participant_ref' IS NOT NULL THEN {referenced} END AS participant_pseudonym, {key_id},
            (payload->>'count')::INTEGER AS pupils FROM events WHERE event_type = 'profile_chosen'""",
    }
    for table, query in queries.items():
        con.execute(
            f"COPY ({query}) TO '{args.out}/{table}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (school_year))"
        )
    seconds = time.perf_counter() - started
    rows = sum(con.execute(f"SELECT count(*) FROM ({q})").fetchone()[0] for q in queries.values())
    events = con.execute("SELECT count(*) FROM events").fetchone()[0]
    print(f"duckdb reference: {events} events ({rows} rows) in {seconds:.2f}s = {events / seconds:.0f} events/s")


if __name__ == "__main__":
    main()
