//! techmon's layered configuration: the committed defaults (`config/default.toml`),
//! then the file given with `--config`, then `TECHMON__SECTION__KEY` variables.

use std::path::Path;

use serde::Deserialize;

const DEFAULTS: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TechmonConfig {
    pub log: techmon_eventlog::Config,
    pub ingest: techmon_ingest::Config,
    pub transform: techmon_transform::Config,
    pub query: techmon_query::Config,
}

/// Loads the configuration. Unknown keys anywhere are errors, so a typo cannot
/// silently leave a default in place.
pub fn load(file: Option<&Path>) -> Result<TechmonConfig, config::ConfigError> {
    let mut builder = config::Config::builder()
        .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
    if let Some(file) = file {
        builder = builder.add_source(config::File::from(file).required(true));
    }
    builder
        .add_source(
            config::Environment::with_prefix("TECHMON")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        )
        .build()?
        .try_deserialize()
}
