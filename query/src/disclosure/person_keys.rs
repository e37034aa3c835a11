//! Each person's keys for output control, derived from the pseudonym with a secret of
//! the query service (in `query.output_control`, as private as the audit trail): a 64-bit hash for the
//! differencing sketches, and the Cell Key Method's record key. Both stay the same
//! across restarts, so what was released before a restart still counts after it, and
//! a cell's noise never changes.

use std::path::Path;

use sha2::{Digest, Sha256};

/// The secret the keys are derived with.
#[derive(Debug, Clone)]
pub struct PersonKeys {
    secret: [u8; 32],
}

/// One person's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersonKey {
    /// For the differencing sketches.
    pub hash: u64,
    /// The Cell Key Method's record key, 0 to 255.
    pub record: u8,
}

impl PersonKeys {
    /// The secret in `folder`, made on first use.
    pub fn open(folder: &Path) -> std::io::Result<Self> {
        let path = folder.join("person-keys.secret");
        let secret = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(folder)?;
                let bytes: [u8; 32] = rand::random();
                write_private(&path, &bytes)?;
                bytes.to_vec()
            }
            Err(e) => return Err(e),
        };
        let secret: [u8; 32] = secret.try_into().map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} does not hold 32 bytes", path.display()),
            )
        })?;
        Ok(Self { secret })
    }

    /// The keys of the person of `pseudonym`.
    pub fn key(&self, pseudonym: &str) -> PersonKey {
        let mut hasher = Sha256::new();
        hasher.update(self.secret);
        hasher.update(pseudonym.as_bytes());
        let digest = hasher.finalize();
        let mut hash = [0u8; 8];
        hash.copy_from_slice(&digest[..8]);
        PersonKey {
            hash: u64::from_le_bytes(hash),
            record: digest[8],
        }
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_stay_with_the_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = PersonKeys::open(dir.path()).expect("secret made");
        let again = PersonKeys::open(dir.path()).expect("secret read");
        assert_eq!(keys.key("abc"), again.key("abc"));
        let other = PersonKeys::open(&dir.path().join("other")).expect("another secret");
        let differ = (0..64)
            .filter(|n| keys.key(&n.to_string()).record != other.key(&n.to_string()).record)
            .count();
        assert!(
            differ > 48,
            "another secret gives other keys ({differ} of 64 differ)"
        );
        assert_ne!(keys.key("abc").hash, other.key("abc").hash);
    }
}
