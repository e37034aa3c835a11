//! `techmon serve`: the services in one process, on one event log: ingest and the
//! query API on one address, and the transform between them.

use std::sync::Arc;

use crate::config::TechmonConfig;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Log(#[from] techmon_eventlog::LogError),
    #[error(transparent)]
    Service(#[from] techmon_service::ServiceError),
    #[error(transparent)]
    Lake(#[from] techmon_lake::LakeError),
    #[error(transparent)]
    Transform(#[from] techmon_transform::TransformError),
    #[error(transparent)]
    Query(#[from] techmon_query::QueryError),
    #[error("registering metrics: {0}")]
    Metrics(#[source] prometheus::Error),
    #[error("starting the query threads: {0}")]
    QueryRuntime(#[source] std::io::Error),
    #[error(transparent)]
    DevelopmentTokens(#[from] crate::config::DevelopmentTokensOffLoopback),
}

/// The longest pause between tries of a transform whose log or lake is down.
const BACKOFF_CAP: std::time::Duration = std::time::Duration::from_secs(300);

/// Runs the transform until stopped. After an outage of what it needs (the log, the
/// lake's storage) it reopens from the lake and goes on, after pauses that double up
/// to a cap; after a fault of the configuration or of the transform, which a retry
/// cannot mend, it stops with the error (ingest goes on, so nothing sent is lost).
async fn supervise_transform<F: Future<Output = ()> + Send>(
    first: techmon_transform::Transform,
    config: TechmonConfig,
    lake: techmon_lake::LakeLocation,
    log: Arc<dyn techmon_eventlog::EventLog>,
    until_stopped: impl Fn() -> F,
) -> Result<(), techmon_transform::TransformError> {
    // The registry `/metrics` shows holds these: a reopened transform counts on in them.
    let metrics = first.metrics().clone();
    let audit = first.audit_log();
    let mut transform = first;
    let mut backoff = techmon_service::Backoff::new(std::time::Duration::from_secs(5), BACKOFF_CAP);
    // Waits out a pause, or ends early (`false`) when the service stops.
    let pause = |pause: std::time::Duration| {
        let stopped = until_stopped();
        async move {
            tokio::select! {
                () = tokio::time::sleep(pause) => true,
                () = stopped => false,
            }
        }
    };
    loop {
        let running = std::time::Instant::now();
        match transform.run(until_stopped()).await {
            Ok(()) => return Ok(()),
            Err(e) if e.fault() == techmon_service::Fault::External => {
                // A transform that ran a while since the last outage starts over.
                if running.elapsed() > BACKOFF_CAP {
                    backoff.reset();
                }
                let wait = backoff.pause();
                tracing::warn!(error = %e, seconds = wait.as_secs(), "transform failed; resuming from the lake after a pause");
                if !pause(wait).await {
                    return Ok(());
                }
            }
            Err(e) => {
                tracing::error!(error = %e, fault = ?e.fault(), "transform stopped (a retry cannot mend this); ingest goes on");
                return Err(e);
            }
        }
        transform = loop {
            match techmon_transform::Transform::open(
                &config.transform,
                &lake,
                Arc::clone(&log),
                &config.log.topic,
            )
            .await
            {
                Ok(t) => {
                    let t = t.with_metrics(metrics.clone());
                    break match &audit {
                        Some(audit) => t.with_audit(Arc::clone(audit)),
                        None => t,
                    };
                }
                Err(e) if e.fault() == techmon_service::Fault::External => {
                    let wait = backoff.pause();
                    tracing::warn!(error = %e, seconds = wait.as_secs(), "cannot reopen the transform; trying again after a pause");
                    if !pause(wait).await {
                        return Ok(());
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, fault = ?e.fault(), "transform stopped (a retry cannot mend this); ingest goes on");
                    return Err(e);
                }
            }
        };
    }
}

/// The research routes: the query API and the reference import, for the users of
/// `query` and for `hubs` (with the hub role), with one audit trail; the query
/// metrics go into `registry`. The registry tables (regions, hubs, KPI targets) get their
/// built-in lists first where they have none, so that every answer names their
/// version.
pub async fn research_routes(
    query: &techmon_query::Config,
    (hubs, issued): (
        &[techmon_service::HubCredential],
        Arc<dyn techmon_service::IssuedTokens>,
    ),
    engine: Arc<techmon_query::Engine>,
    registry: &prometheus::Registry,
) -> Result<
    (
        techmon_service::OpenApiRouter,
        techmon_query::http::QueryService,
    ),
    ServeError,
> {
    let access = techmon_query::access(query, hubs)?.with_issued_tokens(issued);
    let lake = engine.catalogue().location().clone();
    if let Err(e) = techmon_reference::registry::write_built_in(&lake).await {
        // The lists as built in stand in until the lake answers.
        tracing::warn!(error = %e, "the built-in hubs and KPI targets could not be written to the lake");
    }
    let service = techmon_query::http::service(query, engine, access.clone(), registry)?;
    Ok((
        techmon_query::http::routes_of(service.clone())
            .merge(techmon_reference::routes(access, lake)),
        service,
    ))
}

/// Starts the SQL endpoints for researchers' tools that are configured: PostgreSQL
/// on `query.postgres_listen`, Flight SQL on `query.flight_listen`; on `runtime`,
/// until `shutdown` completes.
pub async fn start_sql_endpoints<F>(
    config: &TechmonConfig,
    service: techmon_query::http::QueryService,
    runtime: &tokio::runtime::Handle,
    shutdown: impl Fn() -> F,
) -> Result<(), ServeError>
where
    F: Future<Output = ()> + Send + 'static,
{
    if let Some(listen) = config.query.postgres_listen {
        let listener = endpoint_listener(config, listen, "PostgreSQL").await?;
        let (service, stopped) = (service.clone(), shutdown());
        runtime.spawn(async move {
            if let Err(error) = techmon_query::postgres::serve(listener, service, stopped).await {
                tracing::error!(%error, "the PostgreSQL endpoint stopped");
            }
        });
    }
    if let Some(listen) = config.query.flight_listen {
        let listener = endpoint_listener(config, listen, "Flight SQL").await?;
        let stopped = shutdown();
        runtime.spawn(async move {
            if let Err(error) = techmon_query::flight::serve(listener, service, stopped).await {
                tracing::error!(%error, "the Flight SQL endpoint stopped");
            }
        });
    }
    Ok(())
}

/// A SQL endpoint's listener, where development tokens may work there.
async fn endpoint_listener(
    config: &TechmonConfig,
    listen: std::net::SocketAddr,
    endpoint: &'static str,
) -> Result<tokio::net::TcpListener, ServeError> {
    config.check_development_tokens(crate::config::Served::HubsAndUsers, listen)?;
    let listener = techmon_service::bind(listen).await?;
    tracing::info!(%listen, endpoint, "SQL endpoint listening");
    Ok(listener)
}

/// Runs ingest, the transform and the query API on `config.ingest.listen` until
/// `shutdown` completes.
pub async fn run(
    config: &TechmonConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let listener = techmon_service::bind(config.ingest.listen).await?;
    run_on(config, listener, shutdown).await
}

/// Runs the services on a bound `listener` (the demo and tests bind port 0).
pub async fn run_on(
    config: &TechmonConfig,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let log = techmon_eventlog::open(&config.log).await?;
    tracing::info!(backend = log.backend(), topic = %config.log.topic, partitions = log.partitions(), "event log open");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = move || {
        let mut stopped = stopped.clone();
        async move {
            let _ = stopped.wait_for(|s| *s).await;
        }
    };
    // Opened here first, so a misconfiguration stops `serve` at start.
    let lake = config.lake.location()?;
    let first = techmon_transform::Transform::open(
        &config.transform,
        &lake,
        Arc::clone(&log),
        &config.log.topic,
    )
    .await?
    .with_audit(Arc::new(crate::audit::open(config)?));
    // One registry for `GET /metrics`: ingest's, the transform's and the queries'.
    let registry = prometheus::Registry::new();
    first
        .metrics()
        .register(&registry)
        .map_err(ServeError::Metrics)?;
    tracing::info!(lake = %config.lake.url, "transform resumes from the lake");
    let transform = tokio::spawn(supervise_transform(
        first,
        config.clone(),
        lake.clone(),
        Arc::clone(&log),
        until_stopped.clone(),
    ));
    let lake_for_probes = lake.clone();
    let engine = techmon_query::Engine::new(lake, config.query.limits())?;
    let person_keys =
        techmon_eventlog::person_keys::PersonKeys::open(&config.transform.person_keys)?;
    // Queries on threads of their own: the hubs' pushes and the transform keep theirs.
    let query_runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("techmon-query")
        .enable_all()
        .build()
        .map_err(ServeError::QueryRuntime)?;
    let hub_registry = crate::hub_registry::LakeHubRegistry::watch(
        lake_for_probes.clone(),
        config.lake.registry_refresh_seconds,
    );
    let (research, service) = research_routes(
        &config.query,
        (&config.ingest.hubs, hub_registry.clone()),
        Arc::new(engine),
        &registry,
    )
    .await?;
    let query = techmon_query::on_runtime(research, query_runtime.handle().clone());
    start_sql_endpoints(
        config,
        service,
        query_runtime.handle(),
        until_stopped.clone(),
    )
    .await?;
    // Ready while the event log and the lake answer.
    let probes = techmon_service::probes(
        techmon_transform::Transform::readiness(Arc::clone(&log), lake_for_probes.clone()),
        registry.clone(),
    );
    let stores = techmon_ingest::Stores {
        person_keys: Some(person_keys),
        audit: Some(Arc::new(crate::audit::open(config)?)),
        registry: Some(hub_registry),
    };
    let router = techmon_ingest::routes(&config.ingest, log, &registry, stores)?
        .merge(query)
        .merge(probes);
    let ingest = techmon_service::serve(listener, router, until_stopped());
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let ingest_result = ingest.await;
    // Requests have been answered: what is left there is ended, not waited for.
    query_runtime.shutdown_background();
    let transform_result = transform.await.unwrap_or(Ok(()));
    ingest_result?;
    transform_result?;
    Ok(())
}
