//! `techmon serve`: the services in one process, on one event log.

use std::sync::Arc;

use crate::config::TechmonConfig;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Log(#[from] techmon_eventlog::LogError),
    #[error(transparent)]
    Ingest(#[from] techmon_ingest::IngestError),
    #[error(transparent)]
    Transform(#[from] techmon_transform::TransformError),
}

/// Runs ingest and the transform on the configured log until `shutdown` completes.
pub async fn run(
    config: &TechmonConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let log = techmon_eventlog::open(&config.log).await?;
    tracing::info!(backend = log.backend(), topic = %config.log.topic, partitions = log.partitions(), "event log open");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    let transform =
        techmon_transform::Transform::open(&config.transform, Arc::clone(&log), &config.log.topic)
            .await?;
    tracing::info!(lake = %config.transform.lake, "transform resumes from the lake");
    let transform = tokio::spawn(transform.run(until_stopped()));
    let ingest = techmon_ingest::run(&config.ingest, log, until_stopped());
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let ingest_result = ingest.await;
    let transform_result = transform.await.unwrap_or(Ok(()));
    ingest_result?;
    transform_result?;
    Ok(())
}
