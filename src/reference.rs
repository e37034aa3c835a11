//! `techmon reference import SOURCE…`: sends DUO files (paths or URLs) to the query
//! API's reference import (admin role), which parses and stores them.

use std::path::Path;

use anyhow::{Context, bail};

#[derive(Debug, clap::Args)]
pub struct ImportOptions {
    /// DUO CSV files: paths, or http(s) URLs to download.
    #[arg(required = true)]
    pub sources: Vec<String>,
    /// The school year (`2024/25`) when the file name does not end in the year.
    #[arg(long)]
    pub school_year: Option<String>,
    /// Base URL of the query API.
    #[arg(long, default_value = "http://127.0.0.1:8080", env = "TECHMON_URL")]
    pub url: String,
    /// An admin token.
    #[arg(long, env = "TECHMON_TOKEN", hide_env_values = true)]
    pub token: String,
}

pub async fn import(options: &ImportOptions) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    for source in &options.sources {
        let (name, bytes) = if source.starts_with("http://") || source.starts_with("https://") {
            let response = client
                .get(source)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .with_context(|| format!("downloading {source}"))?;
            (source.clone(), response.bytes().await?.to_vec())
        } else {
            let path = Path::new(source);
            let bytes = std::fs::read(path).with_context(|| format!("reading {source}"))?;
            let name = path
                .file_name()
                .map_or_else(|| source.clone(), |n| n.to_string_lossy().into_owned());
            (name, bytes)
        };
        let answer = send(
            &client,
            (&options.url, &options.token),
            &name,
            bytes,
            options.school_year.as_deref(),
        )
        .await?;
        println!(
            "{name}: {} {} rows ({} suppressed) into {} for {} ({}, '{}'), table version {}",
            if answer["imported"] == true {
                "imported"
            } else {
                "already imported:"
            },
            answer["rows"],
            answer["suppressed_cells"],
            answer["table"].as_str().unwrap_or(""),
            answer["school_year"].as_str().unwrap_or(""),
            answer["encoding"].as_str().unwrap_or(""),
            answer["separator"].as_str().unwrap_or(""),
            answer["table_version"]
        );
    }
    Ok(())
}

/// Sends one DUO file to the query API (`(url, token)`: an admin's); returns the
/// import's answer.
pub async fn send(
    client: &reqwest::Client,
    (url, token): (&str, &str),
    name: &str,
    bytes: Vec<u8>,
    school_year: Option<&str>,
) -> anyhow::Result<serde_json::Value> {
    let mut query = vec![("source", name)];
    if let Some(year) = school_year {
        query.push(("school_year", year));
    }
    let response = client
        .post(format!("{}/v1/reference/duo", url.trim_end_matches('/')))
        .bearer_auth(token)
        .query(&query)
        .body(bytes)
        .send()
        .await
        .with_context(|| format!("cannot reach the query API at {url}"))?;
    let status = response.status();
    let answer: serde_json::Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{name}: {}", crate::sql::refusal(status, &answer));
    }
    Ok(answer)
}
