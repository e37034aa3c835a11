//! `techmon audit`: the query service's audit trail, read from its folder on this
//! machine (the data steward's tool; over HTTP an admin asks `GET /v1/audit`).

use anyhow::Context;

use crate::config::TechmonConfig;

#[derive(Debug, clap::Args)]
pub struct AuditOptions {
    /// From this day on (UTC, `2024-10-01`).
    #[arg(long)]
    pub since: Option<chrono::NaiveDate>,
    /// One user's entries.
    #[arg(long)]
    pub user: Option<String>,
    /// Only the latest this many.
    #[arg(long)]
    pub limit: Option<usize>,
}

/// The audit trail of `config` (`query.audit`), which the query service and the
/// transform write to.
pub fn open(
    config: &TechmonConfig,
) -> Result<techmon_service::audit::AuditLog, techmon_service::ServiceError> {
    techmon_service::audit::AuditLog::open(&config.query.audit, config.query.audit_retention_days)
}

pub fn print(config: &TechmonConfig, options: &AuditOptions) -> anyhow::Result<()> {
    let filter = techmon_service::audit::AuditFilter {
        since: options.since,
        user: options.user.clone(),
        limit: options.limit,
    };
    let folder = &config.query.audit;
    let entries = techmon_service::audit::read(folder, &filter)
        .with_context(|| format!("reading the audit trail in {}", folder.display()))?;
    for entry in &entries {
        println!("{}", serde_json::to_string(entry)?);
    }
    eprintln!("{} entries", entries.len());
    Ok(())
}
