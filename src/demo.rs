//! `techmon demo`: the whole pipeline on a synthetic region, in one command. Starts
//! the services on the embedded defaults in a data folder, generates the region,
//! pushes every hub's files through the HTTP API as the hubs would, imports the
//! DUO files, waits until the transform has caught up, prints the headline answers
//! and keeps serving the dashboard until stopped.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use techmon_generate::{Generated, Spec};

use crate::config::TechmonConfig;
use crate::push::{PushOptions, PushSummary, push_files};

#[derive(Debug, Clone, clap::Args)]
pub struct DemoOptions {
    /// The data folder: event log, lake, raw zone, exports and the generated region.
    #[arg(long, default_value = "techmon-demo")]
    pub dir: PathBuf,
    /// About how many records the region has.
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// The region's seed: the same seed and size give the same region.
    #[arg(long, default_value_t = 2022)]
    pub seed: u64,
    /// Start over: delete the data folder first. Without it an existing folder is
    /// reused (pushing the same region again only reports duplicates).
    #[arg(long)]
    pub reset: bool,
    /// Where to serve the APIs and the dashboard.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Stop after printing the answers instead of serving on.
    #[arg(long)]
    pub exit: bool,
}

/// The development tokens of the committed configuration.
fn hub_token(hub: &str) -> String {
    format!("dev-token-{hub}")
}
const RESEARCHER_TOKEN: &str = "dev-token-researcher";
const ADMIN_TOKEN: &str = "dev-token-admin";

/// What the demo did, for the caller once the answers are printed.
#[derive(Debug)]
pub struct Demo {
    pub url: String,
    pub generated: Generated,
    pub pushed: PushSummary,
}

/// The configuration the demo serves with: the embedded log and everything else
/// inside `dir`.
fn demo_config(mut config: TechmonConfig, options: &DemoOptions) -> TechmonConfig {
    let dir = &options.dir;
    config.log.backend = techmon_eventlog::Backend::Embedded;
    config.log.embedded.path = dir.join("events.redb");
    config.lake.url = dir.join("lake").to_string_lossy().into_owned();
    config.transform.raw = dir.join("raw");
    config.transform.person_keys = dir.join("raw/person-keys");
    config.query.exports = dir.join("exports");
    config.query.audit = dir.join("audit");
    config.query.output_control = dir.join("output-control");
    config.ingest.listen = options.listen;
    // Hubs of the region that joins are taken within a second of their registration.
    config.lake.registry_refresh_seconds = 1;
    config
}

/// Runs the demo: `answered` gets the demo's facts once the answers are printed;
/// the services stop when `shutdown` completes (or right after, with `--exit`).
pub async fn run(
    config: TechmonConfig,
    options: &DemoOptions,
    answered: tokio::sync::oneshot::Sender<Demo>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let started = Instant::now();
    prepare_folder(options)?;
    let config = demo_config(config, options);
    config.check_development_tokens(crate::config::Served::HubsAndUsers, options.listen)?;
    let listener = techmon_service::bind(options.listen).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = {
        let config = config.clone();
        tokio::spawn(async move {
            crate::serve::run_on(&config, listener, async {
                let _ = stopped.await;
            })
            .await
        })
    };
    let result = demonstrate(options, &url, started).await;
    let outcome = match result {
        Ok(demo) => {
            println!(
                "\nThe dashboard: {url}/#token={RESEARCHER_TOKEN}\nSQL: TECHMON_URL={url} TECHMON_TOKEN={RESEARCHER_TOKEN} techmon sql \"SELECT * FROM kpi_report WHERE hub_id = 'region'\""
            );
            let _ = answered.send(demo);
            if !options.exit {
                println!("Serving until Ctrl-C.");
                shutdown.await;
            }
            Ok(())
        }
        Err(e) => Err(e),
    };
    let _ = stop.send(());
    server.await.context("the services stopped")??;
    outcome
}

fn prepare_folder(options: &DemoOptions) -> anyhow::Result<()> {
    let dir = &options.dir;
    if options.reset && dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
        println!("Removed {} (--reset).", dir.display());
    } else if dir.join("lake").exists() {
        println!(
            "Reusing {} (what is there stays; --reset starts over).",
            dir.display()
        );
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(())
}

