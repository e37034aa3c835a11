//! Files that a crash cannot leave half-made: techmon's `redb` files (the embedded
//! log, Kafka's event-id index, the transform's state) and the pseudonym key.
//!
//! redb writes a new file's header in steps; a process killed between them leaves a
//! file that every later open refuses ("magic number mismatch"), so the service could
//! never start again (and a cut key would be refused, or used short). A new file is
//! therefore made under a temporary name and linked into place once whole: the path
//! holds a complete file or nothing.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use redb::{Builder, Database};

/// Makes the file at `path` (and its directory): `make` writes it whole under a
/// temporary name, which is then linked to `path`. `None` when another process made
/// `path` meanwhile: a link, unlike a rename, never replaces a file.
pub fn create_whole<T, E: From<std::io::Error>>(
    path: &Path,
    make: impl FnOnce(&Path) -> Result<T, E>,
) -> Result<Option<T>, E> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let creating = creating_path(path);
    // Left by a crash during an earlier creation: never linked, so nothing in it
    // (and made again, since opening it would keep whatever permissions it has).
    match std::fs::remove_file(&creating) {
        Err(e) if e.kind() != ErrorKind::NotFound => return Err(e.into()),
        _ => {}
    }
    let made = make(&creating)?;
    let linked = std::fs::hard_link(&creating, path);
    std::fs::remove_file(&creating)?;
    match linked {
        Ok(()) => {
            // The new name must survive a power loss, or the file would vanish.
            std::fs::File::open(dir)?.sync_all()?;
            Ok(Some(made))
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Opens the database at `path`, creating it (see [`create_whole`]) when missing, with
/// `cache_bytes` of page cache (redb's default when `None`).
pub fn open_or_create_database(
    path: &Path,
    cache_bytes: Option<usize>,
) -> Result<Database, redb::Error> {
    let builder = || {
        let mut builder = Builder::new();
        if let Some(bytes) = cache_bytes {
            builder.set_cache_size(bytes);
        }
        builder
    };
    if !path.exists()
        && let Some(db) = create_whole(path, |creating| builder().create(creating))?
    {
        return Ok(db);
    }
    Ok(builder().open(path)?)
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

        let db = open_or_create_database(&path, Some(1 << 20)).expect("created");
        let txn = db.begin_write().expect("write");
        txn.open_table(TABLE)
            .expect("table")
            .insert("k", 7)
            .expect("insert");
        txn.commit().expect("commit");
        drop(db);

        assert!(!creating_path(&path).exists(), "the leftover is gone");
        let db = open_or_create_database(&path, None).expect("reopened");
        let read = db.begin_read().expect("read");
        let value = read
            .open_table(TABLE)
            .expect("table")
            .get("k")
            .expect("get");
        assert_eq!(value.map(|v| v.value()), Some(7));
    }
}
