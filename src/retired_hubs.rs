//! The retired hubs for ingest, read from the lake's `hubs` registry table and again
//! every `lake.registry_refresh_seconds`: once an administrator retires a hub, its
//! events of later school years are refused, without a restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use deltalake::arrow::array::AsArray;
use techmon_lake::LakeLocation;
use techmon_schemas::codes::SchoolYear;

/// The retired hubs as last read, with the table version they were read at.
#[derive(Debug, Default)]
pub struct LakeRetiredHubs {
    read: Mutex<(Option<u64>, HashMap<String, SchoolYear>)>,
}

impl techmon_ingest::RetiredHubs for LakeRetiredHubs {
    fn last_school_year(&self, hub: &str) -> Option<SchoolYear> {
        let read = self.read.lock().unwrap_or_else(PoisonError::into_inner);
        read.1.get(hub).copied()
    }
}

impl LakeRetiredHubs {
    /// Reads the hubs of `location` now, then again every `refresh_seconds` for as long
    /// as the runtime runs.
    pub async fn watch(location: LakeLocation, refresh_seconds: u64) -> Arc<Self> {
        let hubs = Arc::new(Self::default());
        hubs.refresh(&location).await;
        let every = Duration::from_secs(refresh_seconds.max(1));
        let watched = Arc::clone(&hubs);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                watched.refresh(&location).await;
            }
        });
        hubs
    }

    /// Reads the table again if it has a new version; keeps what was read when the
    /// lake does not answer.
    async fn refresh(&self, lake: &LakeLocation) {
        let known = self.read.lock().unwrap_or_else(PoisonError::into_inner).0;
        match read(lake, known).await {
            Ok(Some(read)) => *self.read.lock().unwrap_or_else(PoisonError::into_inner) = read,
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "the hubs could not be read: the retired hubs as last read stand");
            }
        }
    }
}

/// The retired hubs at the hubs table's latest version, unless that is `known`.
async fn read(
    lake: &LakeLocation,
    known: Option<u64>,
) -> anyhow::Result<Option<(Option<u64>, HashMap<String, SchoolYear>)>> {
    let table = lake.open("hubs").await.context("opening the hubs")?;
    let version = table.version();
    if version.is_none() || version == known {
        return Ok(None);
    }
    let batches = techmon_lake::session_over(&table, "hubs")
        .await?
        .sql("SELECT hub_id, last_school_year FROM hubs WHERE last_school_year IS NOT NULL")
        .await?
        .collect()
        .await?;
    let mut retired = HashMap::new();
    for batch in &batches {
        let cast = |i| {
            deltalake::arrow::compute::cast(
                batch.column(i),
                &deltalake::arrow::datatypes::DataType::Utf8,
            )
        };
        let (hubs, years) = (cast(0)?, cast(1)?);
        for (hub, year) in hubs
            .as_string::<i32>()
            .iter()
            .zip(years.as_string::<i32>().iter())
        {
            if let (Some(hub), Some(year)) = (hub, year.and_then(SchoolYear::parse)) {
                retired.insert(hub.to_string(), year);
            }
        }
    }
    Ok(Some((version, retired)))
}