async fn demonstrate(options: &DemoOptions, url: &str, started: Instant) -> anyhow::Result<Demo> {
    let client = reqwest::Client::new();
    wait_until_ready(&client, url).await?;
    println!("Services on {url} (data in {}).", options.dir.display());

    let spec = Spec {
        seed: options.seed,
        events: options.events,
        until: Spec::default_until(),
    };
    let region_dir = options.dir.join("region");
    let generated = {
        let region_dir = region_dir.clone();
        tokio::task::spawn_blocking(move || techmon_generate::generate(&spec, &region_dir))
            .await??
    };
    println!(
        "Generated two regions (seed {}): {} records for {} hubs, {} DUO files, in {}.",
        options.seed,
        generated.records(),
        generated.hubs.len(),
        generated.duo_files.len(),
        region_dir.display()
    );

    let tokens = register_joining_regions(&client, url).await?;
    let pushed = push_region(url, &generated, &region_dir, &tokens).await?;
    import_duo(&client, url, &generated).await?;
    wait_for_transform(&client, url, pushed.accepted).await?;
    print_answers(&client, url).await?;
    println!(
        "\nAnswers {:.1} s after the start.",
        started.elapsed().as_secs_f64()
    );
    Ok(Demo {
        url: url.to_string(),
        generated,
        pushed,
    })
}

