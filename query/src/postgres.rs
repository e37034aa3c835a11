//! The query service over PostgreSQL's wire protocol, for researchers' own tools:
//! psql, DBeaver, Power BI, R (RPostgres), Python (psycopg). The same users, rules
//! and catalogue as `POST /v1/sql`:
//! - the password is the user's token (the user name is free); a hub's token is
//!   refused, as are unknown ones, and every refusal is in the audit trail;
//! - each statement goes through the engine as `POST /v1/sql` sends it: read-only,
//!   output control for researchers, the limits of rows, memory and time, an audit
//!   entry per statement;
//! - the table versions an answer read come as a NOTICE after it;
//!   `SET techmon.versions = 'activities=3,…'` pins them for the statements after it
//!   (`RESET techmon.versions` or `''` unpins), `SHOW techmon.versions` shows the pin;
//! - the settings clients send as they connect (`SET extra_float_digits`,
//!   `application_name`, `datestyle`, …) are taken and change nothing; any other
//!   `SET`, and every statement that writes, is refused.
//!
//! Errors carry a SQLSTATE for the tool and techmon's stable code as the hint.

use std::fmt::Debug;
use std::sync::Arc;
use std::time::Instant;

use arrow_pg::datatypes::df::deserialize_parameters;
use arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch, into_pg_type};
use async_trait::async_trait;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use deltalake::arrow::array::{RecordBatch, StringArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::datafusion::common::ParamValues;
use deltalake::datafusion::logical_expr::lit;
use deltalake::datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, Set, Statement, Value, VisitMut, VisitorMut,
};
use deltalake::datafusion::sql::unparser::Unparser;
use futures::{Sink, SinkExt, stream};
use pgwire::api::auth::{
    DefaultServerParameterProvider, LoginInfo, StartupHandler, finish_authentication,
    protocol_negotiation, save_startup_parameters_to_metadata,
};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, PgWireConnectionState, PgWireServerHandlers, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::startup::Authentication;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::types::format::FormatOptions;
use techmon_lake::TableVersions;
use techmon_service::audit::{AuditAction, AuditEntry};
use techmon_service::{ApiError, Asked, User};
use tokio::net::TcpListener;

use crate::QueryError;
use crate::http::QueryService;

/// The client setting that pins table versions.
const VERSIONS_SETTING: &str = "techmon.versions";

/// Settings clients send as they connect, taken without effect: answers are the
/// same whatever they say.
const CLIENT_SETTINGS: &[&str] = &[
    "application_name",
    "client_encoding",
    "client_min_messages",
    "datestyle",
    "extra_float_digits",
    "intervalstyle",
    "search_path",
    "statement_timeout",
    "timezone",
    "time zone",
];

/// Serves the PostgreSQL protocol on `listener` until `shutdown` completes; each
/// connection runs on a task of its own, and a failing one ends only itself.
pub async fn serve(
    listener: TcpListener,
    service: QueryService,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), QueryError> {
    service.engine.speak_postgres().await?;
    let handlers = Arc::new(Handlers::new(service));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) => {
                    let handlers = Arc::clone(&handlers);
                    tokio::spawn(async move {
                        if let Err(error) = pgwire::tokio::process_socket(socket, None, handlers).await {
                            tracing::debug!(%peer, %error, "a PostgreSQL connection ended with an error");
                        }
                    });
                }
                Err(error) => tracing::warn!(%error, "accepting a PostgreSQL connection failed"),
            },
        }
    }
}

/// The handlers of every connection.
struct Handlers {
    startup: Arc<TokenStartup>,
    queries: Arc<Queries>,
}

impl Handlers {
    fn new(service: QueryService) -> Self {
        let mut parameters = DefaultServerParameterProvider::default();
        parameters.default_transaction_read_only = true;
        parameters.time_zone = "UTC".into();
        Self {
            startup: Arc::new(TokenStartup {
                service: service.clone(),
                parameters,
            }),
            queries: Arc::new(Queries {
                service,
                parser: Arc::new(Parser {
                    sql: PostgresCompatibilityParser::new(),
                }),
            }),
        }
    }
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.queries)
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::clone(&self.queries)
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        Arc::clone(&self.startup)
    }
}

/// The connection's user, once the token checked out.
struct Connected(User);

/// Asks for the token as a cleartext password, and takes a researcher's, an
/// analyst's or an admin's.
struct TokenStartup {
    service: QueryService,
    parameters: DefaultServerParameterProvider,
}

