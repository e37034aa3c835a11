//! `techmon effect`: asks the query API for the effect estimates (`GET /v1/effects`)
//! and prints them with the method and its assumptions in plain words.

use anyhow::bail;
use serde_json::Value;

#[derive(Debug, clap::Args)]
pub struct EffectOptions {
    /// A hub id, `region` (a region's reached schools) or `regions` (every reached
    /// school); all when left out.
    #[arg(long)]
    pub hub: Option<String>,
    /// A region id: its hubs' estimates and its own; all regions when left out.
    #[arg(long)]
    pub region: Option<String>,
    /// The population: vmbo (leerjaar 3), havo_vwo (leerjaar 4) or all.
    #[arg(long, default_value = "all", value_parser = ["vmbo", "havo_vwo", "all"])]
    pub track: String,
    #[command(flatten)]
    pub api: crate::sql::QueryApi,
}

pub async fn run(options: &EffectOptions) -> anyhow::Result<()> {
    let mut query = vec![("track", options.track.as_str())];
    if let Some(hub) = &options.hub {
        query.push(("hub", hub));
    }
    if let Some(region) = &options.region {
        query.push(("region", region));
    }
    let api = &options.api;
    let response = api
        .send(
            reqwest::Client::new()
                .get(api.at("/v1/effects"))
                .query(&query),
        )
        .await?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{}", crate::sql::refusal(status, &answer));
    }
    print!("{}", report(&answer));
    let versions = answer["table_versions"]
        .as_object()
        .map(|v| {
            v.iter()
                .map(|(table, version)| format!("{table}={version}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default();
    eprintln!("answered from table versions: {versions}");
    Ok(())
}

/// A number with two decimals, or a dash.
fn number(value: &Value) -> String {
    value.as_f64().map_or("-".into(), |v| format!("{v:.2}"))
}

/// The 95% interval of a row.
fn interval(row: &Value) -> String {
    match (row["ci_low_pp"].as_f64(), row["ci_high_pp"].as_f64()) {
        (Some(low), Some(high)) => format!("{low:.2} to {high:.2}"),
        _ => "-".into(),
    }
}

/// Whose estimate a row is: a hub, `region <id>`, or `regions`.
fn scope(row: &Value) -> String {
    match (row["scope"].as_str(), row["region_id"].as_str()) {
        (Some("region"), Some(region)) => format!("region {region}"),
        _ => text(&row["scope"]),
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The answer for people: method, assumptions, the overall effects and the event
/// studies.
fn report(answer: &Value) -> String {
    let rows = |key: &str| answer[key].as_array().cloned().unwrap_or_default();
    let mut out = String::new();
    out.push_str("Method\n");
    out.push_str(&format!("  {}\n\n", text(&answer["method"])));
    out.push_str("It rests on\n");
    for assumption in rows("assumptions") {
        out.push_str(&format!("  - {}\n", text(&assumption)));
    }
    out.push_str("\nOverall effect, in percentage points of the technical-profile share\n");
    let mut table = vec![
        [
            "scope",
            "track",
            "effect",
            "95% interval",
            "p",
            "treated schools",
            "comparison schools",
            "pre-trend p",
            "detectable from",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let estimates = rows("estimates");
    for row in &estimates {
        table.push(vec![
            scope(row),
            text(&row["track"]),
            number(&row["att_pp"]),
            interval(row),
            number(&row["p_value"]),
            text(&row["treated_schools"]),
            text(&row["comparison_schools"]),
            number(&row["pre_trend_p_value"]),
            number(&row["mde_pp"]),
        ]);
    }
    out.push_str(&crate::sql::aligned(&table));
    for row in estimates.iter().filter(|r| !r["note"].is_null()) {
        out.push_str(&format!("  {}: {}\n", scope(row), text(&row["note"])));
    }
    out.push_str("\nBy school years since treated (negative: before, placebo)\n");
    let mut table = vec![
        [
            "scope",
            "track",
            "years since",
            "effect",
            "95% interval",
            "treated schools",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for row in rows("event_study") {
        table.push(vec![
            scope(&row),
            text(&row["track"]),
            text(&row["years_since"]),
            number(&row["att_pp"]),
            interval(&row),
            text(&row["treated_schools"]),
        ]);
    }
    out.push_str(&crate::sql::aligned(&table));
    out
}
