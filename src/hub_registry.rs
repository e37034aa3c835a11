//! The services' view of the hubs registry: the retired hubs (`hubs`, for ingest) and
//! the tokens issued at run time (`hub_tokens`, for ingest and the query API), read
//! from the lake and again every `lake.registry_refresh_seconds`, so an
//! administrator's `techmon hubs retire` or `techmon hubs token` takes effect without
//! a restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use deltalake::arrow::array::{AsArray, RecordBatch};
use deltalake::arrow::datatypes::DataType;
use techmon_lake::LakeLocation;
use techmon_schemas::codes::SchoolYear;

/// One registry table as last read: its version, and what was read of it.
#[derive(Debug, Default)]
struct Read<T> {
    version: Option<u64>,
    values: T,
}

#[derive(Debug, Default)]
pub struct LakeHubRegistry {
    /// Retired hub → its last school year.
    retired: Mutex<Read<HashMap<String, SchoolYear>>>,
    /// Token SHA-256 → hub.
    tokens: Mutex<Read<HashMap<String, String>>>,
}

impl techmon_ingest::HubRegistry for LakeHubRegistry {
    fn last_school_year(&self, hub: &str) -> Option<SchoolYear> {
        let retired = self.retired.lock().unwrap_or_else(PoisonError::into_inner);
        retired.values.get(hub).copied()
    }
}

impl techmon_service::IssuedTokens for LakeHubRegistry {
    fn hub_of_token(&self, token_sha256: &str) -> Option<String> {
        let tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        tokens.values.get(token_sha256).cloned()
    }
}

impl LakeHubRegistry {
    /// Reads the registry of `location` at once and then every `refresh_seconds`, for
    /// as long as the runtime runs; in the background, so that a start does not wait
    /// on the lake.
    pub fn watch(location: LakeLocation, refresh_seconds: u64) -> Arc<Self> {
        let registry = Arc::new(Self::default());
        let every = Duration::from_secs(refresh_seconds.max(1));
        let watched = Arc::clone(&registry);
        tokio::spawn(async move {
            loop {
                watched.refresh(&location).await;
                tokio::time::sleep(every).await;
            }
        });
        registry
    }

    /// Reads each table again if it has a new version; keeps what was read when the
    /// lake does not answer.
    async fn refresh(&self, lake: &LakeLocation) {
        let retired = refresh(
            lake,
            &self.retired,
            "hubs",
            "SELECT hub_id, last_school_year FROM hubs WHERE last_school_year IS NOT NULL",
            |hub, year| Some((hub.to_string(), SchoolYear::parse(year)?)),
        );
        let tokens = refresh(
            lake,
            &self.tokens,
            "hub_tokens",
            "SELECT token_sha256, hub_id FROM hub_tokens",
            |hash, hub| Some((hash.to_string(), hub.to_string())),
        );
        for outcome in [retired.await, tokens.await] {
            if let Err(error) = outcome {
                tracing::warn!(error = %format!("{error:#}"), "the hubs registry could not be read: what was read before stands");
            }
        }
    }
}

/// Reads `sql`'s pairs of text over table `name` into `read` if the table has a
/// version other than the one read.
async fn refresh<K: std::hash::Hash + Eq, V>(
    lake: &LakeLocation,
    read: &Mutex<Read<HashMap<K, V>>>,
    name: &str,
    sql: &str,
    entry: impl Fn(&str, &str) -> Option<(K, V)>,
) -> anyhow::Result<()> {
    let table = lake
        .open(name)
        .await
        .with_context(|| format!("opening {name}"))?;
    let version = table.version();
    let known = read.lock().unwrap_or_else(PoisonError::into_inner).version;
    if version.is_none() || version == known {
        return Ok(());
    }
    let batches = techmon_lake::session_over(&table, name)
        .await?
        .sql(sql)
        .await?
        .collect()
        .await?;
    let values = pairs(&batches)?
        .into_iter()
        .filter_map(|(a, b)| entry(&a, &b))
        .collect();
    *read.lock().unwrap_or_else(PoisonError::into_inner) = Read { version, values };
    Ok(())
}

/// The first two columns of `batches` as text, where both are given.
fn pairs(batches: &[RecordBatch]) -> anyhow::Result<Vec<(String, String)>> {
    let mut pairs = Vec::new();
    for batch in batches {
        let cast = |i| deltalake::arrow::compute::cast(batch.column(i), &DataType::Utf8);
        let (first, second) = (cast(0)?, cast(1)?);
        for (a, b) in first
            .as_string::<i32>()
            .iter()
            .zip(second.as_string::<i32>().iter())
        {
            if let (Some(a), Some(b)) = (a, b) {
                pairs.push((a.to_string(), b.to_string()));
            }
        }
    }
    Ok(pairs)
}
