//! Bearer tokens, of hubs and of query users. Only their
//! SHA-256 is configured, so a leaked configuration file does not leak tokens; tokens
//! are long random strings, for which a fast hash suffices.

use std::collections::HashMap;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{ApiError, ServiceError};

/// One hub that may push events, with the SHA-256 (hex) of its token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubCredential {
    pub hub_id: String,
    pub token_sha256: String,
}

/// Token hash → whoever holds the token (a hub id, or a query user).
#[derive(Debug, Clone)]
pub struct TokenMap<T>(HashMap<[u8; 32], T>);

/// The hubs' tokens.
pub type HubTokens = TokenMap<String>;

impl HubTokens {
    pub fn new(hubs: &[HubCredential]) -> Result<Self, ServiceError> {
        let mut seen = std::collections::HashSet::new();
        if let Some(hub) = hubs.iter().find(|h| !seen.insert(h.hub_id.as_str())) {
            return Err(ServiceError::DuplicateHub {
                hub_id: hub.hub_id.clone(),
            });
        }
        TokenMap::from_hashes(
            hubs.iter()
                .map(|h| (h.token_sha256.as_str(), h.hub_id.clone())),
        )
        .map_err(|hub_id| ServiceError::BadTokenHash { hub_id })
    }
}

impl<T: Clone + ToString> TokenMap<T> {
    /// From (hex SHA-256 of a token, holder) pairs; a malformed hash gives back its
    /// holder, for the error message.
    pub fn from_hashes<'a>(
        entries: impl IntoIterator<Item = (&'a str, T)>,
    ) -> Result<Self, String> {
        let mut tokens = HashMap::new();
        for (token_sha256, holder) in entries {
            let hash: [u8; 32] = hex::decode(token_sha256)
                .ok()
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or_else(|| holder.to_string())?;
            tokens.insert(hash, holder);
        }
        Ok(Self(tokens))
    }

    /// Whoever holds the bearer token the request carries.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<&T, ApiError> {
        self.holder(bearer(headers).ok_or_else(ApiError::unauthorized)?)
    }

    /// Whoever holds `token` (as a protocol without bearer tokens carries it: the
    /// PostgreSQL endpoint's password).
    pub fn holder(&self, token: &str) -> Result<&T, ApiError> {
        let token = token.trim();
        if token.is_empty() {
            return Err(ApiError::unauthorized());
        }
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.0.get(&hash).ok_or_else(ApiError::unauthorized)
    }
}

/// The bearer token a request carries.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
}

/// A new random token, and its hex SHA-256 (what is kept of it).
pub fn new_token() -> (String, String) {
    let token = hex::encode(rand::random::<[u8; 32]>());
    let hash = token_sha256(&token);
    (token, hash)
}

/// Tokens issued to hubs while techmon runs, as the registry holds them (by their
/// SHA-256 only).
pub trait IssuedTokens: Send + Sync + std::fmt::Debug {
    /// The hub a token issued at run time belongs to, by the token's SHA-256 (hex).
    fn hub_of_token(&self, token_sha256: &str) -> Option<String>;
}

/// The hex SHA-256 of a token, as configured in `token_sha256`.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
