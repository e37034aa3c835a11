//! Pseudonymisation: keyed HMAC-SHA-256 pseudonyms and generalisation.
//!
//! A participant's pseudonym is the HMAC of a normalised identity under a secret key.
//! The identity is the e-mail address when the hub has one (lower-cased, trimmed), else
//! name and birth date, else the hub's own reference — so the same person registered
//! at two hubs gets one pseudonym where the hubs know the same e-mail or name and birth
//! date. Without the key a pseudonym cannot be recomputed from an identity (unlike a
//! plain or salted hash); another key gives unlinkable pseudonyms.

use std::path::Path;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use crate::TransformError;

/// The secret key and its id (the id, never the key, is stored with the data).
pub struct PseudonymKey {
    id: String,
    secret: Vec<u8>,
}

/// Never prints the secret.
impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PseudonymKey")
            .field("id", &self.id)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Keys shorter than this are refused: HMAC is only as strong as its key.
const MIN_KEY_BYTES: usize = 32;

impl PseudonymKey {
    pub fn new(id: impl Into<String>, secret: impl Into<Vec<u8>>) -> Result<Self, TransformError> {
        let id = id.into();
        let secret = secret.into();
        if secret.len() < MIN_KEY_BYTES {
            return Err(TransformError::WeakPseudonymKey {
                key_id: id,
                min_bytes: MIN_KEY_BYTES,
            });
        }
        Ok(Self { id, secret })
    }

    /// Reads the key from a file (its bytes, trailing newline removed), creating the
    /// file with a random key (readable by the owner only) when `create` and missing.
    pub fn from_file(
        id: impl Into<String>,
        path: &Path,
        create: bool,
    ) -> Result<Self, TransformError> {
        let io = |source| TransformError::PseudonymKeyFile {
            path: path.to_path_buf(),
            source,
        };
        if create && !path.exists() {
            let key = hex::encode(rand::random::<[u8; 32]>());
            write_private(path, key.as_bytes()).map_err(io)?;
            tracing::info!(path = %path.display(), "created a new pseudonym key");
        }
        let bytes = std::fs::read(path).map_err(io)?;
        let trimmed = bytes.strip_suffix(b"\n").unwrap_or(&bytes);
        Self::new(id, trimmed.to_vec())
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The pseudonym of an identity in a namespace (participants, ambassadors, …), as
    /// 64 hexadecimal characters.
    pub fn pseudonym(&self, namespace: &str, identity: &str) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.secret)
            .expect("HMAC takes keys of any length");
        mac.update(namespace.as_bytes());
        mac.update(&[0]);
        mac.update(identity.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// The pseudonym of a participant from what the hub registered.
    pub fn participant(&self, hub_id: &str, person: Person<'_>) -> String {
        self.pseudonym("participant", &person.identity(hub_id))
    }
}

/// What a hub knows of a person, for the identity behind a pseudonym.
#[derive(Clone, Copy)]
pub struct Person<'a> {
    pub reference: &'a str,
    pub email: Option<&'a str>,
    pub name: Option<&'a str>,
    pub birth_date: Option<chrono::NaiveDate>,
}

impl Person<'_> {
    fn identity(&self, hub_id: &str) -> String {
        if let Some(email) = self
            .email
            .map(|e| e.trim().to_lowercase())
            .filter(|e| !e.is_empty())
        {
            return format!("email:{email}");
        }
        if let (Some(name), Some(born)) = (self.name, self.birth_date) {
            let name: String = name
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase();
            return format!("name-born:{name}:{born}");
        }
        format!("hub-ref:{hub_id}:{}", self.reference)
    }
}

/// Writes a new file readable by its owner only, whole or not at all (see
/// [`techmon_eventlog::files::create_whole`]): a kill during the write must not leave
/// a short key. A key another process made meanwhile is kept, never replaced.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    techmon_eventlog::files::create_whole(path, |creating| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(creating)?;
        file.write_all(bytes)?;
        file.sync_all()
    })?;
    Ok(())
}

/// Birth date → birth year.
pub fn birth_year(date: chrono::NaiveDate) -> i32 {
    chrono::Datelike::year(&date)
}

