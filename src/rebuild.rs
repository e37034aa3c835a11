//! Rebuilding the lake from the event log into a new location: `techmon replay`
//! (the same key) and `techmon key rotate` (a new one).

use crate::config::TechmonConfig;

/// Reads the whole event log into a new lake (`to`, a folder or URL with the
/// configured lake's storage options), with progress, then finishes the relinks as
/// the service would on its schedule, and copies the registry (regions, hubs, tokens,
/// targets) from the configured lake, which the log does not hold.
pub async fn rebuild(
    config: &TechmonConfig,
    transform: &techmon_transform::Config,
    to: &str,
    done: &str,
) -> anyhow::Result<()> {
    let lake = techmon_lake::LakeLocation::new(to, config.lake.storage.clone())?;
    let log = techmon_eventlog::open(&config.log).await?;
    // Past the retention the lake is the only copy of what the log deleted.
    for partition in 0..log.partitions() {
        let start = log.start_offset(partition).await?;
        if start > 0 {
            anyhow::bail!(
                "the event log no longer holds partition {partition} before offset {start} \
                 (deleted after log.retention_days = {} days): a lake rebuilt from it would \
                 lack those events, so the current lake stays the one to use",
                config.log.retention_days
            );
        }
    }
    let mut rebuilt =
        techmon_transform::Transform::open(transform, &lake, log, &config.log.topic).await?;
    let started = std::time::Instant::now();
    let total = rebuilt
        .catch_up_reporting(|progress, read, to_read| {
            let rate = read as f64 / started.elapsed().as_secs_f64().max(1e-3);
            eprint!(
                "\rreplay: {read} of {to_read} events ({rate:.0}/s), {} rows written, {} dead letters   ",
                progress.written, progress.dead_letters
            );
        })
        .await?;
    eprintln!();
    println!(
        "{done} {} events into {} in {:.2}s: {} rows, {} dead letters, {} duplicates dropped",
        total.read,
        to,
        started.elapsed().as_secs_f64(),
        total.written,
        total.dead_letters,
        total.duplicates
    );
    // As the service would on its schedule: the rebuilt lake is complete.
    let pending = rebuilt.state().pending_relinks().len();
    if pending > 0 {
        let started = std::time::Instant::now();
        let relinked = rebuilt.relink().await?;
        println!(
            "relinked {relinked} rows of {pending} participants named before their registration in {:.2}s",
            started.elapsed().as_secs_f64()
        );
    }
    let current = techmon_lake::LakeLocation::new(&config.lake.url, config.lake.storage.clone())?;
    techmon_reference::registry::copy(&current, &lake).await?;
    println!(
        "copied the registry (regions, hubs, hub tokens, KPI targets) from {}",
        config.lake.url
    );
    Ok(())
}
