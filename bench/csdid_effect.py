"""The reference of the effect estimator's benchmark: Python's csdid (the port of R's
did) on the same panel, with what techmon computes for one scope and track: ATT(g, t)
with the not-yet-treated as controls, weighted by pupils, the overall ("group") and
event-study aggregations, each with a multiplier bootstrap of 999 draws.

    python3 bench/csdid_effect.py panel.csv
"""

import contextlib
import io
import sys
import warnings

import numpy as np
import pandas as pd
from csdid.att_gt import ATTgt

warnings.simplefilter("ignore")
rows = pd.read_csv(sys.argv[1], dtype={"brin6": str, "reached_by": str})
rows["t"] = rows.school_year.str[:4].astype(int)
rows["g"] = rows.treated_from.str[:4].fillna("0").astype(int)
rows.loc[rows.g > rows.t.max(), "g"] = 0
rows["w"] = rows.groupby("brin6").pupils.transform("mean")
rows["id"] = rows.brin6.astype("category").cat.codes
with contextlib.redirect_stdout(io.StringIO()):
    out = ATTgt(yname="share_pct", tname="t", idname="id", gname="g", data=rows,
                control_group="notyettreated", weights_name="w",
                biters=999).fit(est_method="dr", bstrap=True)
    out.aggte(typec="group", bstrap=True, biters=999)
    overall = (out.atte["overall_att"], out.atte["overall_se"])
    out.aggte(typec="dynamic", bstrap=True, biters=999, cband=False)
att, se = (float(np.asarray(v).ravel()[0]) for v in overall)
print(f"overall {att:.4f} (se {se:.4f})")
