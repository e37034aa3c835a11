//! `techmon effect`: asks the query API for the effect estimates (`GET /v1/effects`)
//! and prints them with the method and its assumptions in plain words.

use anyhow::{Context, bail};
use serde_json::Value;
use techmon_query::http::VERSIONS_HEADER;

#[derive(Debug, clap::Args)]
pub struct EffectOptions {
    /// A hub id, or `region` (every reached school); all when left out.
    #[arg(long)]
    pub hub: Option<String>,
    /// The population: vmbo (leerjaar 3), havo_vwo (leerjaar 4) or all.
    #[arg(long, default_value = "all", value_parser = ["vmbo", "havo_vwo", "all"])]
    pub track: String,
    /// Base URL of the query API (`techmon serve` serves it on the ingest address).
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "TECHMON_URL")]
    pub url: String,
    /// Your researcher, analyst or admin token.
    #[arg(long, env = "TECHMON_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Pin table versions to reproduce an earlier answer (as printed under it).
    #[arg(long)]
    pub versions: Option<String>,
}

pub async fn run(options: &EffectOptions) -> anyhow::Result<()> {
    let mut query = vec![("track", options.track.as_str())];
    if let Some(hub) = &options.hub {
        query.push(("hub", hub));
    }
    let mut request = reqwest::Client::new()
        .get(format!("{}/v1/effects", options.url.trim_end_matches('/')))
        .query(&query)
        .bearer_auth(&options.token);
    if let Some(versions) = &options.versions {
        request = request.header(VERSIONS_HEADER, versions);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach the query API at {}", options.url))?;
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
            text(&row["scope"]),
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
        out.push_str(&format!(
            "  {}: {}\n",
            text(&row["scope"]),
            text(&row["note"])
        ));
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
            text(&row["scope"]),
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