#[async_trait]
impl StartupHandler for TokenStartup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::CleartextPassword,
                    ))
                    .await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(password) => {
                let token = password.into_password()?.password;
                let login = LoginInfo::from_client_info(client);
                let name = login.user().unwrap_or_default().to_string();
                let user = match self
                    .service
                    .sql_endpoint_user(&token, "the PostgreSQL endpoint")
                {
                    Ok(user) => user,
                    Err(refusal) if refusal.code == "forbidden" => {
                        return Err(fatal("28000", &refusal));
                    }
                    Err(_) => return Err(PgWireError::InvalidPassword(name)),
                };
                client.session_extensions().insert(Connected(user));
                finish_authentication(client, &self.parameters).await?;
            }
            _ => {}
        }
        Ok(())
    }
}

/// What a statement is, as the connection handles it.
#[derive(Debug, Clone)]
enum Command {
    /// Asked of the engine.
    Query {
        statement: Box<Statement>,
        /// The answer's columns (for Describe) and the parameters' types.
        schema: SchemaRef,
        parameters: Vec<Option<DataType>>,
    },
    /// `SET techmon.versions = '…'` (empty: the latest).
    PinVersions(String),
    /// `SHOW techmon.versions`.
    ShowVersions,
    /// A setting a client sends as it connects, or a transaction's start or end:
    /// taken, with this tag.
    Taken(&'static str),
}

struct Parser {
    sql: PostgresCompatibilityParser,
}

impl Parser {
    fn statements(&self, sql: &str) -> PgWireResult<Vec<Statement>> {
        self.sql
            .parse(sql)
            .map_err(|e| user_error("42601", &format!("the SQL does not parse: {e}"), "bad_sql"))
    }
}

/// The statements of one connection, simple and extended.
struct Queries {
    service: QueryService,
    parser: Arc<Parser>,
}

impl Queries {
    /// What `statement` is; a query is planned, for its columns.
    async fn command<C: ClientInfo>(
        &self,
        client: &C,
        statement: Statement,
    ) -> PgWireResult<Command> {
        if let Some(command) = setting(&statement)? {
            return Ok(command);
        }
        let user = connected(client)?;
        let sql = statement.to_string();
        let (schema, parameters) = self
            .service
            .answer_schema(&user.0, &sql, &pins(client)?)
            .await
            .map_err(|e| query_error(e.into()))?;
        Ok(Command::Query {
            statement: Box::new(statement),
            schema,
            parameters,
        })
    }

    /// Runs `command`; a query with its `parameters` given.
    async fn run<C>(
        &self,
        client: &mut C,
        command: &Command,
        parameters: &ParamValues,
        format: &Format,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match command {
            Command::Taken(tag) => Ok(Response::Execution(Tag::new(tag))),
            Command::PinVersions(pins) => {
                // Checked now, so that a bad pin fails its SET and not what follows.
                pins.parse::<TableVersions>()
                    .map_err(|e| query_error(QueryError::from(e).into()))?;
                client
                    .metadata_mut()
                    .insert(VERSIONS_SETTING.into(), pins.clone());
                Ok(Response::Execution(Tag::new("SET")))
            }
            Command::ShowVersions => {
                let value = client
                    .metadata()
                    .get(VERSIONS_SETTING)
                    .cloned()
                    .unwrap_or_default();
                let schema = Arc::new(Schema::new(vec![Field::new(
                    VERSIONS_SETTING,
                    DataType::Utf8,
                    false,
                )]));
                let batch = RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![Arc::new(StringArray::from(vec![value]))],
                )
                .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
                rows(&schema, vec![batch], format, client)
            }
            Command::Query { statement, .. } => {
                let user = connected(client)?;
                let sql = with_parameters(statement, parameters)?.to_string();
                let started = Instant::now();
                let mut asked = Asked {
                    user: std::borrow::Cow::Borrowed(&user.0),
                    entry: AuditEntry::new(AuditAction::Query, started),
                    started,
                };
                asked.entry.sql = Some(sql.clone());
                asked.entry.detail = Some("PostgreSQL".into());
                let answer = self.service.answer(&mut asked, &sql, &pins(client)?).await;
                let answer = self
                    .service
                    .access
                    .audited(asked, answer)
                    .map_err(query_error)?;
                let mut notice = format!("table versions: {}", answer.versions);
                if let Some(suppressed) = &answer.suppressed {
                    notice.push_str(&format!("; output control: {}", suppressed.header()));
                }
                client
                    .send(PgWireBackendMessage::NoticeResponse(
                        ErrorInfo::new("NOTICE".into(), "00000".into(), notice).into(),
                    ))
                    .await?;
                rows(&answer.schema, answer.batches, format, client)
            }
        }
    }
}

