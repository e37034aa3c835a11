//! `techmon bench ingest`: pushes a fixed number of realistic events over HTTP to a
//! `techmon ingest` child process (the ingest service alone, so neither the transform's
//! work nor its memory is counted) and reports events/s and the server's peak memory.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use techmon_eventlog::EventLog;
use techmon_ingest::PushAnswer;

const HUBS: [&str; 4] = [
    "newtechpark",
    "tec-deventer",
    "techniekfabriek",
    "techniekbrouwerij",
];

#[derive(Debug, Clone, clap::Args)]
pub struct IngestBench {
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    #[arg(long, default_value_t = 1000)]
    pub batch_size: usize,
    /// Concurrent HTTP connections: several hubs pushing at once. Each request waits
    /// for the log to acknowledge its records, so concurrency hides that wait (a
    /// Kafka broker's round trip above all).
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// `embedded`, or `kafka` with `--brokers`.
    #[arg(long, default_value = "embedded")]
    pub backend: String,
    /// Kafka bootstrap servers.
    #[arg(long)]
    pub brokers: Option<String>,
    /// Also write the events as `key<TAB>json` lines, for a plain producer to send.
    #[arg(long)]
    pub keyed_ndjson: Option<PathBuf>,
}

#[derive(Debug)]
pub struct IngestReport {
    pub events: usize,
    pub accepted: usize,
    pub seconds: f64,
    pub server_peak_rss_kib: u64,
}

/// A deterministic mix of event kinds as hubs send them: mostly group participation
/// and attendance, some registrations (with personal data), activities, surveys and
/// profile choices.
fn synthetic_event(rng: &mut StdRng, n: usize) -> (String, Value) {
    let hub = HUBS[n % HUBS.len()];
    let school = format!(
        "{:02}{}{}{:02}",
        10 + rng.random_range(0..80),
        ['A', 'B', 'C', 'D'][n % 4],
        ['K', 'L', 'M'][n % 3],
        0
    );
    let activity = format!("act-{}", rng.random_range(0..20_000));
    let participant = format!("p-{}", rng.random_range(0..200_000));
    let day = rng.random_range(1..28);
    let month = rng.random_range(1..13);
    let year = 2022 + rng.random_range(0..4);
    let at = format!(
        "{year}-{month:02}-{day:02}T{:02}:00:00+01:00",
        rng.random_range(8..17)
    );
    let school_year = if month >= 8 {
        format!("{year}/{:02}", (year + 1) % 100)
    } else {
        format!("{}/{:02}", year - 1, year % 100)
    };
    let roll = rng.random_range(0..100);
    let (kind, key, payload) = match roll {
        0..50 => (
            "group_participated",
            format!("activity:{hub}:{activity}"),
            json!({
                "activity_id": activity, "school_brin6": school, "sector": "PO", "groep": rng.random_range(1..9),
                "school_year": school_year,
                "participants": {"girls": rng.random_range(5..16), "boys": rng.random_range(5..16)},
                "accompanying_teachers": rng.random_range(1..3)
            }),
        ),
        50..70 => (
            "participant_attended",
            format!("participant:{hub}:{participant}"),
            json!({"activity_id": activity, "participant_ref": participant, "role": "pupil"}),
        ),
        70..80 => (
            "participant_registered",
            format!("participant:{hub}:{participant}"),
            json!({
                "participant_ref": participant, "name": format!("Deelnemer {n}"), "email": format!("deelnemer{n}@example.org"),
                "phone": "+31 6 12345678", "birth_date": format!("{}-{month:02}-{day:02}", year - 12),
                "postcode": format!("{} AB", 7000 + rng.random_range(0..999)), "school_brin6": school,
                "sector": "VO", "leerjaar": rng.random_range(1..4), "onderwijstype": "havo",
                "gender": (["female", "male", "other"][n % 3]), "role": "pupil", "consent_research": rng.random_bool(0.8)
            }),
        ),
        80..90 => (
            "activity_held",
            format!("activity:{hub}:{activity}"),
            json!({
                "activity_id": activity, "activity_type": (["proeverij", "workshop", "girlsday", "bedrijfsbezoek"][n % 4]),
                "title": "Bouw je eigen windmolen", "starts_at": at, "ends_at": at, "duration_minutes": 120,
                "worlds": [1 + n % 7], "target_groups": ["po"], "location": "Technicampus"
            }),
        ),
        90..95 => (
            "survey_answered",
            format!("activity:{hub}:{activity}"),
            json!({"activity_id": activity, "respondent_role": "pupil", "score": rng.random_range(5..11), "scale_max": 10}),
        ),
        _ => (
            "profile_chosen",
            format!("school:{school}"),
            json!({
                "school_brin6": school, "school_year": school_year, "leerjaar": 4, "onderwijstype": "havo",
                "profile_code": (["N&T", "N&G", "E&M", "C&M"][n % 4]), "count": rng.random_range(1..30)
            }),
        ),
    };
    let event = json!({
        "event_id": uuid::Builder::from_random_bytes(rng.random()).into_uuid(),
        "event_type": kind, "schema_version": 1, "hub_id": hub,
        "occurred_at": at, "sent_at": at, "payload": payload
    });
    (key, event)
}

