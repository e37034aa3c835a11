//! `techmon regions add`, `techmon hubs add|token|retire` and `techmon targets
//! import`: an administrator's changes to the regions, the hubs and the KPI targets,
//! sent to the admin routes of a running techmon (`POST /v1/reference/regions`,
//! `…/hubs`, `…/hubs/{hub_id}/retire`, `…/hubs/{hub_id}/tokens`, `…/kpi_targets`).

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::sql::Server;

#[derive(Debug, clap::Subcommand)]
pub enum RegionCommand {
    /// A region joins: its hubs are added after it, its KPI set and targets with
    /// `techmon targets import`.
    Add {
        /// Lower-case letters, digits and dashes (`noord-veluwe`).
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// Its municipalities as DUO writes them: `--municipalities Harderwijk,Elburg`.
        #[arg(long, value_delimiter = ',', required = true)]
        municipalities: Vec<String>,
        #[command(flatten)]
        server: Server,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum HubCommand {
    /// A hub joins: its events count from the school year given (its token is
    /// configured as for any hub: `techmon token new --hub ID`).
    Add {
        /// Lower-case letters, digits and dashes, as its events name it.
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// The municipality whose DUO counts are the hub's own: one of its region's.
        #[arg(long)]
        municipality: String,
        /// The region it works in; may be left out while there is one.
        #[arg(long)]
        region: Option<String>,
        /// The first school year it reports (`2025/26`); from the start if left out.
        #[arg(long)]
        first_school_year: Option<String>,
        #[command(flatten)]
        server: Server,
    },
    /// A new token for a hub, printed this once: ingest takes the hub's events with it
    /// within `lake.registry_refresh_seconds`, without a restart.
    Token {
        #[arg(long)]
        id: String,
        #[command(flatten)]
        server: Server,
    },
    /// A hub stops: it stays in the hubs, with the last school year it reports.
    Retire {
        #[arg(long)]
        id: String,
        /// The last school year it reports (`2026/27`).
        #[arg(long)]
        last_school_year: String,
        #[command(flatten)]
        server: Server,
    },
}

#[derive(Debug, clap::Subcommand)]
pub enum TargetCommand {
    /// Sets the targets of a CSV file (`,` or `;`; columns kpi, band, year, target,
    /// and region_id and hub_id where needed) or a TOML file (`*.toml`: `region_id`,
    /// then a `[[targets]]` table per row with the same keys): each row replaces its
    /// KPI's target for the year, and a KPI new to a region joins its KPI set.
    Import {
        file: PathBuf,
        #[command(flatten)]
        server: Server,
    },
}

pub async fn regions(command: RegionCommand) -> anyhow::Result<()> {
    let RegionCommand::Add {
        id,
        name,
        municipalities,
        server,
    } = command;
    let request = reqwest::Client::new()
        .post(server.at("/v1/reference/regions"))
        .json(&json!({ "region_id": id, "name": name, "municipalities": municipalities }));
    report(&server, request).await
}

pub async fn hubs(command: HubCommand) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let (server, request) = match &command {
        HubCommand::Add {
            id,
            name,
            municipality,
            region,
            first_school_year,
            server,
        } => (
            server,
            client.post(server.at("/v1/reference/hubs")).json(&json!({
                "hub_id": id, "name": name, "municipality": municipality,
                "region_id": region, "first_school_year": first_school_year,
            })),
        ),
        HubCommand::Token { id, server } => (
            server,
            client.post(server.at(&format!("/v1/reference/hubs/{id}/tokens"))),
        ),
        HubCommand::Retire {
            id,
            last_school_year,
            server,
        } => (
            server,
            client
                .post(server.at(&format!("/v1/reference/hubs/{id}/retire")))
                .json(&json!({ "last_school_year": last_school_year })),
        ),
    };
    report(server, request).await
}

/// A targets file in TOML: `region_id` for every row that names none, and one
/// `[[targets]]` table per target.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetsFile {
    region_id: Option<String>,
    targets: Vec<TargetRow>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetRow {
    region_id: Option<String>,
    hub_id: Option<String>,
    kpi: String,
    band: Option<String>,
    year: i32,
    /// Left out: the KPI is in the region's set without a target that year.
    target: Option<f64>,
}

impl TargetsFile {
    /// The targets as the CSV `POST /v1/reference/kpi_targets` takes.
    fn csv(&self) -> anyhow::Result<String> {
        let mut csv = csv::Writer::from_writer(Vec::new());
        csv.write_record(["region_id", "hub_id", "kpi", "band", "year", "target"])?;
        for row in &self.targets {
            let region = row.region_id.as_ref().or(self.region_id.as_ref());
            csv.write_record([
                region.map_or("", String::as_str),
                row.hub_id.as_deref().unwrap_or(""),
                &row.kpi,
                row.band.as_deref().unwrap_or(""),
                &row.year.to_string(),
                &row.target.map(|t| t.to_string()).unwrap_or_default(),
            ])?;
        }
        Ok(String::from_utf8(csv.into_inner()?)?)
    }
}

pub async fn targets(command: TargetCommand) -> anyhow::Result<()> {
    let TargetCommand::Import { file, server } = command;
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    let text = if file.extension().is_some_and(|e| e == "toml") {
        toml::from_str::<TargetsFile>(&text)
            .with_context(|| format!("reading {} as targets", file.display()))?
            .csv()?
    } else {
        text
    };
    let request = reqwest::Client::new()
        .post(server.at("/v1/reference/kpi_targets"))
        .header(reqwest::header::CONTENT_TYPE, "text/csv")
        .body(text);
    report(&server, request).await
}

/// Sends a change; the service's answer (the change report), or its refusal as the
/// error.
pub(crate) async fn send(
    server: &Server,
    request: reqwest::RequestBuilder,
) -> anyhow::Result<Value> {
    let response = server.send(request).await?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{}", crate::sql::refusal(status, &answer));
    }
    Ok(answer)
}

/// Sends a change and prints what it did.
async fn report(server: &Server, request: reqwest::RequestBuilder) -> anyhow::Result<()> {
    let answer = send(server, request).await?;
    println!(
        "{}: {}; table version {}",
        answer["table"].as_str().unwrap_or(""),
        answer["changed"].as_str().unwrap_or(""),
        answer["table_version"]
    );
    if let Some(token) = answer["token"].as_str() {
        println!("token (shown this once; give it to the hub): {token}");
    }
    Ok(())
}
