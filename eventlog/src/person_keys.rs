//! Crypto-shredding: the personal fields of an event (name, e-mail, phone, birth
//! date, address, pupil number, free text) are sealed in the event log under a key of
//! the person's own, kept apart from the log (in the raw zone). Destroying that key
//! when the person withdraws makes every copy of those fields unreadable: the
//! embedded log, the Kafka topic and their backups keep only ciphertext, while the
//! rest of every event stays as it was, so a replay still works for everyone else.
//!
//! A key is 32 random bytes in a file of its own (readable by its owner only), named
//! by the SHA-256 of the person's subject (`participant:<hub>:<reference>`), so that
//! the folder names no one and two processes (ingest and the transform) can share it.
//! The sealed fields leave the payload; `payload.sealed` holds the key's name, a
//! nonce and the fields as a ChaCha20-Poly1305 box, bound to the event's id.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, UnboundKey};
use ring::hmac;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::LogError;

/// The field of the payload that holds the sealed fields.
pub const SEALED: &str = "sealed";

/// The folder of person keys.
#[derive(Debug, Clone)]
pub struct PersonKeys {
    dir: PathBuf,
}

/// What [`PersonKeys::unseal`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsealed {
    /// Nothing was sealed.
    Plain,
    /// The fields are back in the payload.
    Opened,
    /// The person's key is destroyed: their fields are gone for good.
    Shredded,
}

fn key_name(subject: &str) -> String {
    hex::encode(Sha256::digest(subject.as_bytes()))
}

impl PersonKeys {
    /// Opens (creates) the folder, readable by its owner only.
    pub fn open(dir: &Path) -> Result<Self, LogError> {
        let io = |source| LogError::PersonKeys {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io)?;
        }
        Ok(Self {
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The key of `name`, if it exists.
    fn read(&self, name: &str) -> Result<Option<Secret>, LogError> {
        let path = self.path(name);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes.try_into().map_err(|_| {
                LogError::PersonKeys {
                    path,
                    source: std::io::Error::other("a person key is not 32 bytes"),
                }
            })?)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(LogError::PersonKeys { path, source }),
        }
    }

    /// The key of `subject`, made now if it has none (another process may make it at
    /// the same moment: the first file wins, and both use it).
    fn key_for(&self, subject: &str) -> Result<(String, Secret), LogError> {
        let name = key_name(subject);
        if let Some(key) = self.read(&name)? {
            return Ok((name, key));
        }
        let path = self.path(&name);
        let io = |source| LogError::PersonKeys {
            path: path.clone(),
            source,
        };
        let secret: [u8; 32] = rand::random();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        // Written whole under a temporary name, then linked into place.
        let temporary = self.path(&format!("{name}.{}.new", Uuid::new_v4()));
        let mut file = options.open(&temporary).map_err(io)?;
        file.write_all(&secret)
            .and_then(|()| file.sync_all())
            .map_err(io)?;
        drop(file);
        let linked = std::fs::hard_link(&temporary, &path);
        let _ = std::fs::remove_file(&temporary);
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(LogError::PersonKeys { path, source }),
        }
        let key = self.read(&name)?.ok_or_else(|| {
            io(std::io::Error::other(
                "a person key vanished as it was made",
            ))
        })?;
        Ok((name, key))
    }

    /// Moves `fields` of the record's payload into `payload.sealed`, under the key of
    /// `subject`. Fields the payload does not have are left out.
    pub fn seal(
        &self,
        event_id: Uuid,
        record: &mut Value,
        subject: &str,
        fields: &[&str],
    ) -> Result<(), LogError> {
        let Some(payload) = record.get_mut("payload").and_then(Value::as_object_mut) else {
            return Ok(());
        };
        let taken: Map<String, Value> = fields
            .iter()
            .filter_map(|f| payload.remove(*f).map(|v| (f.to_string(), v)))
            .collect();
        if taken.is_empty() {
            return Ok(());
        }
        let (name, secret) = self.key_for(subject)?;
        let key = aead_key(&secret);
        let nonce: [u8; 12] = rand::random();
        let mut sealed = serde_json::to_vec(&taken).unwrap_or_default();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(event_id.as_bytes()),
            &mut sealed,
        )
        .map_err(|_| LogError::PersonKeys {
            path: self.path(&name),
            source: std::io::Error::other("sealing failed"),
        })?;
        payload.insert(
            SEALED.to_string(),
            serde_json::json!({"key": name, "nonce": hex::encode(nonce), "box": hex::encode(sealed)}),
        );
        Ok(())
    }

    /// Puts the sealed fields of the record's payload back, if its key still exists.
    pub fn unseal(&self, event_id: Uuid, record: &mut Value) -> Result<Unsealed, LogError> {
        let Some(payload) = record.get_mut("payload").and_then(Value::as_object_mut) else {
            return Ok(Unsealed::Plain);
        };
        let Some(sealed) = payload.remove(SEALED) else {
            return Ok(Unsealed::Plain);
        };
        let corrupt = |what: &str| LogError::SealedFields {
            event_id,
            reason: format!("its sealed personal fields are {what}"),
        };
        let text = |field: &str| sealed.get(field).and_then(Value::as_str).unwrap_or("");
        let name = text("key");
        if name.len() != 64 || !name.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(corrupt("not named by a key"));
        }
        let Some(secret) = self.read(name)? else {
            return Ok(Unsealed::Shredded);
        };
        let key = aead_key(&secret);
        let nonce: [u8; 12] = hex::decode(text("nonce"))
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| corrupt("without a nonce"))?;
        let mut sealed_box = hex::decode(text("box")).map_err(|_| corrupt("not hexadecimal"))?;
        let opened = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(event_id.as_bytes()),
                &mut sealed_box,
            )
            .map_err(|_| corrupt("not sealed for this event"))?;
        let fields: Map<String, Value> =
            serde_json::from_slice(opened).map_err(|_| corrupt("not a JSON object"))?;
        payload.extend(fields);
        Ok(Unsealed::Opened)
    }

    /// An event id for `name` keyed by the person's key (made now if they have none):
    /// without the key, no one can tell from the id which person's row it is, as one
    /// can of an id derived from the person's reference alone; once the key is
    /// destroyed, no one can.
    pub fn keyed_id(&self, subject: &str, name: &[u8]) -> Result<Uuid, LogError> {
        let (_, secret) = self.key_for(subject)?;
        // A key of its own for ids, apart from the one that seals.
        let ids = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, &secret),
            b"techmon event ids",
        );
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, ids.as_ref()), name);
        let mut bytes = [0; 16];
        bytes.copy_from_slice(&tag.as_ref()[..16]);
        Ok(uuid::Builder::from_custom_bytes(bytes).into_uuid())
    }

    /// Destroys the key of `subject`: what was sealed under it is unreadable from
    /// now on, in every copy. Destroying a key that is gone changes nothing.
    pub fn shred(&self, subject: &str) -> Result<(), LogError> {
        let path = self.path(&key_name(subject));
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(LogError::PersonKeys { path, source }),
        }
        // The removal itself must last.
        if let Ok(dir) = std::fs::File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}