/// NDJSON bodies per hub token, `batch_size` events each.
fn bodies(options: &IngestBench) -> anyhow::Result<Vec<(String, String)>> {
    let mut rng = StdRng::seed_from_u64(2022);
    let mut keyed = match &options.keyed_ndjson {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path).context("keyed ndjson")?,
        )),
        None => None,
    };
    let mut per_hub: Vec<String> = vec![String::new(); HUBS.len()];
    let mut counts = vec![0; HUBS.len()];
    let mut out = Vec::new();
    for n in 0..options.events {
        let (key, event) = synthetic_event(&mut rng, n);
        let h = n % HUBS.len();
        let line = event.to_string();
        if let Some(file) = keyed.as_mut() {
            use std::io::Write;
            writeln!(file, "{key}\t{line}")?;
        }
        per_hub[h].push_str(&line);
        per_hub[h].push('\n');
        counts[h] += 1;
        if counts[h] == options.batch_size {
            out.push((
                format!("dev-token-{}", HUBS[h]),
                std::mem::take(&mut per_hub[h]),
            ));
            counts[h] = 0;
        }
    }
    for (h, body) in per_hub.into_iter().enumerate() {
        if !body.is_empty() {
            out.push((format!("dev-token-{}", HUBS[h]), body));
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, clap::Args)]
pub struct TransformBench {
    #[arg(long, default_value_t = 1_000_000)]
    pub events: usize,
    /// Where the log and the lake go (kept, to look at); default a temporary folder.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Also write the events as NDJSON here, for the DuckDB reference.
    #[arg(long)]
    pub ndjson: Option<PathBuf>,
}

#[derive(Debug)]
pub struct TransformReport {
    pub events: usize,
    pub seconds: f64,
    pub peak_rss_kib: u64,
    pub files: usize,
    pub bytes: u64,
}

