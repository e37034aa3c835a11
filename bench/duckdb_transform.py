"""The DuckDB reference for `techmon bench transform`: the equivalent JSON →
pseudonymised Parquet on the same input (the NDJSON that `techmon bench transform
--ndjson FILE` writes): one Parquet dataset per event kind, partitioned by school
year, personal fields dropped or generalised, participants as a keyed hash.

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
    pseudonym = f"sha256('{KEY}' || hub_id || ':' || (payload->>'participant_ref'))"
    queries = {
        "group_participations": f"""SELECT event_id, hub_id, occurred_at, payload->>'school_year' AS school_year,
            payload->>'activity_id' AS activity_id, payload->>'school_brin6' AS school_brin6, payload->>'sector' AS sector,
            (payload->>'groep')::INT AS groep, (payload->'participants'->>'girls')::INT AS participants_girls,
            (payload->'participants'->>'boys')::INT AS participants_boys FROM events WHERE event_type = 'group_participated'""",
        "participants": f"""SELECT event_id, hub_id, occurred_at, {school_year} AS school_year,
            sha256('{KEY}' || lower(payload->>'email')) AS participant_pseudonym,
            year((payload->>'birth_date')::DATE) AS birth_year, left(payload->>'postcode', 4) AS pc4,
            payload->>'school_brin6' AS school_brin6, payload->>'gender' AS gender, payload->>'role' AS role
            FROM events WHERE event_type = 'participant_registered'""",
        "attendances": f"""SELECT event_id, hub_id, occurred_at, {school_year} AS school_year,
            payload->>'activity_id' AS activity_id, {pseudonym} AS participant_pseudonym
            FROM events WHERE event_type = 'participant_attended'""",
        "activities": f"""SELECT event_id, hub_id, occurred_at, {school_year} AS school_year,
            payload->>'activity_id' AS activity_id, payload->>'activity_type' AS activity_type, payload->>'title' AS title
            FROM events WHERE event_type = 'activity_held'""",
        "survey_answers": f"""SELECT event_id, hub_id, occurred_at, {school_year} AS school_year,
            payload->>'activity_id' AS activity_id, (payload->>'score')::DOUBLE AS score,
            (payload->>'score')::DOUBLE * 10 / (payload->>'scale_max')::DOUBLE AS score_of_10
            FROM events WHERE event_type = 'survey_answered'""",
        "profile_choices": f"""SELECT event_id, hub_id, occurred_at, payload->>'school_year' AS school_year,
            payload->>'school_brin6' AS school_brin6, payload->>'profile_code' AS profile_code,
            (payload->>'count')::INT AS pupils FROM events WHERE event_type = 'profile_chosen'""",
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