/// A person key's 32 bytes.
type Secret = [u8; 32];

fn aead_key(secret: &Secret) -> LessSafeKey {
    LessSafeKey::new(
        UnboundKey::new(&CHACHA20_POLY1305, secret).expect("ChaCha20-Poly1305 takes 32 bytes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_fields_open_until_the_key_is_shredded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = PersonKeys::open(&dir.path().join("keys")).expect("keys");
        let id = Uuid::new_v4();
        let original = serde_json::json!({"event_id": id.to_string(), "payload": {
            "participant_ref": "r-1", "name": "Anna Kanarie", "email": "kanarie@example.org", "role": "pupil"}});
        let mut record = original.clone();
        keys.seal(
            id,
            &mut record,
            "participant:hub:r-1",
            &["name", "email", "phone"],
        )
        .expect("seal");
        let stored = record.to_string();
        assert!(
            !stored.contains("Kanarie") && !stored.contains("kanarie"),
            "{stored}"
        );
        assert_eq!(record["payload"]["role"], "pupil");
        // Another event's id does not open it.
        let mut elsewhere = record.clone();
        assert!(keys.unseal(Uuid::new_v4(), &mut elsewhere).is_err());
        let mut opened = record.clone();
        assert_eq!(
            keys.unseal(id, &mut opened).expect("unseal"),
            Unsealed::Opened
        );
        assert_eq!(opened, original);
        // A second event of the same person: the same key.
        let files = || {
            std::fs::read_dir(dir.path().join("keys"))
                .expect("dir")
                .count()
        };
        let mut second = original.clone();
        keys.seal(id, &mut second, "participant:hub:r-1", &["name"])
            .expect("seal");
        assert_eq!(files(), 1);
        keys.shred("participant:hub:r-1").expect("shred");
        keys.shred("participant:hub:r-1").expect("shred again");
        assert_eq!(files(), 0);
        let mut gone = record.clone();
        assert_eq!(
            keys.unseal(id, &mut gone).expect("unseal"),
            Unsealed::Shredded
        );
        let mut plain = original.clone();
        assert_eq!(keys.unseal(id, &mut plain).expect("plain"), Unsealed::Plain);
    }

    #[test]
    fn keyed_ids_are_stable_per_person_and_change_with_a_new_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let keys = PersonKeys::open(&dir.path().join("keys")).expect("keys");
        let id = |subject: &str, name: &[u8]| keys.keyed_id(subject, name).expect("id");
        let first = id("participant:hub:r-1", b"row");
        assert_eq!(first, id("participant:hub:r-1", b"row"));
        assert_eq!(first.get_version_num(), 8);
        assert_ne!(first, id("participant:hub:r-1", b"another row"));
        assert_ne!(first, id("participant:hub:r-2", b"row"));
        // Another folder of keys, or the key destroyed: another id.
        let elsewhere = PersonKeys::open(&dir.path().join("other")).expect("keys");
        assert_ne!(
            first,
            elsewhere
                .keyed_id("participant:hub:r-1", b"row")
                .expect("id")
        );
        keys.shred("participant:hub:r-1").expect("shred");
        assert_ne!(first, id("participant:hub:r-1", b"row"));
    }
}