/// The rows of an answer, in the formats the client asked for.
fn rows<C: ClientInfo>(
    schema: &SchemaRef,
    batches: Vec<RecordBatch>,
    format: &Format,
    client: &C,
) -> PgWireResult<Response> {
    let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
    let fields = Arc::new(arrow_schema_to_pg_fields(schema, format, Some(options))?);
    let encoded = Arc::clone(&fields);
    let rows = stream::iter(
        batches
            .into_iter()
            .flat_map(move |batch| encode_recordbatch(Arc::clone(&encoded), batch)),
    );
    Ok(Response::Query(QueryResponse::new(fields, rows)))
}

#[async_trait]
impl SimpleQueryHandler for Queries {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statements = self.parser.statements(query)?;
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let mut responses = Vec::with_capacity(statements.len());
        for statement in statements {
            let command = self.command(client, statement).await?;
            let no_parameters = ParamValues::List(vec![]);
            responses.push(
                self.run(client, &command, &no_parameters, &Format::UnifiedText)
                    .await?,
            );
        }
        Ok(responses)
    }
}

/// A prepared statement: its SQL's command (`None` for an empty statement).
type Prepared = Option<Command>;

#[async_trait]
impl QueryParser for Queries {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut statements = self.parser.statements(sql)?;
        match statements.len() {
            0 => Ok(Some(None)),
            1 => Ok(Some(Some(
                self.command(client, statements.remove(0)).await?,
            ))),
            count => Err(user_error(
                "42601",
                &format!("send exactly one SQL statement per request (got {count})"),
                "not_one_statement",
            )),
        }
    }

    fn get_parameter_types(&self, prepared: &Prepared) -> PgWireResult<Vec<Type>> {
        match prepared {
            Some(Command::Query { parameters, .. }) => parameters
                .iter()
                .map(|t| t.as_ref().map_or(Ok(Type::UNKNOWN), into_pg_type))
                .collect(),
            _ => Ok(vec![]),
        }
    }

    fn get_result_schema(
        &self,
        prepared: &Prepared,
        format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let format = format.unwrap_or(&Format::UnifiedText);
        match prepared {
            Some(Command::Query { schema, .. }) => arrow_schema_to_pg_fields(schema, format, None),
            Some(Command::ShowVersions) => arrow_schema_to_pg_fields(
                &Schema::new(vec![Field::new(VERSIONS_SETTING, DataType::Utf8, false)]),
                format,
                None,
            ),
            _ => Ok(vec![]),
        }
    }
}

#[async_trait]
impl ExtendedQueryHandler for Queries {
    type Statement = Prepared;
    type QueryParser = Self;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::new(Self {
            service: self.service.clone(),
            parser: Arc::clone(&self.parser),
        })
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Prepared>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Prepared>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let Some(command) = &portal.statement.statement else {
            return Ok(Response::EmptyQuery);
        };
        let parameters = match command {
            Command::Query { parameters, .. } => {
                let types: Vec<Option<&DataType>> = parameters.iter().map(Option::as_ref).collect();
                deserialize_parameters(portal, &types)?
            }
            _ => ParamValues::List(vec![]),
        };
        self.run(client, command, &parameters, &portal.result_column_format)
            .await
    }
}

/// What a `SET`, `SHOW`, `RESET` or transaction statement is; `None` for any other.
fn setting(statement: &Statement) -> PgWireResult<Option<Command>> {
    let is_versions = |name: &str| name.eq_ignore_ascii_case(VERSIONS_SETTING);
    Ok(Some(match statement {
        Statement::Set(Set::SingleAssignment {
            variable, values, ..
        }) => {
            let name = variable.to_string();
            if is_versions(&name) {
                let value = match values.as_slice() {
                    [SqlExpr::Value(v)] => match &v.value {
                        Value::SingleQuotedString(text) | Value::DoubleQuotedString(text) => {
                            text.clone()
                        }
                        other => other.to_string(),
                    },
                    _ => {
                        return Err(user_error(
                            "22023",
                            "SET techmon.versions takes one quoted value: 'activities=3,participants=7'",
                            "bad_version_pin",
                        ));
                    }
                };
                Command::PinVersions(value)
            } else if CLIENT_SETTINGS
                .iter()
                .any(|s| s.eq_ignore_ascii_case(&name))
            {
                Command::Taken("SET")
            } else {
                return Err(refused_setting(&name));
            }
        }
        Statement::Set(Set::SetTimeZone { .. } | Set::SetNames { .. }) => Command::Taken("SET"),
        Statement::Set(_) => return Err(refused_setting("this")),
        Statement::ShowVariable { variable }
            if is_versions(
                &variable
                    .iter()
                    .map(|i| i.value.as_str())
                    .collect::<Vec<_>>()
                    .join("."),
            ) =>
        {
            Command::ShowVersions
        }
        Statement::Reset(reset) if is_versions(reset.to_string().trim_start_matches("RESET ")) => {
            Command::PinVersions(String::new())
        }
        Statement::StartTransaction { .. } => Command::Taken("BEGIN"),
        Statement::Commit { .. } => Command::Taken("COMMIT"),
        Statement::Rollback { .. } => Command::Taken("ROLLBACK"),
        _ => return Ok(None),
    }))
}

