//! The audit trail: who asked what of the research data, on which table versions,
//! and what came of it; every query, KPI request, export, export download, reference
//! import, refused token and reading of the trail itself (the query service), and
//! every erasure after a withdrawal and every withholding after consent was taken
//! back (the transform).
//!
//! Append-only files of one JSON line per entry, a file per day
//! (`audit-YYYY-MM-DD.ndjson`, UTC), in a folder of the query service's own that no
//! query reaches (the lake holds no trace of it). An entry is written, and synced,
//! before the answer goes out: an answer whose entry cannot be written is not given.
//! Files older than the retention are deleted when a day's first entry is written.
//! Tokens are never written, not even their hashes.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::ServiceError;

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// `POST /v1/sql` (also the dashboard's console).
    Query,
    /// `GET /v1/kpis`.
    Kpis,
    /// `GET /v1/effects`.
    Effects,
    /// `GET /v1/tables`.
    Tables,
    /// `GET /v1/me`.
    Me,
    /// `POST /v1/exports`.
    Export,
    /// `GET /v1/exports/{id}` or its provenance.
    ExportDownload,
    /// `POST /v1/reference/duo`.
    Import,
    /// A change to the hubs or the KPI targets (`POST /v1/reference/hubs`, …).
    RegistryChange,
    /// `GET /v1/audit`.
    AuditRead,
    /// A request without a known token.
    TokenRefused,
    /// A known token without the role the request needs.
    Forbidden,
    /// A withdrawal's rows erased from the lake, and the person keys of its sealed
    /// fields destroyed (the transform).
    Erasure,
    /// Consent taken back: a person's rows withheld from the research tables.
    Withhold,
    /// `POST /v1/events` or `POST /v1/feeds/{kind}` by a hub.
    Push,
}

/// One entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    pub action: AuditAction,
    /// The user, when the token was known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The SQL asked (queries and exports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// The table versions the answer was computed from (`techmon-table-versions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_versions: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Bytes of the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    pub duration_ms: u64,
    /// `ok`, or the error code of the answer.
    pub outcome: String,
    /// What else identifies the action: an export id, an import's source, table and
    /// school year, the path of a refused request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl AuditEntry {
    /// An entry of `action` now, with the rest to fill in.
    pub fn new(action: AuditAction, started: std::time::Instant) -> Self {
        Self {
            at: Utc::now(),
            action,
            user: None,
            role: None,
            sql: None,
            table_versions: None,
            rows: None,
            bytes: None,
            duration_ms: started.elapsed().as_millis() as u64,
            outcome: "ok".into(),
            detail: None,
        }
    }
}

/// The trail's folder, written by one service.
#[derive(Debug)]
pub struct AuditLog {
    folder: PathBuf,
    retention_days: u32,
    /// The day of the last entry written: a new day prunes old files.
    day: Mutex<Option<NaiveDate>>,
}

fn file_of(folder: &Path, day: NaiveDate) -> PathBuf {
    folder.join(format!("audit-{}.ndjson", day.format("%Y-%m-%d")))
}

/// The day a trail file holds, from its name.
fn day_of(path: &Path) -> Option<NaiveDate> {
    let name = path.file_name()?.to_str()?;
    let day = name.strip_prefix("audit-")?.strip_suffix(".ndjson")?;
    NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()
}

