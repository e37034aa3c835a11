//! `techmon sql "…"`: asks the query API and prints the answer as a table, or writes
//! it as CSV, JSON, Arrow or Parquet.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{Context, bail};
use techmon_query::formats::Format;
use techmon_query::http::VERSIONS_HEADER;

/// The query API and who asks it, for its clients (`techmon sql`, `techmon effect`,
/// the administrators' `techmon hubs` and `techmon targets`).
#[derive(Debug, clap::Args)]
pub struct Server {
    /// Base URL of the query API (`techmon serve` serves it on the ingest address).
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "TECHMON_URL")]
    pub url: String,
    /// Your researcher, analyst or admin token.
    #[arg(long, env = "TECHMON_TOKEN", hide_env_values = true)]
    pub token: String,
}

impl Server {
    /// The API's `path` (`/v1/sql`).
    pub(crate) fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url.trim_end_matches('/'))
    }

    /// Sends `request` with the token.
    pub(crate) async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> anyhow::Result<reqwest::Response> {
        request
            .bearer_auth(&self.token)
            .send()
            .await
            .with_context(|| format!("cannot reach the query API at {}", self.url))
    }
}

/// [`Server`] for questions, which can pin the table versions they read.
#[derive(Debug, clap::Args)]
pub struct QueryApi {
    #[command(flatten)]
    pub server: Server,
    /// Pin table versions to reproduce an earlier answer: `activities=3,participants=7`
    /// (as printed under every answer).
    #[arg(long)]
    pub versions: Option<String>,
}

impl QueryApi {
    pub(crate) fn at(&self, path: &str) -> String {
        self.server.at(path)
    }

    /// Sends `request` with the token and the pinned versions.
    pub(crate) async fn send(
        &self,
        mut request: reqwest::RequestBuilder,
    ) -> anyhow::Result<reqwest::Response> {
        if let Some(versions) = &self.versions {
            request = request.header(VERSIONS_HEADER, versions);
        }
        self.server.send(request).await
    }
}

#[derive(Debug, clap::Args)]
pub struct SqlOptions {
    /// One SELECT, WITH, EXPLAIN, DESCRIBE or SHOW statement; `-` reads it from stdin.
    pub sql: String,
    #[command(flatten)]
    pub api: QueryApi,
    /// table (printed), csv, json, arrow, parquet or xlsx.
    #[arg(long, default_value = "table", value_parser = ["table", "csv", "json", "arrow", "parquet", "xlsx"])]
    pub format: String,
    /// Write the answer to this file instead of printing it.
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

pub async fn run(options: &SqlOptions) -> anyhow::Result<()> {
    let sql = if options.sql == "-" {
        let mut sql = String::new();
        std::io::stdin()
            .read_to_string(&mut sql)
            .context("reading SQL from stdin")?;
        sql
    } else {
        options.sql.clone()
    };
    // A table is printed from CSV.
    let format = Format::from_name(&options.format).unwrap_or(Format::Csv);
    let api = &options.api;
    let response = api
        .send(
            reqwest::Client::new()
                .post(api.at("/v1/sql"))
                .header(reqwest::header::ACCEPT, format.content_type())
                .body(sql),
        )
        .await?;
    let status = response.status();
    let versions = response
        .headers()
        .get(VERSIONS_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = response.bytes().await.context("reading the answer")?;
    if !status.is_success() {
        bail!(
            "{}",
            refusal(status, &serde_json::from_slice(&body).unwrap_or_default())
        );
    }
    match (&options.output, options.format.as_str()) {
        (Some(path), _) => {
            std::fs::write(path, &body).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("answer written to {}", path.display());
        }
        (None, "table") => print!("{}", table(&body)?),
        (None, "csv" | "json") => print!("{}", String::from_utf8_lossy(&body)),
        (None, format) => bail!("{format} is binary: give --output FILE"),
    }
    eprintln!("answered from table versions: {versions}");
    Ok(())
}

/// The query API's error answer in one line: `code (status): message`.
pub(crate) fn refusal(status: reqwest::StatusCode, answer: &serde_json::Value) -> String {
    format!(
        "{} ({status}): {}",
        answer["error"]["code"].as_str().unwrap_or("error"),
        answer["error"]["message"]
            .as_str()
            .unwrap_or("the query API gave no reason")
    )
}

/// CSV as a text table with aligned columns.
fn table(csv_bytes: &[u8]) -> anyhow::Result<String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(csv_bytes);
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.map(|r| r.iter().map(str::to_string).collect()))
        .collect::<Result<_, _>>()
        .context("the answer is not CSV")?;
    Ok(aligned(&rows))
}

/// Rows (the first the header) as a text table with aligned columns.
pub(crate) fn aligned(rows: &[Vec<String>]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |v| v.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |row: &Vec<String>| {
        row.iter()
            .zip(&widths)
            .map(|(v, w)| format!("{v:<w$}"))
            .collect::<Vec<_>>()
            .join(" | ")
            .trim_end()
            .to_string()
    };
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        out.push_str(&line(row));
        out.push('\n');
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            out.push_str(&rule.join("-+-"));
            out.push('\n');
        }
    }
    out.push_str(&format!("({} rows)\n", rows.len().saturating_sub(1)));
    out
}
