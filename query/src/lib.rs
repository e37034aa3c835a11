//! techmon's query service: research SQL over the Delta lake and the reference
//! tables, the KPI views, DUO reference imports and disclosure-controlled exports.
//!
//! The engine ([`engine`], [`catalogue`], [`views`], [`safety`]) knows nothing of
//! HTTP; [`http`] serves it.

pub mod admission;
pub mod bounded;
pub mod catalogue;
pub mod codebook;
mod dashboard;
pub mod disclosure;
mod distinct_partitions;
pub mod effects;
pub mod engine;
mod error;
pub mod exports;
pub mod flight;
pub mod formats;
pub mod http;
mod lake_scan;
pub mod memory;
pub mod metrics;
mod pg_catalog;
pub mod postgres;
pub mod safety;
mod utc_date_trunc;
pub mod views;
pub mod workbook;

pub use engine::{Answer, Engine, Limits, Scope};
pub use error::QueryError;
pub use http::{Config, access, build, on_runtime, probes, routes};
pub use techmon_lake::TableVersions;