impl AuditLog {
    /// Opens (creates) the folder, readable by its owner only.
    pub fn open(folder: &Path, retention_days: u32) -> Result<Self, ServiceError> {
        let io = |source| ServiceError::Audit {
            path: folder.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(folder).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(folder, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
        Ok(Self {
            folder: folder.to_path_buf(),
            retention_days,
            day: Mutex::new(None),
        })
    }

    /// The folder the trail is in.
    pub fn folder(&self) -> &Path {
        &self.folder
    }

    /// Appends an entry and syncs it to disk.
    pub fn record(&self, entry: &AuditEntry) -> Result<(), ServiceError> {
        let day = entry.at.date_naive();
        let path = file_of(&self.folder, day);
        let io = |source| ServiceError::Audit {
            path: path.clone(),
            source,
        };
        let mut line = serde_json::to_vec(entry).map_err(|e| io(e.into()))?;
        line.push(b'\n');
        // One writer at a time: each line whole, in order.
        let mut last_day = self.day.lock().unwrap_or_else(|e| e.into_inner());
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(io)?;
        file.write_all(&line).map_err(io)?;
        file.sync_data().map_err(io)?;
        if *last_day != Some(day) {
            *last_day = Some(day);
            self.prune(day)?;
        }
        Ok(())
    }

    /// Deletes the files of days before the retention.
    fn prune(&self, today: NaiveDate) -> Result<(), ServiceError> {
        let oldest = today - chrono::Duration::days(i64::from(self.retention_days));
        let io = |source| ServiceError::Audit {
            path: self.folder.clone(),
            source,
        };
        for entry in std::fs::read_dir(&self.folder).map_err(io)? {
            let path = entry.map_err(io)?.path();
            if day_of(&path).is_some_and(|day| day < oldest) {
                std::fs::remove_file(&path).map_err(io)?;
            }
        }
        Ok(())
    }
}

/// Which entries to read.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditFilter {
    /// From this day on (UTC, `2024-10-01`).
    #[param(value_type = Option<String>, format = Date)]
    pub since: Option<NaiveDate>,
    /// One user's.
    pub user: Option<String>,
    /// At most this many, the latest.
    pub limit: Option<usize>,
}

/// The entries of the trail in `folder`, oldest first.
pub fn read(folder: &Path, filter: &AuditFilter) -> Result<Vec<AuditEntry>, ServiceError> {
    let io = |source| ServiceError::Audit {
        path: folder.to_path_buf(),
        source,
    };
    let mut files: Vec<(NaiveDate, PathBuf)> = std::fs::read_dir(folder)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| Some((day_of(&p)?, p)))
        .filter(|(day, _)| filter.since.is_none_or(|since| *day >= since))
        .collect();
    files.sort();
    let mut entries = Vec::new();
    for (_, path) in files {
        let text = std::fs::read_to_string(&path).map_err(|source| ServiceError::Audit {
            path: path.clone(),
            source,
        })?;
        // A line cut short by a crash is not an entry.
        entries.extend(
            text.lines()
                .filter_map(|line| serde_json::from_str::<AuditEntry>(line).ok())
                .filter(|e| {
                    filter
                        .user
                        .as_ref()
                        .is_none_or(|u| e.user.as_ref() == Some(u))
                }),
        );
    }
    if let Some(limit) = filter.limit {
        let skip = entries.len().saturating_sub(limit);
        entries.drain(..skip);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_appended_read_back_filtered_and_old_days_pruned() {
        let dir = tempfile::tempdir().expect("tempdir");
        let folder = dir.path().join("audit");
        let log = AuditLog::open(&folder, 30).expect("open");
        // A file of long ago, and one within the retention.
        let old = file_of(
            &folder,
            Utc::now().date_naive() - chrono::Duration::days(31),
        );
        let recent = file_of(
            &folder,
            Utc::now().date_naive() - chrono::Duration::days(29),
        );
        std::fs::write(&old, "").expect("old file");
        std::fs::write(&recent, "{\"cut short\n").expect("recent file");
        let started = std::time::Instant::now();
        for user in ["rita", "ada", "rita"] {
            let mut entry = AuditEntry::new(AuditAction::Query, started);
            entry.user = Some(user.into());
            entry.sql = Some("SELECT 1".into());
            log.record(&entry).expect("record");
        }
        assert!(!old.exists(), "pruned");
        assert!(recent.exists());
        let all = read(&folder, &AuditFilter::default()).expect("read");
        assert_eq!(all.len(), 3);
        let rita = read(
            &folder,
            &AuditFilter {
                user: Some("rita".into()),
                ..AuditFilter::default()
            },
        )
        .expect("read");
        assert_eq!(rita.len(), 2);
        let last = read(
            &folder,
            &AuditFilter {
                limit: Some(1),
                ..AuditFilter::default()
            },
        )
        .expect("read");
        assert_eq!(last[0].user.as_deref(), Some("rita"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&folder)
                .expect("folder")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700);
        }
    }
}
