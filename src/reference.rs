//! `techmon reference import SOURCE…`: sends DUO files (paths or URLs) to the query
//! API's reference import (admin role), which parses and stores them.

use std::path::Path;

use anyhow::{Context, bail};

#[derive(Debug, clap::Args)]
pub struct ImportOptions {
    /// DUO files: paths, or http(s) URLs to download (CSV, or a CKAN
    /// `datastore_search` URL of DUO's newer portal, read page by page).
    #[arg(required = true)]
    pub sources: Vec<String>,
    /// The school year (`2024/25`) when the file name does not end in the year.
    #[arg(long)]
    pub school_year: Option<String>,
    /// The query API, with an admin token.
    #[command(flatten)]
    pub server: crate::sql::Server,
}

pub async fn import(options: &ImportOptions) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let mut files = Vec::new();
    for source in &options.sources {
        if source.starts_with("http://") || source.starts_with("https://") {
            files.extend(download_all(&client, source).await?);
        } else {
            let path = Path::new(source);
            let bytes = std::fs::read(path).with_context(|| format!("reading {source}"))?;
            let name = path
                .file_name()
                .map_or_else(|| source.clone(), |n| n.to_string_lossy().into_owned());
            files.push((name, bytes));
        }
    }
    for (name, bytes) in files {
        let answer = send(
            &client,
            &options.server,
            &name,
            bytes,
            options.school_year.as_deref(),
        )
        .await?;
        println!(
            "{name}: {} {} rows ({} suppressed) into {} for {} ({}, {}), table version {}",
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
            answer["separator"]
                .as_str()
                .map_or_else(|| "CKAN JSON".to_owned(), |s| format!("'{s}'")),
            answer["table_version"]
        );
    }
    Ok(())
}

/// The files a URL names: itself, or for a dataset page of DUO's newer portal (CKAN,
/// `…/dataset/NAME`) each of the dataset's resources, through the datastore where the
/// resource is in it (named `URL#resource name`, so the name's year is the school
/// year), else its CSV download.
async fn download_all(
    client: &reqwest::Client,
    url: &str,
) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("not a URL: {url}"))?;
    let segments: Vec<&str> = parsed
        .path_segments()
        .map(Iterator::collect)
        .unwrap_or_default();
    let [.., "dataset", dataset] = segments.as_slice() else {
        return Ok(vec![(url.to_string(), download(client, url).await?)]);
    };
    let mut package_url = parsed.join("/api/3/action/package_show")?;
    package_url.set_query(Some(&format!("id={dataset}")));
    let package: serde_json::Value =
        serde_json::from_slice(&download(client, package_url.as_str()).await?)
            .with_context(|| format!("{package_url}: not a JSON answer"))?;
    let resources = package["result"]["resources"]
        .as_array()
        .with_context(|| format!("{package_url}: no result.resources"))?;
    let mut files = Vec::new();
    for resource in resources {
        let name = resource["name"]
            .as_str()
            .or(resource["id"].as_str())
            .unwrap_or_default();
        let source = format!("{url}#{name}");
        if resource["datastore_active"] == true
            && let Some(id) = resource["id"].as_str()
        {
            let mut search = parsed.join("/api/3/action/datastore_search")?;
            search.set_query(Some(&format!("resource_id={id}&limit=32000")));
            files.push((source, download(client, search.as_str()).await?));
        } else if resource["format"]
            .as_str()
            .is_some_and(|f| f.eq_ignore_ascii_case("csv"))
            && let Some(csv) = resource["url"].as_str()
        {
            files.push((source, download(client, csv).await?));
        }
    }
    if files.is_empty() {
        bail!("{url}: the dataset has no resource in the datastore and no CSV file");
    }
    Ok(files)
}

/// Downloads a DUO file. A CKAN `datastore_search` URL (DUO's newer portal) answers a
/// page of records at a time: the pages are followed (`result._links.next`) until
/// one has no records or all `result.total` are read, and sent as one answer.
async fn download(client: &reqwest::Client, url: &str) -> anyhow::Result<Vec<u8>> {
    let get = |url: reqwest::Url| async move {
        let response = client
            .get(url.clone())
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("downloading {url}"))?;
        anyhow::Ok(response.bytes().await?.to_vec())
    };
    let mut page_url = reqwest::Url::parse(url).with_context(|| format!("not a URL: {url}"))?;
    let bytes = get(page_url.clone()).await?;
    if !page_url.path().ends_with("/datastore_search") {
        return Ok(bytes);
    }
    let mut answer: serde_json::Value =
        serde_json::from_slice(&bytes).with_context(|| format!("{url}: not a JSON answer"))?;
    let total = answer["result"]["total"].as_u64();
    let mut records = match answer["result"]["records"].take() {
        serde_json::Value::Array(records) => records,
        _ => bail!("{url}: not a datastore_search answer (no result.records)"),
    };
    let mut next = answer["result"]["_links"]["next"]
        .as_str()
        .map(str::to_owned);
    while let Some(link) = next.take() {
        if total.is_some_and(|total| records.len() as u64 >= total) {
            break;
        }
        let following = page_url
            .join(&link)
            .with_context(|| format!("next page {link}"))?;
        if following == page_url {
            break;
        }
        page_url = following;
        let page: serde_json::Value = serde_json::from_slice(&get(page_url.clone()).await?)
            .with_context(|| format!("{page_url}: not a JSON answer"))?;
        let page_records = page["result"]["records"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if page_records.is_empty() {
            break;
        }
        records.extend(page_records);
        next = page["result"]["_links"]["next"].as_str().map(str::to_owned);
    }
    answer["result"]["records"] = serde_json::Value::Array(records);
    Ok(serde_json::to_vec(&answer)?)
}

/// Sends one DUO file to the query API (`(url, token)`: an admin's); returns the
/// import's answer.
pub async fn send(
    client: &reqwest::Client,
    server: &crate::sql::Server,
    name: &str,
    bytes: Vec<u8>,
    school_year: Option<&str>,
) -> anyhow::Result<serde_json::Value> {
    let mut query = vec![("source", name)];
    if let Some(year) = school_year {
        query.push(("school_year", year));
    }
    let response = server
        .send(
            client
                .post(server.at("/v1/reference/duo"))
                .query(&query)
                .body(bytes),
        )
        .await?;
    let status = response.status();
    let answer: serde_json::Value = response.json().await.unwrap_or_default();
    if !status.is_success() {
        bail!("{name}: {}", crate::sql::refusal(status, &answer));
    }
    Ok(answer)
}
