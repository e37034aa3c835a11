//! Who may ask what of the research services, and the trail of it: users with roles
//! and bearer tokens, and every request's audit entry, written before its answer.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;

use crate::audit::{AuditAction, AuditEntry, AuditLog};
use crate::{ApiError, IssuedTokens, ServiceError, TokenMap};

/// What a user may do; each role may do what the ones before it may, but for a
/// hub's, whose SQL sees its own rows only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A hub, with the token it pushes with: SQL and KPIs over its own rows (every
    /// lake table seen through its `hub_id`), and its KPI report with the region's.
    Hub,
    /// SQL over the research lake and the reference tables.
    Researcher,
    /// And exports with disclosure control.
    Analyst,
    /// And reference data imports.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hub => "hub",
            Self::Researcher => "researcher",
            Self::Analyst => "analyst",
            Self::Admin => "admin",
        }
    }
}

/// A user of the research services (`[[query.users]]`), or a hub asking with its
/// push token.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    pub role: Role,
    pub token_sha256: String,
    /// The hub a hub's token is for (never configured here: hubs are `ingest.hubs`).
    #[serde(skip)]
    pub hub: Option<String>,
    /// A researcher's grant of row-level access to pseudonymised data, through this
    /// day (UTC); every use is in the audit trail.
    #[serde(default)]
    pub microdata_until: Option<chrono::NaiveDate>,
}

impl User {
    /// Hub `hub_id`, asking with the token whose SHA-256 is `token_sha256`.
    pub fn hub(hub_id: &str, token_sha256: &str) -> Self {
        Self {
            name: format!("hub:{hub_id}"),
            role: Role::Hub,
            token_sha256: token_sha256.to_string(),
            hub: Some(hub_id.to_string()),
            microdata_until: None,
        }
    }

    /// Whether a microdata grant holds `today`.
    pub fn microdata(&self, today: chrono::NaiveDate) -> bool {
        self.microdata_until.is_some_and(|until| today <= until)
    }
}

impl fmt::Display for User {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// The users and the audit trail every route of the research services goes through.
#[derive(Clone)]
pub struct Access {
    users: Arc<TokenMap<User>>,
    /// Tokens issued to hubs at run time, which ask as hubs do with a configured one.
    issued: Option<Arc<dyn IssuedTokens>>,
    audit: Arc<AuditLog>,
}

/// An authorized request: who asked, and the audit entry its answer leaves
/// ([`Access::audited`]).
pub struct Asked<'a> {
    pub user: Cow<'a, User>,
    pub entry: AuditEntry,
    pub started: Instant,
}

impl Access {
    /// `users` with their tokens' hashes; a malformed hash names its user.
    pub fn new(users: &[User], audit: AuditLog) -> Result<Self, ServiceError> {
        let users =
            TokenMap::from_hashes(users.iter().map(|u| (u.token_sha256.as_str(), u.clone())))
                .map_err(|user| ServiceError::BadUserTokenHash { user })?;
        Ok(Self {
            users: Arc::new(users),
            issued: None,
            audit: Arc::new(audit),
        })
    }

    /// These users and the hubs whose tokens `issued` holds, read at every request.
    pub fn with_issued_tokens(mut self, issued: Arc<dyn IssuedTokens>) -> Self {
        self.issued = Some(issued);
        self
    }

    /// The hub a token issued at run time is for, as a user.
    fn issued_to(&self, token: &str) -> Option<Cow<'static, User>> {
        let hash = crate::token_sha256(token.trim());
        let hub = self.issued.as_ref()?.hub_of_token(&hash)?;
        Some(Cow::Owned(User::hub(&hub, &hash)))
    }

    pub fn audit(&self) -> &AuditLog {
        &self.audit
    }

    /// The user of a request of `action`, if their role is at least `needed`; a
    /// refusal is in the audit trail.
    pub fn authorize(
        &self,
        headers: &HeaderMap,
        needed: Role,
        action: AuditAction,
    ) -> Result<Asked<'_>, ApiError> {
        let holder = match self.users.authenticate(headers) {
            Ok(user) => Ok(Cow::Borrowed(user)),
            Err(unknown) => crate::bearer(headers)
                .and_then(|token| self.issued_to(token))
                .ok_or(unknown),
        };
        self.authorize_holder(holder, needed, action)
    }

    /// [`Access::authorize`] for a token that comes otherwise than as a bearer token
    /// (the PostgreSQL endpoint's password).
    pub fn authorize_token(
        &self,
        token: &str,
        needed: Role,
        action: AuditAction,
    ) -> Result<Asked<'_>, ApiError> {
        let holder = match self.users.holder(token) {
            Ok(user) => Ok(Cow::Borrowed(user)),
            Err(unknown) => self.issued_to(token).ok_or(unknown),
        };
        self.authorize_holder(holder, needed, action)
    }

    fn authorize_holder<'a>(
        &self,
        holder: Result<Cow<'a, User>, ApiError>,
        needed: Role,
        action: AuditAction,
    ) -> Result<Asked<'a>, ApiError> {
        let started = Instant::now();
        let refused = |refusal: AuditAction, user: Option<&User>, error: ApiError| {
            let mut entry = AuditEntry::new(refusal, started);
            entry.user = user.map(|u| u.name.clone());
            entry.role = user.map(|u| u.role.as_str().to_string());
            entry.outcome = error.code.to_string();
            entry.detail = Some(format!("{action:?}"));
            self.record(&entry)?;
            Err(error)
        };
        let user = match holder {
            Ok(user) => user,
            Err(error) => return refused(AuditAction::TokenRefused, None, error),
        };
        // A hub may ask what a researcher may, of its own rows.
        let hub_asks = user.role == Role::Hub && needed == Role::Researcher;
        if user.role < needed && !hub_asks {
            let error = ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "this needs the {} role; yours is {}",
                    needed.as_str(),
                    user.role.as_str()
                ),
            );
            return refused(AuditAction::Forbidden, Some(&user), error);
        }
        Ok(Asked {
            user,
            entry: AuditEntry::new(action, started),
            started,
        })
    }

    /// Writes an entry; a request whose entry cannot be written gets no answer.
    pub fn record(&self, entry: &AuditEntry) -> Result<(), ApiError> {
        self.audit.record(entry).map_err(|error| {
            let path = match &error {
                ServiceError::Audit { path, .. } => Some(path.clone()),
                _ => None,
            };
            tracing::error!(%error, ?path, "the audit trail cannot be written");
            ApiError::unavailable(5, "audit_unavailable", error.to_string())
        })
    }

    /// What an extractor made of the request, taken after the token was checked; a
    /// request it refused is recorded as answered with that refusal.
    pub fn parsed<'a, T, Refusal: Into<ApiError>>(
        &self,
        asked: Asked<'a>,
        extracted: Result<T, Refusal>,
    ) -> Result<(Asked<'a>, T), ApiError> {
        match extracted {
            Ok(value) => Ok((asked, value)),
            Err(refusal) => self.audited(asked, Err(refusal.into())),
        }
    }

    /// Records what was asked (its entry filled in) and how it ended, then gives the
    /// answer, or the error.
    pub fn audited<T>(&self, asked: Asked, result: Result<T, ApiError>) -> Result<T, ApiError> {
        let Asked {
            user,
            mut entry,
            started,
        } = asked;
        entry.user = Some(user.name.clone());
        entry.role = Some(user.role.as_str().to_string());
        entry.duration_ms = started.elapsed().as_millis() as u64;
        if let Err(error) = &result {
            entry.outcome = error.code.to_string();
        }
        self.record(&entry)?;
        result
    }
}
