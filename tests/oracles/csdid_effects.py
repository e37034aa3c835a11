"""The effect estimates of techmon's effect_panel as Python's csdid (the port of R's
`did`, Callaway and Sant'Anna 2021) computes them: the oracle of tests/demo.rs.

Reads the panel as CSV (brin6, school_year, track, reached_by, treated_from, pupils,
share_pct) and the hubs as CSV (hub_id, region_id), and writes, per scope and track,
csdid's group-time effects, its "group" aggregation (the overall effect), its event
study and its pre-trend Wald test, all with analytic (influence-function) standard
errors, as JSON on stdout.

The scopes are built here from the panel as docs/researchers.md describes them:
'regions' (where there are several) takes every school; 'region' the schools its
hubs reached and those no hub reached; a hub its own reached schools and those no hub
reached. A school's weight is its mean pupils over the school years.
"""

import contextlib
import io
import json
import sys
import warnings

import numpy as np
import pandas as pd
from csdid.att_gt import ATTgt

warnings.simplefilter("ignore")


def start(school_year):
    return int(school_year[:4]) if isinstance(school_year, str) else 0


def estimate(rows):
    years = sorted(rows["t"].unique())
    # A balanced panel: schools counted in every school year, with a share each year.
    counted = rows.dropna(subset=["share_pct", "pupils"]).groupby("brin6")["t"].nunique()
    rows = rows[rows["brin6"].isin(counted[counted == len(years)].index)].copy()
    # Treated after the last school year: never treated within the panel.
    rows.loc[rows["g"] > max(years), "g"] = 0
    rows["w"] = rows.groupby("brin6")["pupils"].transform("mean")
    rows["id"] = rows["brin6"].astype("category").cat.codes
    if not (rows["g"] > min(years)).any() or not (rows["g"] == 0).any():
        return None
    model = ATTgt(yname="share_pct", tname="t", idname="id", gname="g", data=rows,
                  control_group="notyettreated", weights_name="w")
    with contextlib.redirect_stdout(io.StringIO()):
        fitted = model.fit(est_method="dr", base_period="varying", bstrap=False)
    r = fitted.results
    group_time = [
        {"g": int(g), "t": int(t), "att": float(a), "se": float(s)}
        for g, t, a, s in zip(r["group"], r["year"], r["att"], r["se"])
    ]
    with contextlib.redirect_stdout(io.StringIO()):
        fitted.aggte(typec="group", bstrap=False, cband=False)
    overall = {"att": float(fitted.atte["overall_att"]), "se": float(fitted.atte["overall_se"])}
    with contextlib.redirect_stdout(io.StringIO()):
        fitted.aggte(typec="dynamic", bstrap=False, cband=False)
    event_study = [
        {"e": int(e), "att": float(a), "se": float(s)}
        for e, a, s in zip(fitted.atte["egt"], fitted.atte["att_egt"], fitted.atte["se_egt"])
    ]
    w, p = fitted.MP["W"], fitted.MP["Wpval"]
    return {
        "group_time": group_time,
        "overall": overall,
        "event_study": event_study,
        "pre_trend": None if w is None else {"chi2": float(w), "p_value": float(p)},
        "schools": int(rows["brin6"].nunique()),
    }


def main(panel_path, hubs_path):
    panel = pd.read_csv(panel_path, dtype={"brin6": str, "reached_by": str})
    panel["t"] = panel["school_year"].map(start)
    panel["g"] = panel["treated_from"].map(start)
    region_of = dict(pd.read_csv(hubs_path, dtype=str).itertuples(index=False, name=None))
    panel["reached_in"] = panel["reached_by"].map(region_of)
    regions = sorted(set(region_of.values()))
    scopes = [("regions", None, None)] if len(regions) > 1 else []
    scopes += [("region", region, "reached_in") for region in regions]
    scopes += [(hub, region_of[hub], "reached_by") for hub in sorted(panel["reached_by"].dropna().unique())]
    answers = []
    for scope, region, column in scopes:
        for track in ["vmbo", "havo_vwo", "all"]:
            rows = panel[panel["track"] == track]
            if column is not None:
                rows = rows[rows["reached_by"].isna() | (rows[column] == (region if scope == "region" else scope))]
            answers.append({"scope": scope, "region_id": region, "track": track,
                            "estimates": estimate(rows.copy())})
    json.dump(answers, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
