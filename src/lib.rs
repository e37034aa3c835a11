//! techmon: the research-data pipeline of the techniekhubs of the Cleantech Regio.
//! This crate is the `techmon` command: configuration, `serve` (the services in one
//! process) and the `push` and `sql` clients. The services are libraries of their
//! own (`techmon-ingest`, `techmon-transform`, `techmon-query`, on `techmon-eventlog`
//! and `techmon-schemas`).

pub mod allocator;
pub mod audit;
pub mod bench;
pub mod cli;
pub mod config;
pub mod demo;
pub mod effect;
pub mod hub_registry;
pub mod push;
pub mod rebuild;
pub mod reference;
pub mod registry;
pub mod serve;
pub mod sql;
