//! Opening the `redb` files of techmon (the embedded log, Kafka's event-id index, the
//! transform's state) so that a crash cannot leave one half-created.
//!
//! redb writes a new file's header in steps; a process killed between them leaves a
//! file that every later open refuses ("magic number mismatch"), so the service could
//! never start again. A new database is therefore made under a temporary name and
//! linked into place once whole: the path holds a complete database or nothing.

use std::path::{Path, PathBuf};

use redb::{Builder, Database, StorageError};

/// Opens the database at `path`, creating it (and its directory) when missing, with
/// `cache_bytes` of page cache (redb's default when `None`).
pub fn open_or_create(path: &Path, cache_bytes: Option<usize>) -> Result<Database, redb::Error> {
    let builder = || {
        let mut builder = Builder::new();
        if let Some(bytes) = cache_bytes {
            builder.set_cache_size(bytes);
        }
        builder
    };
    if path.exists() {
        return Ok(builder().open(path)?);
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(StorageError::Io)?;
    let creating = creating_path(path);
    // Left by a crash during an earlier creation: never linked, so nothing in it.
    match std::fs::remove_file(&creating) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(StorageError::Io(e).into());
        }
        _ => {}
    }
    let db = builder().create(&creating)?;
    // A link, unlike a rename, fails when another process made the file meanwhile.
    let linked = std::fs::hard_link(&creating, path);
    std::fs::remove_file(&creating).map_err(StorageError::Io)?;
    match linked {
        Ok(()) => {
            // The new name must survive a power loss, or the database would vanish.
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(StorageError::Io)?;
            Ok(db)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            drop(db);
            Ok(builder().open(path)?)
        }
        Err(e) => Err(StorageError::Io(e).into()),
    }
}

fn creating_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".creating");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use redb::ReadableDatabase;

    use super::*;

    const TABLE: redb::TableDefinition<&str, u64> = redb::TableDefinition::new("t");

    #[test]
    fn a_creation_cut_short_by_a_crash_does_not_stop_the_next_open() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested/state.redb");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
        // What a kill during redb's header write leaves behind.
        std::fs::write(creating_path(&path), b"redb\x1a\x0a\xa9\x0d\x0a").expect("leftover");

        let db = open_or_create(&path, Some(1 << 20)).expect("created");
        let txn = db.begin_write().expect("write");
        txn.open_table(TABLE)
            .expect("table")
            .insert("k", 7)
            .expect("insert");
        txn.commit().expect("commit");
        drop(db);

        assert!(!creating_path(&path).exists(), "the leftover is gone");
        let db = open_or_create(&path, None).expect("reopened");
        let read = db.begin_read().expect("read");
        let value = read
            .open_table(TABLE)
            .expect("table")
            .get("k")
            .expect("get");
        assert_eq!(value.map(|v| v.value()), Some(7));
    }
}