/// Postcode (`7411 AB`) → PC4 (`7411`).
pub fn pc4(postcode: &str) -> Option<String> {
    let digits: String = postcode
        .chars()
        .filter(char::is_ascii_digit)
        .take(4)
        .collect();
    (digits.len() == 4).then_some(digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    fn key(secret: &str) -> PseudonymKey {
        PseudonymKey::new("k1", format!("{secret:0>32}")).expect("key")
    }

    fn person<'a>(reference: &'a str, email: Option<&'a str>) -> Person<'a> {
        Person {
            reference,
            email,
            name: Some("Anna de Vries"),
            birth_date: chrono::NaiveDate::from_ymd_opt(2012, 5, 4),
        }
    }

    /// Fixed key and identities against pseudonyms worked out apart from this code
    /// (Python's `hmac.new(key, namespace + b"\\0" + identity, hashlib.sha256)`), so a
    /// change of the identity rule or of the MAC cannot pass unnoticed: every
    /// pseudonym in a lake would change with it.
    #[test]
    fn known_answer_vectors() {
        let k =
            PseudonymKey::new("k1", b"techmon known-answer vector key!!".to_vec()).expect("key");
        let anna = |email, name| Person {
            reference: "TD-P-000001",
            email,
            name,
            birth_date: chrono::NaiveDate::from_ymd_opt(2012, 3, 4),
        };
        assert_eq!(
            k.participant(
                "tec-deventer",
                anna(Some(" Anna.DeVries@Example.org "), Some("Anna"))
            ),
            "fec405cfc0ab3323d95dd4bb70b89eddba73bb3e09e85c2db1db9b24290ae5a2"
        );
        assert_eq!(
            k.participant("tec-deventer", anna(None, Some("Anna  de   Vries"))),
            "c94c20df5057926aaaff7e4d7f46e650c8ce452cd7802ce66c5cee980a71dd86"
        );
        assert_eq!(
            k.participant("tec-deventer", anna(Some("  "), None)),
            "48d60b9369f80e1fa41750138059bda1e64a1bff7125e6f60727be8bc6262e96"
        );
        assert_eq!(
            k.pseudonym("ambassador", "tec-deventer:AMB-1"),
            "068c0924f9049ee22109bf52b2232d0d40750c03dd87d189ca95ba9f1d632e36"
        );
    }

    #[test]
    fn the_same_person_gets_one_pseudonym_across_hubs_and_events() {
        let k = key("a");
        let at_deventer = k.participant("tec-deventer", person("p-1", Some("Anna@Example.org ")));
        let at_epe = k.participant(
            "techniekbrouwerij",
            person("x-77", Some("anna@example.org")),
        );
        assert_eq!(at_deventer, at_epe);
        // Without e-mail, name and birth date link the two.
        let no_mail_1 = k.participant("tec-deventer", person("p-1", None));
        let no_mail_2 = k.participant(
            "newtechpark",
            Person {
                name: Some(" anna  de VRIES"),
                ..person("q", None)
            },
        );
        assert_eq!(no_mail_1, no_mail_2);
        // With nothing but a reference, the pseudonym is per hub.
        let bare = |hub| {
            k.participant(
                hub,
                Person {
                    reference: "p-1",
                    email: None,
                    name: None,
                    birth_date: None,
                },
            )
        };
        assert_ne!(bare("tec-deventer"), bare("newtechpark"));
        assert_eq!(at_deventer.len(), 64);
    }

    #[test]
    fn another_key_gives_unlinkable_pseudonyms_and_no_plain_hash_matches() {
        let identity = "email:anna@example.org";
        let a = key("a").pseudonym("participant", identity);
        let b = key("b").pseudonym("participant", identity);
        assert_ne!(a, b);
        let plain = hex::encode(Sha256::digest(identity.as_bytes()));
        let salted = hex::encode(Sha256::digest(
            format!("participant\0{identity}").as_bytes(),
        ));
        let key_prefixed =
            hex::encode(Sha256::digest(format!("{:0>32}{identity}", "a").as_bytes()));
        for guess in [plain, salted, key_prefixed] {
            assert_ne!(a, guess);
        }
    }

    #[test]
    fn weak_keys_are_refused_and_keys_never_print() {
        assert!(PseudonymKey::new("k", b"short".to_vec()).is_err());
        let k = key("very-secret-value");
        assert!(!format!("{k:?}").contains("very-secret"));
    }

    #[test]
    fn generalisation() {
        assert_eq!(pc4("7411 AB").as_deref(), Some("7411"));
        assert_eq!(pc4("74"), None);
        assert_eq!(
            birth_year(chrono::NaiveDate::from_ymd_opt(2012, 5, 4).expect("date")),
            2012
        );
    }

    #[test]
    fn a_key_file_is_created_once_and_read_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("raw/pseudonym.key");
        // A short key left by a kill during an earlier creation.
        let leftover = dir.path().join("raw/pseudonym.key.creating");
        std::fs::create_dir_all(dir.path().join("raw")).expect("dir");
        std::fs::write(&leftover, "0123").expect("leftover");
        let first = PseudonymKey::from_file("k1", &path, true).expect("create");
        assert!(!leftover.exists());
        assert_eq!(std::fs::read(&path).expect("key").len(), 64);
        let second = PseudonymKey::from_file("k1", &path, true).expect("read");
        assert_eq!(first.pseudonym("p", "x"), second.pseudonym("p", "x"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(
                mode & 0o077,
                0,
                "the key file is readable by its owner only"
            );
        }
        assert!(PseudonymKey::from_file("k1", &dir.path().join("missing"), false).is_err());
    }
}