/// Fills an embedded log with `events` synthetic events, then times `techmon replay`
/// (the transform, from offset 0, in a child process whose memory is measured alone)
/// into a new lake.
pub async fn transform(options: &TransformBench) -> anyhow::Result<TransformReport> {
    let temp = tempfile::tempdir()?;
    let dir = options
        .dir
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let log_path = dir.join("events.redb");
    {
        let log = techmon_eventlog::embedded::EmbeddedLog::open(&log_path, 4, 64)?;
        let mut rng = StdRng::seed_from_u64(2022);
        let mut ndjson = match &options.ndjson {
            Some(path) => Some(std::io::BufWriter::new(std::fs::File::create(path)?)),
            None => None,
        };
        eprintln!("writing {} events to the log", options.events);
        for start in (0..options.events).step_by(10_000) {
            let batch: Vec<techmon_eventlog::LogRecord> = (start
                ..(start + 10_000).min(options.events))
                .map(|n| {
                    let (key, event) = synthetic_event(&mut rng, n);
                    if let Some(file) = ndjson.as_mut() {
                        use std::io::Write;
                        let _ = writeln!(file, "{event}");
                    }
                    techmon_eventlog::LogRecord {
                        key,
                        event_id: event["event_id"]
                            .as_str()
                            .and_then(|s| uuid::Uuid::parse_str(s).ok())
                            .unwrap_or_default(),
                        payload: event.to_string().into_bytes(),
                        version: None,
                    }
                })
                .collect();
            log.append(batch).await?;
        }
    }
    let lake = dir.join("lake");
    let started = Instant::now();
    let mut child = Command::new(std::env::current_exe()?)
        .args(["replay", "--to"])
        .arg(&lake)
        .arg("--raw")
        .arg(dir.join("raw"))
        .env("TECHMON__LOG__EMBEDDED__PATH", &log_path)
        .env("TECHMON__TRANSFORM__RAW", dir.join("raw"))
        .env("TECHMON__TRANSFORM__PERSON_KEYS", dir.join("person-keys"))
        .env(
            "TECHMON_PSEUDONYM_KEY",
            "bench-key-0123456789abcdef0123456789abcdef",
        )
        .env("RUST_LOG", "warn")
        .stderr(Stdio::null())
        .spawn()
        .context("starting techmon replay")?;
    let mut peak_rss_kib = 0;
    let status = loop {
        peak_rss_kib = peak_rss_kib.max(peak_rss_kib_of(child.id()));
        if let Some(status) = child.try_wait()? {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let seconds = started.elapsed().as_secs_f64();
    if !status.success() {
        bail!("techmon replay failed: {status}");
    }
    let (files, bytes) = parquet_files(&lake);
    Ok(TransformReport {
        events: options.events,
        seconds,
        peak_rss_kib,
        files,
        bytes,
    })
}

fn parquet_files(dir: &std::path::Path) -> (usize, u64) {
    let mut totals = (0, 0);
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            let (f, b) = parquet_files(&path);
            totals = (totals.0 + f, totals.1 + b);
        } else if path.extension().is_some_and(|e| e == "parquet") {
            totals = (
                totals.0 + 1,
                totals.1 + entry.metadata().map_or(0, |m| m.len()),
            );
        }
    }
    totals
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn peak_rss_kib_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

pub async fn ingest(options: &IngestBench) -> anyhow::Result<IngestReport> {
    let dir = tempfile::tempdir()?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut command = Command::new(std::env::current_exe()?);
    command
        .arg("ingest")
        .env("TECHMON__INGEST__LISTEN", format!("127.0.0.1:{port}"))
        .env("TECHMON__LOG__BACKEND", &options.backend)
        .env(
            "TECHMON__LOG__TOPIC",
            format!("bench-{}", uuid::Uuid::new_v4()),
        )
        .env(
            "TECHMON__LOG__EMBEDDED__PATH",
            dir.path().join("events.redb"),
        )
        .env(
            "TECHMON__LOG__KAFKA__EVENT_ID_INDEX",
            dir.path().join("ids.redb"),
        )
        .env(
            "TECHMON__TRANSFORM__PERSON_KEYS",
            dir.path().join("person-keys"),
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    if let Some(brokers) = &options.brokers {
        command.env("TECHMON__LOG__KAFKA__BROKERS", brokers);
    }
    eprintln!("generating {} events", options.events);
    let bodies = Arc::new(bodies(options)?);
    let server = Server(command.spawn().context("starting techmon ingest")?);
    let url = format!("http://127.0.0.1:{port}/v1/events");
    let client = reqwest::Client::new();
    let ready = format!("http://127.0.0.1:{port}/readyz");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !client
        .get(&ready)
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        if Instant::now() > deadline {
            bail!("techmon ingest did not become ready");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "pushing {} batches over {} connections",
        bodies.len(),
        options.connections
    );
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..options.connections)
        .map(|_| {
            let (bodies, next, client, url) =
                (bodies.clone(), next.clone(), client.clone(), url.clone());
            tokio::spawn(async move {
                let mut accepted = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some((token, body)) = bodies.get(i) else {
                        return Ok::<_, anyhow::Error>(accepted);
                    };
                    let response = client
                        .post(&url)
                        .bearer_auth(token)
                        .header("content-type", "application/x-ndjson")
                        .body(body.clone())
                        .send()
                        .await?;
                    if !response.status().is_success() {
                        bail!("batch {i}: {}", response.status());
                    }
                    let answer: PushAnswer = response.json().await?;
                    if answer.rejected > 0 {
                        bail!(
                            "batch {i}: {} rejected: {:?}",
                            answer.rejected,
                            answer.results.iter().find(|r| !r.errors.is_empty())
                        );
                    }
                    accepted += answer.accepted;
                }
            })
        })
        .collect();
    let mut accepted = 0;
    for worker in workers {
        accepted += worker.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let server_peak_rss_kib = peak_rss_kib_of(server.0.id());
    drop(server);
    Ok(IngestReport {
        events: options.events,
        accepted,
        seconds,
        server_peak_rss_kib,
    })
}

#[derive(Debug, clap::Args)]
pub struct QueryBench {
    /// A lake, e.g. the `lake` folder of `techmon bench transform --dir DIR`.
    #[arg(long)]
    pub lake: PathBuf,
    /// Runs per view; the fastest counts.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// Also write SQL that sets up DuckDB with the same tables (the lake's Parquet
    /// files), code lists and views, for `bench/duckdb_query.py`.
    #[arg(long)]
    pub duckdb_sql: Option<PathBuf>,
}

#[derive(Debug)]
pub struct QueryReport {
    /// View, fastest seconds, rows, and the process's peak RSS once it ran (the
    /// allocator keeps what it freed, so the view that raises it is the one that needed
    /// it).
    pub views: Vec<(&'static str, f64, usize, u64)>,
    pub peak_rss_kib: u64,
}

/// Times `SELECT * FROM <view>` for every named view, in this process, as the query
/// service runs it (a fresh session per query, all rows collected, within the
/// configured limits).
pub async fn query(
    options: &QueryBench,
    limits: techmon_query::Limits,
) -> anyhow::Result<QueryReport> {
    let lake = options.lake.to_string_lossy().into_owned();
    let location = techmon_lake::LakeLocation::new(&lake, Default::default())?;
    let engine = techmon_query::Engine::new(location, limits)?;
    import_region_duo(&engine).await?;
    if let Some(path) = &options.duckdb_sql {
        std::fs::write(path, duckdb_setup(&engine).await?)?;
    }
    let pins = techmon_query::TableVersions::default();
    let mut views = Vec::new();
    for view in techmon_query::views::VIEWS {
        let mut fastest = f64::MAX;
        let mut rows = 0;
        for _ in 0..options.runs.max(1) {
            let started = Instant::now();
            let answer = engine
                .query(&format!("SELECT * FROM {}", view.name), &pins)
                .await?;
            fastest = fastest.min(started.elapsed().as_secs_f64());
            rows = answer.row_count();
        }
        views.push((
            view.name,
            fastest,
            rows,
            peak_rss_kib_of(std::process::id()),
        ));
    }
    Ok(QueryReport {
        views,
        peak_rss_kib: peak_rss_kib_of(std::process::id()),
    })
}

/// Imports the DUO files of the synthetic region (`techmon generate`'s, fixed seed)
/// as the lake's reference tables, so that the views over DUO counts have rows to
/// work on. An import made before changes nothing.
async fn import_region_duo(engine: &techmon_query::Engine) -> anyhow::Result<()> {
    let lake = engine.catalogue().location();
    let folder = tempfile::tempdir()?;
    let world = techmon_generate::world::World::build(&mut StdRng::seed_from_u64(2022));
    for path in techmon_generate::duo_files::write(&world, folder.path())? {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = name.context("a DUO file has a name")?;
        techmon_reference::import(lake, &name, &std::fs::read(&path)?, None).await?;
    }
    Ok(())
}

/// The data files of a table's latest version as the catalogue has it, quoted for
/// SQL; `None` when it has none.
async fn current_files(
    engine: &techmon_query::Engine,
    table: &str,
) -> anyhow::Result<Option<Vec<String>>> {
    let Some(delta) = engine.catalogue().latest_table(table).await? else {
        return Ok(None);
    };
    let files: Vec<String> = delta
        .get_file_uris()?
        .map(|uri| format!("'{}'", uri.trim_start_matches("file://")))
        .collect();
    Ok((!files.is_empty()).then_some(files))
}

/// DuckDB statements for the same catalogue: each lake table over its Parquet files
/// (school years URL-decoded from the partition folders), empty tables for those
/// without data, the code lists as values, and techmon's views, unchanged.
async fn duckdb_setup(engine: &techmon_query::Engine) -> anyhow::Result<String> {
    use deltalake::arrow::datatypes::DataType;
    use deltalake::arrow::util::display::array_value_to_string;
    let duck_type = |t: &DataType| match t {
        DataType::Utf8 | DataType::Utf8View => "VARCHAR",
        DataType::Int32 => "INTEGER",
        DataType::Int64 => "BIGINT",
        DataType::Float64 => "DOUBLE",
        DataType::Boolean => "BOOLEAN",
        DataType::Timestamp(..) => "TIMESTAMPTZ",
        DataType::List(item) if item.data_type() == &DataType::Int32 => "INTEGER[]",
        _ => "VARCHAR[]",
    };
    let mut sql = String::from("SET TimeZone = 'UTC';\n");
    let (ctx, _) = engine
        .session(&techmon_query::TableVersions::default())
        .await?;
    for table in engine.catalogue().describe()? {
        let frame = ctx.table(table.name.as_str()).await?;
        let schema = frame.schema().as_arrow().clone();
        if table.kind == techmon_query::catalogue::SourceKind::CodeList {
            let batches = frame.collect().await?;
            let mut rows = Vec::new();
            for batch in &batches {
                for r in 0..batch.num_rows() {
                    let values: Vec<String> = batch
                        .columns()
                        .iter()
                        .map(|c| {
                            if c.is_null(r) {
                                "NULL".to_string()
                            } else {
                                let text = array_value_to_string(c, r).unwrap_or_default();
                                match c.data_type() {
                                    DataType::Utf8 => format!("'{}'", text.replace('\'', "''")),
                                    _ => text,
                                }
                            }
                        })
                        .collect();
                    rows.push(format!("({})", values.join(", ")));
                }
            }
            let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            sql.push_str(&format!(
                "CREATE TABLE {} AS SELECT * FROM (VALUES {}) t({});\n",
                table.name,
                rows.join(", "),
                names.join(", ")
            ));
        } else if let Some(files) = current_files(engine, &table.name).await? {
            // The files of the table's current version: the folder also holds those a
            // compaction or an erasure replaced, until the vacuum.
            sql.push_str(&format!(
                "CREATE VIEW {} AS SELECT * REPLACE (replace(school_year, '%2F', '/') AS school_year) \
                 FROM read_parquet([{}], hive_partitioning = true, union_by_name = true);\n",
                table.name,
                files.join(", ")
            ));
        } else {
            let columns: Vec<String> = schema
                .fields()
                .iter()
                .map(|f| format!("{} {}", f.name(), duck_type(f.data_type())))
                .collect();
            sql.push_str(&format!(
                "CREATE TABLE {} ({});\n",
                table.name,
                columns.join(", ")
            ));
        }
    }
    for view in techmon_query::views::VIEWS {
        sql.push_str(&format!("CREATE VIEW {} AS {};\n", view.name, view.sql));
    }
    Ok(sql)
}
