"""DuckDB reference for `techmon bench query`: the same views over the same Parquet
files of the lake, set up by the SQL that `techmon bench query --duckdb-sql FILE`
writes. Prints the fastest time per view (all rows fetched as Arrow, as techmon collects them), rows and peak RSS.

    python3 bench/duckdb_query.py setup.sql [runs]
"""

import resource
import sys
import time

import duckdb

setup_path = sys.argv[1]
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 3
setup = open(setup_path, encoding="utf-8").read()
con = duckdb.connect()
con.execute(f"SET threads = {len(__import__('os').sched_getaffinity(0))}")
views = []
for statement in setup.split(";\n"):
    if statement.strip():
        con.execute(statement)
        if statement.startswith("CREATE VIEW") and "read_parquet" not in statement:
            views.append(statement.split()[2])
total = 0.0
for view in views:
    fastest = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        rows = con.execute(f"SELECT * FROM {view}").to_arrow_table()
        fastest = min(fastest, time.perf_counter() - started)
    total += fastest
    print(f"{view:<28} {fastest:>8.3f}s {rows.num_rows:>8} rows")
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"duckdb {duckdb.__version__}: {len(views)} views in {total:.3f}s (fastest of {runs} runs each); peak RSS {peak:.0f} MiB")
