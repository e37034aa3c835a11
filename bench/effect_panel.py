"""A school panel of national size for the effect estimator's benchmark: every VO
school location of the country (1,500 by default) in six school years, a tenth of
them reached in 2022/23 to 2024/25 (treated from the year after), with a known effect
and DUO-like noise. Deterministic: the same arguments write the same file.

    python3 bench/effect_panel.py [SCHOOLS] > panel.csv
"""

import sys

import numpy as np

schools = int(sys.argv[1]) if len(sys.argv) > 1 else 1500
rng = np.random.default_rng(2022)
print("brin6,school_year,track,reached_by,treated_from,pupils,share_pct")
for i in range(schools):
    brin6 = f"{i:04d}AA"
    size = rng.uniform(40, 400)
    base = rng.uniform(20, 55)
    reached = rng.random() < 0.1
    first = int(rng.integers(2022, 2025)) if reached else None
    hub = f"hub-{i % 5}" if reached else ""
    treated_from = f"{first + 1}/{(first + 2) % 100:02d}" if reached else ""
    for year in range(2021, 2027):
        effect = 1.5 * max(0, year - first) if reached else 0.0
        share = base + 4.0 * reached + 0.3 * (year - 2021) + effect + rng.normal(0, 1.0)
        pupils = size * rng.uniform(0.9, 1.1)
        print(f"{brin6},{year}/{(year + 1) % 100:02d},all,{hub},{treated_from},{pupils:.1f},{share:.4f}")
