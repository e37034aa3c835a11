//! Hub tokens. Only their SHA-256 is configured, so a leaked configuration file does
//! not leak tokens; tokens are long random strings, for which a fast hash suffices.

use std::collections::HashMap;

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, IngestError};

/// One hub that may push events, with the SHA-256 (hex) of its token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HubCredential {
    pub hub_id: String,
    pub token_sha256: String,
}

/// Token hash → hub id.
#[derive(Debug, Clone, Default)]
pub struct HubTokens(HashMap<[u8; 32], String>);

impl HubTokens {
    pub fn new(hubs: &[HubCredential]) -> Result<Self, IngestError> {
        let mut tokens = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        for hub in hubs {
            if !seen.insert(hub.hub_id.as_str()) {
                return Err(IngestError::DuplicateHub {
                    hub_id: hub.hub_id.clone(),
                });
            }
            let hash: [u8; 32] = hex::decode(&hub.token_sha256)
                .ok()
                .and_then(|bytes| bytes.try_into().ok())
                .ok_or_else(|| IngestError::BadTokenHash {
                    hub_id: hub.hub_id.clone(),
                })?;
            tokens.insert(hash, hub.hub_id.clone());
        }
        Ok(Self(tokens))
    }

    /// The hub whose token the request carries.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<&str, ApiError> {
        let token = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(ApiError::unauthorized)?;
        let hash: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.0
            .get(&hash)
            .map(String::as_str)
            .ok_or_else(ApiError::unauthorized)
    }
}

/// The hex SHA-256 of a token, as configured in `token_sha256`.
pub fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