fn refused_setting(name: &str) -> PgWireError {
    user_error(
        "42501",
        &format!(
            "SET {name} is not allowed: the one setting techmon takes is {VERSIONS_SETTING} (and the client settings tools send as they connect)"
        ),
        "statement_not_allowed",
    )
}

/// The connection's user.
fn connected<C: ClientInfo>(client: &C) -> PgWireResult<Arc<Connected>> {
    client
        .session_extensions()
        .get::<Connected>()
        .ok_or_else(|| {
            user_error(
                "28000",
                "the connection is not authenticated",
                "unauthorized",
            )
        })
}

/// The table versions the connection pinned.
fn pins<C: ClientInfo>(client: &C) -> PgWireResult<TableVersions> {
    client
        .metadata()
        .get(VERSIONS_SETTING)
        .map_or("", String::as_str)
        .parse()
        .map_err(|e| query_error(QueryError::from(e).into()))
}

/// `statement` with its placeholders (`$1`, …) replaced by the values given.
fn with_parameters(statement: &Statement, parameters: &ParamValues) -> PgWireResult<Statement> {
    let ParamValues::List(values) = parameters else {
        return Err(user_error(
            "08P01",
            "parameters are positional ($1, $2, …)",
            "bad_request",
        ));
    };
    if values.is_empty() {
        return Ok(statement.clone());
    }
    struct Substitute<'a> {
        values: &'a [deltalake::datafusion::common::metadata::ScalarAndMetadata],
        failed: Option<PgWireError>,
    }
    impl VisitorMut for Substitute<'_> {
        type Break = ();
        fn post_visit_expr(&mut self, expr: &mut SqlExpr) -> std::ops::ControlFlow<()> {
            if let SqlExpr::Value(value) = expr
                && let Value::Placeholder(name) = &value.value
            {
                let index = name
                    .trim_start_matches('$')
                    .parse::<usize>()
                    .ok()
                    .and_then(|n| n.checked_sub(1));
                match index.and_then(|i| self.values.get(i)) {
                    Some(given) => match Unparser::default().expr_to_sql(&lit(given.value.clone()))
                    {
                        Ok(literal) => *expr = literal,
                        Err(e) => self.failed = Some(PgWireError::ApiError(Box::new(e))),
                    },
                    None => {
                        self.failed = Some(user_error(
                            "08P01",
                            &format!("no value for parameter {name}"),
                            "bad_request",
                        ));
                    }
                }
            }
            std::ops::ControlFlow::Continue(())
        }
    }
    let mut statement = statement.clone();
    let mut substitute = Substitute {
        values,
        failed: None,
    };
    let _ = statement.visit(&mut substitute);
    match substitute.failed {
        Some(error) => Err(error),
        None => Ok(statement),
    }
}

/// An error answer with SQLSTATE `code`, and techmon's stable code as the hint.
fn user_error(code: &str, message: &str, techmon_code: &str) -> PgWireError {
    let mut info = ErrorInfo::new("ERROR".into(), code.into(), message.into());
    info.hint = Some(format!("techmon error code: {techmon_code}"));
    PgWireError::UserError(Box::new(info))
}

fn fatal(code: &str, error: &ApiError) -> PgWireError {
    let mut info = ErrorInfo::new("FATAL".into(), code.into(), error.message.clone());
    info.hint = Some(format!("techmon error code: {}", error.code));
    PgWireError::UserError(Box::new(info))
}

/// An answer's error as PostgreSQL clients know it: the SQLSTATE of its kind.
fn query_error(error: ApiError) -> PgWireError {
    let code = match error.code {
        "bad_sql" | "not_one_statement" => "42601",
        "unknown_table" => "42P01",
        "statement_not_allowed" => "25006",
        "disclosure_refused" | "forbidden" => "42501",
        "row_limit" | "value_too_large" => "54000",
        "memory_limit" | "memory_busy" => "53200",
        "timeout" => "57014",
        "bad_version_pin" | "version_unavailable" => "22023",
        "busy" | "too_many_queries" => "53300",
        "unauthorized" => "28000",
        "lake_unavailable" | "audit_unavailable" | "releases_unavailable" => "57P03",
        _ => "XX000",
    };
    user_error(code, &error.message, error.code)
}
