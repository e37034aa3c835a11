//! The Cell Key Method (as CBS applied it to the 2021 census tables): each person has
//! a fixed record key, a number from 0 to 255 derived from their pseudonym with a
//! secret of the service; a cell's key is the sum of its persons' record keys modulo
//! 256, and the noise added to its count is looked up by that key. The same persons
//! always give the same noise, however the question is put, so asking again and
//! averaging does not remove it; a cell one person larger has an unrelated key.

use std::path::Path;

use sha2::{Digest, Sha256};

/// Noise by cell key: -2, -1, 0, +1, +2 with chances 13, 38, 154, 38 and 13 in 256
/// (about 5%, 15%, 60%, 15%, 5%): unbiased, and at most 2 off.
const NOISE: [(u16, i64); 5] = [(13, -2), (51, -1), (205, 0), (243, 1), (256, 2)];

/// The secret record keys are derived with; kept beside the audit trail.
#[derive(Debug, Clone)]
pub struct CellKeys {
    secret: [u8; 32],
}

impl CellKeys {
    /// The secret in `folder`, made on first use.
    pub fn open(folder: &Path) -> std::io::Result<Self> {
        let path = folder.join("cell-key.secret");
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

    /// A person's record key.
    pub fn record_key(&self, pseudonym: &str) -> u8 {
        let mut hasher = Sha256::new();
        hasher.update(self.secret);
        hasher.update(pseudonym.as_bytes());
        hasher.finalize()[0]
    }
}

/// The noise of a cell whose persons' record keys add up to `record_keys`.
pub fn noise(record_keys: u64) -> i64 {
    let cell_key = (record_keys % 256) as u16;
    NOISE
        .iter()
        .find(|(below, _)| cell_key < *below)
        .map_or(0, |(_, noise)| *noise)
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
    fn the_noise_is_unbiased_and_small() {
        let noises: Vec<i64> = (0..256).map(noise).collect();
        assert_eq!(noises.iter().sum::<i64>(), 0);
        assert!(noises.iter().all(|n| n.abs() <= 2));
        assert_eq!(noises.iter().filter(|n| **n == 0).count(), 154);
    }

    #[test]
    fn record_keys_stay_with_the_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = CellKeys::open(dir.path()).expect("secret made");
        let again = CellKeys::open(dir.path()).expect("secret read");
        assert_eq!(keys.record_key("abc"), again.record_key("abc"));
        let other = CellKeys::open(&dir.path().join("other")).expect("another secret");
        let differ = (0..64)
            .filter(|n| keys.record_key(&n.to_string()) != other.record_key(&n.to_string()))
            .count();
        assert!(
            differ > 48,
            "another secret gives other keys ({differ} of 64 differ)"
        );
    }
}
