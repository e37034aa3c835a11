//! `techmon serve`: the services in one process, on the configured event log.

use crate::config::TechmonConfig;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Log(#[from] techmon_eventlog::LogError),
    #[error(transparent)]
    Ingest(#[from] techmon_ingest::IngestError),
}

/// Runs ingest on the configured log until `shutdown` completes.
pub async fn run(
    config: &TechmonConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let log = techmon_eventlog::open(&config.log).await?;
    tracing::info!(backend = log.backend(), topic = %config.log.topic, partitions = log.partitions(), "event log open");
    techmon_ingest::run(&config.ingest, log, shutdown).await?;
    Ok(())
}