async fn wait_until_ready(client: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    for _ in 0..100 {
        if client
            .get(format!("{url}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("the services at {url} did not get ready")
}

/// Registers the regions that join while techmon runs, as their administrator would
/// (`techmon regions add`, `hubs add`, `targets import`, `hubs token`): the region
/// where it is not yet, its hubs where they are not yet, its KPI set and targets, and
/// a new token per hub; then waits until ingest takes the tokens. The tokens, by hub.
async fn register_joining_regions(
    client: &reqwest::Client,
    url: &str,
) -> anyhow::Result<HashMap<&'static str, String>> {
    let admin = crate::sql::Server {
        url: url.to_string(),
        token: ADMIN_TOKEN.to_string(),
    };
    let known = |sql: &'static str, column: &'static str| async move {
        let rows = ask_as(client, url, ADMIN_TOKEN, sql).await?;
        anyhow::Ok(
            rows.iter()
                .filter_map(|r| r[column].as_str().map(str::to_string))
                .collect::<Vec<_>>(),
        )
    };
    let (regions, hubs) = (
        known("SELECT region_id FROM regions", "region_id").await?,
        known("SELECT hub_id FROM hubs", "hub_id").await?,
    );
    let change = |path: &str, request: reqwest::RequestBuilder| {
        let path = path.to_string();
        let admin = &admin;
        async move {
            crate::registry::send(admin, request)
                .await
                .with_context(|| path)
        }
    };
    let mut tokens = HashMap::new();
    for region in techmon_generate::world::REGIONS {
        let Some(joining) = &region.joins else {
            continue;
        };
        if !regions.iter().any(|r| r == region.id) {
            let body = serde_json::json!({"region_id": region.id, "name": joining.name,
                                          "municipalities": joining.municipalities});
            let path = "/v1/reference/regions";
            change(path, client.post(admin.at(path)).json(&body)).await?;
        }
        let members = techmon_generate::world::HUBS
            .iter()
            .filter(|h| h.region == region.id);
        for hub in members.clone().filter(|h| !hubs.iter().any(|k| k == h.id)) {
            let body = serde_json::json!({
                "hub_id": hub.id, "name": hub.name, "municipality": hub.municipality,
                "region_id": region.id,
                "first_school_year": techmon_schemas::codes::SchoolYear::new(hub.first_year).to_string(),
            });
            let path = "/v1/reference/hubs";
            change(path, client.post(admin.at(path)).json(&body)).await?;
        }
        let path = "/v1/reference/kpi_targets";
        let targets = client
            .post(admin.at(path))
            .header(reqwest::header::CONTENT_TYPE, "text/csv")
            .body(joining.targets_csv(region.id));
        change(path, targets).await?;
        for hub in members {
            let path = format!("/v1/reference/hubs/{}/tokens", hub.id);
            let answer = change(&path, client.post(admin.at(&path))).await?;
            let token = answer["token"].as_str().unwrap_or_default().to_string();
            tokens.insert(hub.id, token);
        }
        println!(
            "Registered region {} ({}) with its hubs, KPI set and targets, and a token per hub, as its administrator would (techmon regions add, hubs add, targets import, hubs token).",
            region.id, joining.name
        );
    }
    for (hub, token) in &tokens {
        wait_until_taken(client, url, hub, token).await?;
    }
    Ok(tokens)
}

/// Waits until ingest takes `token` (it reads the registry again every second here).
async fn wait_until_taken(
    client: &reqwest::Client,
    url: &str,
    hub: &str,
    token: &str,
) -> anyhow::Result<()> {
    for _ in 0..100 {
        let answered = client
            .get(format!("{url}/v1/uploads"))
            .bearer_auth(token)
            .send()
            .await?;
        if answered.status().is_success() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("ingest did not take the token issued to {hub} within 20 s")
}

/// Pushes every hub's files with its own token (the joining hubs' `tokens`, else its
/// development token), the hubs side by side.
async fn push_region(
    url: &str,
    generated: &Generated,
    region_dir: &std::path::Path,
    tokens: &HashMap<&'static str, String>,
) -> anyhow::Result<PushSummary> {
    let mut pushes = tokio::task::JoinSet::new();
    for hub in &generated.hubs {
        let options = PushOptions {
            url: url.to_string(),
            token: tokens
                .get(hub.hub_id)
                .cloned()
                .unwrap_or_else(|| hub_token(hub.hub_id)),
            batch_size: 1000,
            max_attempts: 10,
            kind: None,
            rejects: region_dir.join(format!("rejected-{}.ndjson", hub.hub_id)),
        };
        let (hub_id, files) = (hub.hub_id, hub.files.clone());
        pushes.spawn(async move {
            let summary = push_files(&options, &files).await;
            (hub_id, options.rejects, summary)
        });
    }
    let mut total = PushSummary::default();
    let mut lines = Vec::new();
    while let Some(done) = pushes.join_next().await {
        let (hub_id, rejects, summary) = done?;
        let s = summary.with_context(|| format!("pushing {hub_id}'s files"))?;
        lines.push(format!(
            "  {hub_id:<20} {:>9} records: {:>9} accepted, {:>5} duplicates, {:>4} rejected (reasons in {})",
            s.records,
            s.accepted,
            s.duplicates,
            s.rejected,
            rejects.display()
        ));
        total.records += s.records;
        total.accepted += s.accepted;
        total.duplicates += s.duplicates;
        total.rejected += s.rejected;
    }
    lines.sort();
    println!("Pushed every hub's files to {url}/v1/events and /v1/feeds, as the hubs would:");
    for line in lines {
        println!("{line}");
    }
    Ok(total)
}

async fn import_duo(
    client: &reqwest::Client,
    url: &str,
    generated: &Generated,
) -> anyhow::Result<()> {
    let (mut rows, mut suppressed, mut again) = (0, 0, 0);
    let admin = crate::sql::Server {
        url: url.to_string(),
        token: ADMIN_TOKEN.to_string(),
    };
    for file in &generated.duo_files {
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let answer = crate::reference::send(client, &admin, &name, bytes, None).await?;
        rows += answer["rows"].as_u64().unwrap_or(0);
        suppressed += answer["suppressed_cells"].as_u64().unwrap_or(0);
        again += usize::from(answer["imported"] != true);
    }
    println!(
        "Imported {} DUO files (DUO's older and newer layouts; {again} of them were already there): {rows} rows, {suppressed} suppressed cells (<5).",
        generated.duo_files.len()
    );
    Ok(())
}

/// The transform's progress from `/metrics`: events read since start, and whether
/// every partition's lag is zero.
async fn transform_progress(client: &reqwest::Client, url: &str) -> anyhow::Result<(u64, bool)> {
    let text = client
        .get(format!("{url}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let mut read = 0;
    let mut caught_up = true;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((name, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let value: f64 = value.parse().unwrap_or(0.0);
        if name == "techmon_transform_events_read_total" {
            read = value as u64;
        } else if name.starts_with("techmon_transform_lag_events") && value > 0.0 {
            caught_up = false;
        }
    }
    Ok((read, caught_up))
}

async fn wait_for_transform(
    client: &reqwest::Client,
    url: &str,
    accepted: usize,
) -> anyhow::Result<()> {
    let accepted = accepted as u64;
    let (mut last_read, mut last_progress) = (0, Instant::now());
    loop {
        let (read, caught_up) = transform_progress(client, url).await?;
        eprint!("\rTransform: {read} of {accepted} new events in the lake   ");
        if read >= accepted && caught_up {
            eprintln!();
            return Ok(());
        }
        if read > last_read {
            (last_read, last_progress) = (read, Instant::now());
        } else if last_progress.elapsed() > TRANSFORM_STALL {
            eprintln!();
            bail!(
                "the transform read no event for {} s ({read} of {accepted} read); its log says why",
                TRANSFORM_STALL.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// How long the demo waits for a transform that reads nothing more.
const TRANSFORM_STALL: Duration = Duration::from_secs(120);

/// Rows of a SQL answer (JSON), as the researcher role asks it (aggregates over at
/// least `query.min_persons` persons).
pub async fn ask(client: &reqwest::Client, url: &str, sql: &str) -> anyhow::Result<Vec<Value>> {
    ask_as(client, url, RESEARCHER_TOKEN, sql).await
}

/// Rows of a SQL answer (JSON) to the user of `token`.
pub async fn ask_as(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    sql: &str,
) -> anyhow::Result<Vec<Value>> {
    let response = client
        .post(format!("{url}/v1/sql"))
        .bearer_auth(token)
        .body(sql.to_string())
        .send()
        .await?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{}", crate::sql::refusal(status, &answer));
    }
    Ok(answer["rows"].as_array().cloned().unwrap_or_default())
}

fn number(row: &Value, column: &str) -> Option<f64> {
    row[column].as_f64()
}

fn signed(value: Option<f64>, unit: &str) -> String {
    value.map_or("–".into(), |v| format!("{v:+.1}{unit}"))
}

/// The last complete school year of the region.
fn report_year() -> i32 {
    techmon_schemas::codes::SchoolYear::containing(Spec::default_until().date()).start - 1
}

async fn print_answers(client: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let regions = ask(
        client,
        url,
        "SELECT region_id, name FROM regions ORDER BY region_id",
    )
    .await?;
    for region in &regions {
        print_headline(client, url, region).await?;
    }
    print_effects(client, url).await?;
    for region in &regions {
        print_kpis(client, url, region).await?;
    }
    Ok(())
}

/// A region's `region_id` (quoted for SQL: ids are lower-case words with dashes) and
/// name.
fn region_of(row: &Value) -> (String, &str) {
    let id = row["region_id"].as_str().unwrap_or("");
    (format!("'{id}'"), row["name"].as_str().unwrap_or(id))
}

async fn print_headline(client: &reqwest::Client, url: &str, region: &Value) -> anyhow::Result<()> {
    let (id, name) = region_of(region);
    let rows = ask(
        client,
        url,
        &format!(
            "SELECT school_year, share_pct, change_pp, change_pp_min, change_pp_max, change_relative_pct, \
                    national_change_pp, difference_in_differences_pp \
             FROM technical_profile_vs_2022 WHERE scope = 'region' AND region_id = {id} AND track = 'all' \
             ORDER BY school_year"
        ),
    )
    .await?;
    println!(
        "\nDid intake into technical profiles rise against 2022/23? (DUO; vmbo bb/kb/gl leerjaar 3 and havo/vwo leerjaar 4; {name})"
    );
    println!(
        "  {:<11} {:>7} {:>10} {:>17} {:>9} {:>10} {:>13}",
        "school year", "share", "vs 2022", "(bounds)", "relative", "national", "region−nation"
    );
    for row in &rows {
        println!(
            "  {:<11} {:>6.1}% {:>7} pp {:>17} {:>9} {:>7} pp {:>10} pp",
            row["school_year"].as_str().unwrap_or(""),
            number(row, "share_pct").unwrap_or(f64::NAN),
            signed(number(row, "change_pp"), ""),
            format!(
                "{} … {}",
                signed(number(row, "change_pp_min"), ""),
                signed(number(row, "change_pp_max"), "")
            ),
            signed(number(row, "change_relative_pct"), "%"),
            signed(number(row, "national_change_pp"), ""),
            signed(number(row, "difference_in_differences_pp"), ""),
        );
    }
    Ok(())
}

async fn print_effects(client: &reqwest::Client, url: &str) -> anyhow::Result<()> {
    let effects = ask(
        client,
        url,
        "SELECT scope, region_id, att_pp, ci_low_pp, ci_high_pp, treated_schools, pre_trend_p_value \
         FROM effect_estimates WHERE track = 'all' AND att_pp IS NOT NULL \
         ORDER BY region_id NULLS FIRST, scope <> 'region', scope",
    )
    .await?;
    println!(
        "\nDid reaching a school change its pupils' choice? (difference in differences against schools not yet or never reached; `techmon effect` explains)"
    );
    println!(
        "  {:<28} {:>9} {:>19} {:>15} {:>11}",
        "scope", "effect", "95% interval", "treated schools", "pre-trend p"
    );
    for row in &effects {
        let scope = match (row["scope"].as_str(), row["region_id"].as_str()) {
            (Some("region"), Some(region)) => region.to_string(),
            (Some("regions"), _) => "all regions".to_string(),
            (Some(hub), _) => format!("  {hub}"),
            _ => String::new(),
        };
        println!(
            "  {:<28} {:>6} pp {:>19} {:>15} {:>11}",
            truncate(&scope, 28),
            signed(number(row, "att_pp"), ""),
            format!(
                "{} … {} pp",
                signed(number(row, "ci_low_pp"), ""),
                signed(number(row, "ci_high_pp"), "")
            ),
            row["treated_schools"],
            number(row, "pre_trend_p_value").map_or("–".into(), |p| format!("{p:.2}")),
        );
    }
    Ok(())
}

/// The region's KPI set for the report year: actual against target, for the region
/// and each of its hubs.
async fn print_kpis(client: &reqwest::Client, url: &str, region: &Value) -> anyhow::Result<()> {
    let (id, name) = region_of(region);
    let year = report_year();
    let kpis = ask(
        client,
        url,
        &format!(
            "SELECT kpi, band, hub_id, unit, actual, target, met \
             FROM kpi_report WHERE year = {year} AND region_id = {id} ORDER BY kpi, band"
        ),
    )
    .await?;
    let mut hubs: Vec<String> = kpis
        .iter()
        .filter_map(|r| r["hub_id"].as_str())
        .filter(|hub| *hub != "region")
        .map(str::to_string)
        .collect();
    hubs.sort_unstable();
    hubs.dedup();
    let scopes: Vec<String> = std::iter::once("region".to_string()).chain(hubs).collect();
    println!(
        "\nKPIs of {name} for {year}/{:02}: actual (target; ✔ met, ✘ missed)",
        (year + 1) % 100
    );
    print!("  {:<34}", "KPI");
    for scope in &scopes {
        print!(" {:>19}", truncate(scope, 19));
    }
    println!();
    let mut kpi_names: Vec<(String, String)> = kpis
        .iter()
        .map(|r| {
            (
                r["kpi"].as_str().unwrap_or("").to_string(),
                r["band"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    kpi_names.dedup();
    for (kpi, band) in kpi_names {
        let label = if band.is_empty() {
            kpi.clone()
        } else {
            format!("{kpi} {band}")
        };
        print!("  {:<34}", truncate(&label, 34));
        for scope in &scopes {
            let row = kpis.iter().find(|r| {
                r["kpi"] == kpi.as_str()
                    && r["band"].as_str().unwrap_or("") == band
                    && r["hub_id"] == scope.as_str()
            });
            print!(" {:>19}", row.map_or(String::new(), kpi_cell));
        }
        println!();
    }
    Ok(())
}

fn truncate(text: &str, width: usize) -> String {
    text.chars().take(width).collect()
}

/// `12.3 (10) ✔`: the actual with the unit's precision, the target, met or not.
fn kpi_cell(row: &Value) -> String {
    // A score of 7.96 must not read as a met 8.0.
    let decimals = match row["unit"].as_str() {
        Some("count") => 0,
        Some("score_10") => 2,
        _ => 1,
    };
    let actual = number(row, "actual").map_or("–".into(), |v| format!("{v:.decimals$}"));
    let target = number(row, "target").map_or(String::new(), |v| format!(" ({v:.0})"));
    let met = match row["met"].as_bool() {
        Some(true) => " ✔",
        Some(false) => " ✘",
        None => "  ",
    };
    format!("{actual}{target}{met}")
}
