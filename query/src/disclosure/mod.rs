//! Output control: what may leave the server in a researcher's answer.
//!
//! Person-level tables (a row per person: participants, attendances, survey answers,
//! profile choices, ambassadors, trajectories) may reach a researcher only as
//! aggregates over at least `k` distinct persons. The rule is enforced on the query's
//! logical plan, not on its text, so it follows the data through subqueries, joins,
//! unions and windows:
//! - Each scan of a person-level table carries a hidden person column (the pseudonym,
//!   or for a row without one its event id: an anonymous row is a person of its own).
//!   Every node passes it on; a union lines the hidden columns of its inputs up.
//! - An aggregation over such rows counts the distinct persons of every group, per
//!   hidden column. Inside the query, groups of fewer than `k` are left out before
//!   anything else sees them. In the answer's own aggregation they are left out,
//!   group values and all (those would single people out), with the next smallest
//!   groups until what is left out tells nothing by subtraction from the total
//!   ([`release`]); so are groups whose persons differ by fewer than `k` from a group
//!   released to the same user before ([`differencing`]). A global aggregate keeps
//!   its one row, blanked. Counts may carry Cell Key Method noise ([`cell_key`]).
//! - An answer that still has a hidden person column is row-level: refused.
//! - Over rows of several persons only count, sum, averages and spreads are allowed,
//!   of plain columns: min, max, medians, percentiles, array_agg and string_agg give
//!   one person's value, and a value derived in the query (a CASE, a comparison,
//!   arithmetic) can single out one person within a large group. Grouping by derived
//!   values is allowed: small groups are suppressed.
//! - The pseudonym may be passed on, joined on, grouped by and counted, nothing else;
//!   a subquery condition may read person-level rows only as `pseudonym IN (SELECT
//!   pseudonym …)`; windows over person rows are row-level and only ranks, counts,
//!   sums and averages; EXPLAIN ANALYZE (its row counts) is refused.
//!
//! The named views are curated outputs: they are released whole with their person
//! counts below `k` blanked ([`cells::suppress`] per partition, see
//! [`crate::views::Release`]) and are open data after.

mod cell_key;
pub mod cells;
mod differencing;
mod person_keys;
mod plan;
mod release;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::Serialize;

pub use person_keys::PersonKeys;
pub(crate) use plan::protect;
pub(crate) use release::{ReleasedSchema, ReleasedView, release};

use crate::QueryError;
use differencing::History;

/// The output control of one answer: whether it applies, and with which `k`.
#[derive(Debug, Clone)]
pub enum Disclosure {
    /// Row-level answers (analysts, administrators, microdata grants, a hub's own rows).
    RowLevel,
    /// Aggregates over at least `min_persons` distinct persons only, none differing by
    /// fewer than that from a group `released` to the same user before; with Cell Key
    /// Method noise on the counts (see [`cell_key`]) when `cell_key_noise`.
    Aggregates {
        min_persons: u64,
        released: UserReleases,
        cell_key_noise: bool,
    },
}

/// What has been released to each user, for the differencing check: a file per user
/// in the folder given, read when the user first asks.
#[derive(Debug)]
pub struct Releases {
    keys: PersonKeys,
    folder: PathBuf,
    users: Mutex<HashMap<String, Arc<Mutex<History>>>>,
}

impl Releases {
    /// The releases kept in `folder` (`query.output_control`), with the persons' keys
    /// of its secret.
    pub fn open(folder: &Path) -> std::io::Result<Self> {
        Ok(Self {
            keys: PersonKeys::open(folder)?,
            folder: folder.join("released"),
            users: Mutex::new(HashMap::new()),
        })
    }

    /// What has been released to `user`.
    pub fn of(&self, user: &str) -> Result<UserReleases, QueryError> {
        let mut users = self.users.lock().unwrap_or_else(PoisonError::into_inner);
        let history = match users.get(user) {
            Some(history) => Arc::clone(history),
            None => {
                let file = differencing::history_file(&self.folder, user);
                let history = History::open(file.clone())
                    .map_err(|source| QueryError::Released { path: file, source })?;
                let history = Arc::new(Mutex::new(history));
                users.insert(user.to_string(), Arc::clone(&history));
                history
            }
        };
        Ok(UserReleases {
            keys: self.keys.clone(),
            history,
        })
    }
}

/// What has been released to one user.
#[derive(Debug, Clone)]
pub struct UserReleases {
    keys: PersonKeys,
    history: Arc<Mutex<History>>,
}

impl UserReleases {
    fn history(&self) -> MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What an answer left out, and why; in the answer's header and JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Suppressed {
    pub min_persons: u64,
    /// Groups left out of the answer: those of fewer than `min_persons` persons, and
    /// as many more of the smallest as keep them from following from the total.
    pub rows: usize,
    /// Values blanked in the one row of an aggregate without groups.
    pub cells: usize,
    /// Groups left out because their persons differ by fewer than `min_persons` from
    /// a group released to the same user before (counted in `rows` or `cells` too).
    pub differencing: usize,
    /// Whether the counts carry Cell Key Method noise (at most 2 off).
    #[serde(default)]
    pub cell_key_noise: bool,
    /// Views read whose cells below `min_persons` are blank (curated outputs).
    pub views: Vec<String>,
}

impl Suppressed {
    /// The header value: `k=10; rows=2; cells=1; views=reach`.
    pub fn header(&self) -> String {
        let mut text = format!(
            "k={}; rows={}; cells={}; differencing={}",
            self.min_persons, self.rows, self.cells, self.differencing
        );
        if self.cell_key_noise {
            text.push_str("; noise=cell_key");
        }
        if !self.views.is_empty() {
            text.push_str("; views=");
            text.push_str(&self.views.join(","));
        }
        text
    }
}
