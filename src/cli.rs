//! The `techmon` command line.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::allocator::Workload;
use crate::config::Served;
use crate::push::{PushOptions, push_files};

#[derive(Debug, Parser)]
#[command(
    name = "techmon",
    version,
    about = "Research-data pipeline of the techniekhubs of the Cleantech Regio"
)]
pub struct Cli {
    /// Configuration file (TOML) over the built-in defaults; TECHMON__SECTION__KEY
    /// environment variables override both.
    #[arg(long, global = true, env = "TECHMON_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The whole pipeline on a synthetic region: serve, generate, push, import,
    /// wait for the transform, print the headline answers, keep serving.
    Demo(crate::demo::DemoOptions),
    /// Write a deterministic synthetic region: hub event files, DUO files, truth.json.
    Generate {
        /// The folder to write into.
        #[arg(long, default_value = "techmon-region")]
        out: PathBuf,
        #[arg(long, default_value_t = 2022)]
        seed: u64,
        /// About how many records.
        #[arg(long, default_value_t = 1_000_000)]
        events: usize,
    },
    /// Run the services (ingest and the transform, on one event log) in one process.
    Serve,
    /// Run the ingest API alone (hubs push into the event log), on `ingest.listen`.
    Ingest,
    /// Run the transform alone: event log → research lake, until stopped.
    Transform,
    /// Run the query API alone (SQL over the lake), on `query.listen`.
    Query,
    /// Ask the query API a SQL question; prints a table, or writes a file.
    Sql(crate::sql::SqlOptions),
    /// The effect measurement: did reaching a school change its pupils' choice of
    /// technical profiles? Estimates per hub with their uncertainty, the method and
    /// its assumptions.
    Effect(crate::effect::EffectOptions),
    /// Rebuild the lake from the event log into a new location (same pseudonym key).
    Replay {
        /// The new lake (a folder or URL); must not hold the tables yet.
        #[arg(long)]
        to: String,
        /// The new raw zone for the replay's own state [default: <to>-raw].
        #[arg(long)]
        raw: Option<PathBuf>,
    },
    /// Pseudonym keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Rewrite each lake table's small files into larger ones now (the transform does
    /// it every `transform.compact_interval_minutes`); safe beside a running transform.
    Compact,
    /// Events the transform could not transform (kept in the raw zone).
    Deadletters {
        #[command(subcommand)]
        command: DeadLetterCommand,
    },
    /// Send event files (JSON array, NDJSON, CSV) to an ingest service.
    Push {
        /// Files to send, in order.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Base URL of the ingest service.
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "TECHMON_URL")]
        url: String,
        /// The hub's token.
        #[arg(long, env = "TECHMON_TOKEN", hide_env_values = true)]
        token: String,
        /// Records per request.
        #[arg(long, default_value_t = 1000)]
        batch_size: usize,
        /// Attempts per batch while the service is unavailable.
        #[arg(long, default_value_t = 10)]
        max_attempts: u32,
        /// Event kind of CSV files not named after their kind.
        #[arg(long)]
        kind: Option<String>,
        /// Where the rejected records and their reasons are written (NDJSON).
        #[arg(long, default_value = "rejected.ndjson")]
        rejects: PathBuf,
    },
    /// The regions (admin): add one while techmon runs.
    Regions {
        #[command(subcommand)]
        command: crate::registry::RegionCommand,
    },
    /// The hubs (admin): add one, issue it a token, or retire one, while techmon runs.
    Hubs {
        #[command(subcommand)]
        command: crate::registry::HubCommand,
    },
    /// The KPI targets (admin): set targets from a CSV file while techmon runs.
    Targets {
        #[command(subcommand)]
        command: crate::registry::TargetCommand,
    },
    /// Reference data (DUO open onderwijsdata).
    Reference {
        #[command(subcommand)]
        command: ReferenceCommand,
    },
    /// Hub and query-user tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// The audit trail of the query service (`query.audit`): who asked what, on which
    /// table versions, oldest first, as JSON lines.
    Audit(crate::audit::AuditOptions),
    /// Print the effective configuration (defaults, file and environment merged).
    Config,
    /// Benchmarks (run them on a release build).
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

impl Command {
    /// What this command spends its memory on, for the allocator's tuning
    /// ([`crate::allocator::keep_freed_memory`]). `demo` is `Other`: its lake is small.
    pub fn workload(&self) -> Workload {
        match self {
            Command::Serve => Workload::TransformAndQueries,
            Command::Transform | Command::Replay { .. } | Command::Key { .. } => {
                Workload::Transform
            }
            _ => Workload::Other,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Push realistic events over HTTP to a `techmon serve` child process.
    Ingest(crate::bench::IngestBench),
    /// Transform a log of realistic events into a new lake (`techmon replay` in a child process).
    Transform(crate::bench::TransformBench),
    /// Time every named view over a lake (and write DuckDB's setup for the reference).
    Query(crate::bench::QueryBench),
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Make a new pseudonym key and rebuild the lake under it from the event log into a
    /// new location (every pseudonym changes, every count stays); prints how to switch.
    Rotate {
        /// The new key's id, stored with every pseudonym (must differ from the current).
        #[arg(long)]
        key_id: String,
        /// The new lake (a folder or URL); must not hold the tables yet.
        #[arg(long)]
        to: String,
        /// The new raw zone, where the new key is made [default: <to>-raw].
        #[arg(long)]
        raw: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeadLetterCommand {
    /// List them: log position, event id, reason (the events themselves stay in the raw zone).
    List,
    /// Send them through the transform again (after a fix); those that now transform
    /// go to the lake, once, and leave the dead letters.
    Redrive,
}

#[derive(Debug, Subcommand)]
pub enum ReferenceCommand {
    /// Import DUO CSV files (VO pupils per vestiging, PO pupils by age, school
    /// addresses) by path or URL; importing the same file again changes nothing.
    Import(crate::reference::ImportOptions),
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a new random token for a hub or a query user and print the configuration
    /// lines for it.
    New {
        /// A hub that pushes events.
        #[arg(long, conflicts_with_all = ["user", "role"], required_unless_present = "user")]
        hub: Option<String>,
        /// A person who queries, with --role.
        #[arg(long, requires = "role")]
        user: Option<String>,
        /// researcher, analyst or admin.
        #[arg(long, value_parser = ["researcher", "analyst", "admin"])]
        role: Option<String>,
        /// A researcher's microdata grant: row-level answers through this day
        /// (YYYY-MM-DD, UTC), every use in the audit trail.
        #[arg(long, requires = "user")]
        microdata_until: Option<chrono::NaiveDate>,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let load_config =
        || crate::config::load(cli.config.as_deref()).context("loading the configuration");
    match cli.command {
        Command::Demo(options) => {
            let config = load_config()?;
            let (answered, _) = tokio::sync::oneshot::channel();
            crate::demo::run(config, &options, answered, shutdown_signal()).await?;
        }
        Command::Generate { out, seed, events } => {
            let spec = techmon_generate::Spec {
                seed,
                events,
                until: techmon_generate::Spec::default_until(),
            };
            let generated = techmon_generate::generate(&spec, &out)?;
            println!(
                "{} records ({} broken on purpose, {} sent twice) for {} hubs and {} DUO files in {}; the ground truth is in truth.json",
                generated.records(),
                generated.truth.broken_events,
                generated.truth.resent_events,
                generated.hubs.len(),
                generated.duo_files.len(),
                out.display()
            );
        }
        Command::Serve => {
            let config = load_config()?;
            config.check_development_tokens(Served::HubsAndUsers, config.ingest.listen)?;
            crate::serve::run(&config, shutdown_signal()).await?;
        }
        Command::Ingest => {
            let config = load_config()?;
            config.check_development_tokens(Served::Ingest, config.ingest.listen)?;
            let log = techmon_eventlog::open(&config.log).await?;
            let person_keys =
                techmon_eventlog::person_keys::PersonKeys::open(&config.transform.person_keys)?;
            let stores = techmon_ingest::Stores {
                person_keys: Some(person_keys),
                audit: Some(std::sync::Arc::new(crate::audit::open(&config)?)),
                registry: Some(crate::hub_registry::LakeHubRegistry::watch(
                    config.lake.location()?,
                    config.lake.registry_refresh_seconds,
                )),
            };
            let router = techmon_ingest::build_with_metrics(
                &config.ingest,
                log,
                prometheus::Registry::new(),
                stores,
            )?;
            techmon_ingest::run(&config.ingest, router, shutdown_signal()).await?;
        }
        Command::Transform => {
            let config = load_config()?;
            let log = techmon_eventlog::open(&config.log).await?;
            let lake = config.lake.location()?;
            let transform = techmon_transform::Transform::open(
                &config.transform,
                &lake,
                std::sync::Arc::clone(&log),
                &config.log.topic,
            )
            .await?
            .with_audit(std::sync::Arc::new(crate::audit::open(&config)?));
            let registry = prometheus::Registry::new();
            transform.metrics().register(&registry)?;
            let ready = techmon_transform::Transform::readiness(log, lake);
            let listener = techmon_service::bind(config.transform.listen).await?;
            let probes = tokio::spawn(techmon_service::serve(
                listener,
                techmon_service::probes(ready, registry),
                std::future::pending(),
            ));
            transform.run(shutdown_signal()).await?;
            probes.abort();
        }
        Command::Replay { to, raw } => {
            let config = load_config()?;
            let raw =
                raw.unwrap_or_else(|| PathBuf::from(format!("{}-raw", to.trim_end_matches('/'))));
            let replay = techmon_transform::replay_config(&config.transform, raw);
            crate::rebuild::rebuild(&config, &replay, &to, "replayed").await?;
        }
        Command::Key {
            command: KeyCommand::Rotate { key_id, to, raw },
        } => {
            let config = load_config()?;
            let raw =
                raw.unwrap_or_else(|| PathBuf::from(format!("{}-raw", to.trim_end_matches('/'))));
            let rotation =
                techmon_transform::rotation_config(&config.transform, raw.clone(), &key_id)?;
            crate::rebuild::rebuild(&config, &rotation, &to, "rebuilt under the new key").await?;
            println!(
                "The lake under key {key_id} is in {to}. To switch to it, stop the service and set:\n\
                 [lake]\nurl = \"{to}\"\n[transform]\nraw = \"{}\"\npseudonym_key_id = \"{key_id}\"\n\
                 pseudonym_key_file = \"{}\"\n\
                 then start it (it resumes from the new lake). Retire the old key afterwards: delete \
                 the old key file, raw zone and lake once no one needs their table versions.",
                raw.display(),
                raw.join("pseudonym.key").display()
            );
        }
        Command::Compact => {
            let config = load_config()?;
            let lake = &config.lake.url;
            let started = std::time::Instant::now();
            let location = config.lake.location()?;
            let compaction = techmon_transform::lake::Lake::open(&location, &config.log.topic)
                .await?
                .compact(config.transform.compact_target_file_mib << 20)
                .await?;
            println!(
                "compacted {lake} in {:.1}s: {} small files rewritten into {}; tables another writer changed meanwhile (try again): {:?}",
                started.elapsed().as_secs_f64(),
                compaction.files_removed,
                compaction.files_added,
                compaction.tables_skipped
            );
        }
        Command::Deadletters {
            command: DeadLetterCommand::Redrive,
        } => {
            let config = load_config()?;
            let log = techmon_eventlog::open(&config.log).await?;
            let lake = config.lake.location()?;
            let mut transform = techmon_transform::Transform::open(
                &config.transform,
                &lake,
                log,
                &config.log.topic,
            )
            .await?;
            let (redriven, still_dead) = transform.redrive().await?;
            println!("{redriven} dead letters transformed into the lake, {still_dead} still dead");
        }
        Command::Deadletters {
            command: DeadLetterCommand::List,
        } => {
            let config = load_config()?;
            let state = techmon_transform::state::State::open(&config.transform.raw)?;
            let letters = state.dead_letters()?;
            for letter in &letters {
                println!(
                    "partition {} offset {}\t{}\t{:?}\t{}\t{}",
                    letter.partition,
                    letter.offset,
                    letter.event_id.map(|id| id.to_string()).unwrap_or_default(),
                    letter.reason,
                    letter.dead_at.to_rfc3339(),
                    letter.detail
                );
            }
            println!("{} dead letters", letters.len());
        }
        Command::Push {
            files,
            url,
            token,
            batch_size,
            max_attempts,
            kind,
            rejects,
        } => {
            let options = PushOptions {
                url: url.trim_end_matches('/').to_string(),
                token,
                batch_size,
                max_attempts,
                kind,
                rejects,
            };
            let started = std::time::Instant::now();
            let summary = push_files(&options, &files).await?;
            let seconds = started.elapsed().as_secs_f64();
            println!(
                "{} records from {} files in {} batches ({} retries) in {seconds:.1}s: {} accepted, {} corrected, {} duplicates, {} rejected",
                summary.records,
                summary.files,
                summary.batches,
                summary.retries,
                summary.accepted,
                summary.corrected,
                summary.duplicates,
                summary.rejected
            );
            if summary.rejected > 0 {
                println!(
                    "rejected records and their reasons: {}",
                    options.rejects.display()
                );
                return Ok(ExitCode::from(1));
            }
        }
        Command::Token {
            command:
                TokenCommand::New {
                    hub,
                    user,
                    role,
                    microdata_until,
                },
        } => {
            let (token, hash) = techmon_service::new_token();
            match (hub, user, role) {
                (Some(hub), ..) => {
                    println!("token for {hub} (give it to the hub; it is not stored): {token}");
                    println!("[[ingest.hubs]]\nhub_id = \"{hub}\"\ntoken_sha256 = \"{hash}\"");
                }
                (None, Some(user), Some(role)) => {
                    println!("token for {user} (give it to them; it is not stored): {token}");
                    println!(
                        "[[query.users]]\nname = \"{user}\"\nrole = \"{role}\"\ntoken_sha256 = \"{hash}\""
                    );
                    match microdata_until {
                        Some(until) if role == "researcher" => {
                            println!("microdata_until = \"{until}\"");
                        }
                        Some(_) => anyhow::bail!(
                            "--microdata-until is a researcher's grant (analysts and admins are answered row-level)"
                        ),
                        None => {}
                    }
                }
                _ => anyhow::bail!("give --hub ID, or --user NAME with --role ROLE"),
            }
        }
        Command::Query => {
            let config = load_config()?;
            config.check_development_tokens(Served::HubsAndUsers, config.query.listen)?;
            let engine =
                techmon_query::Engine::new(config.lake.location()?, config.query.limits())?;
            let engine = std::sync::Arc::new(engine);
            let registry = prometheus::Registry::new();
            let issued = crate::hub_registry::LakeHubRegistry::watch(
                config.lake.location()?,
                config.lake.registry_refresh_seconds,
            );
            let (research, service) = crate::serve::research_routes(
                &config.query,
                (&config.ingest.hubs, issued),
                std::sync::Arc::clone(&engine),
                &registry,
            )
            .await?;
            let router = research.merge(techmon_query::probes(engine, registry));
            crate::serve::start_sql_endpoints(
                &config,
                service,
                &tokio::runtime::Handle::current(),
                shutdown_signal,
            )
            .await?;
            let listener = tokio::net::TcpListener::bind(config.query.listen)
                .await
                .with_context(|| format!("listening on {}", config.query.listen))?;
            tracing::info!(addr = %config.query.listen, lake = %config.lake.url, "query API listening");
            techmon_service::serve(listener, router, shutdown_signal()).await?;
        }
        Command::Sql(options) => crate::sql::run(&options).await?,
        Command::Effect(options) => crate::effect::run(&options).await?,
        Command::Regions { command } => crate::registry::regions(command).await?,
        Command::Hubs { command } => crate::registry::hubs(command).await?,
        Command::Targets { command } => crate::registry::targets(command).await?,
        Command::Reference {
            command: ReferenceCommand::Import(options),
        } => crate::reference::import(&options).await?,
        Command::Bench {
            command: BenchCommand::Ingest(options),
        } => {
            let report = crate::bench::ingest(&options).await?;
            println!(
                "ingest bench ({} backend): {} events ({} accepted) in {:.2}s = {:.0} events/s; server peak RSS {:.0} MiB",
                options.backend,
                report.events,
                report.accepted,
                report.seconds,
                report.events as f64 / report.seconds,
                report.server_peak_rss_kib as f64 / 1024.0
            );
        }
        Command::Bench {
            command: BenchCommand::Transform(options),
        } => {
            let report = crate::bench::transform(&options).await?;
            println!(
                "transform bench: {} events in {:.2}s = {:.0} events/s; peak RSS {:.0} MiB; {} Parquet files, {:.1} MiB",
                report.events,
                report.seconds,
                report.events as f64 / report.seconds,
                report.peak_rss_kib as f64 / 1024.0,
                report.files,
                report.bytes as f64 / 1048576.0
            );
        }
        Command::Bench {
            command: BenchCommand::Query(options),
        } => {
            let report = crate::bench::query(&options, load_config()?.query.limits()).await?;
            let total: f64 = report.views.iter().map(|(_, s, _, _)| s).sum();
            for (view, seconds, rows, peak_kib) in &report.views {
                println!(
                    "{view:<28} {seconds:>8.3}s {rows:>8} rows   peak RSS so far {:>5.0} MiB",
                    *peak_kib as f64 / 1024.0
                );
            }
            println!(
                "query bench: {} views in {total:.3}s (fastest of {} runs each); peak RSS {:.0} MiB",
                report.views.len(),
                options.runs,
                report.peak_rss_kib as f64 / 1024.0
            );
        }
        Command::Config => {
            let config = load_config()?;
            println!("{config:#?}");
        }
        Command::Audit(options) => crate::audit::print(&load_config()?, &options)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Ctrl-C, or SIGTERM as containers and systemd stop a service.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the service");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
