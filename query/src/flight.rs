//! The query service over Arrow Flight SQL: the fast path for large answers, as the
//! ADBC drivers for Python and R fetch them. The same users, rules and catalogue as
//! `POST /v1/sql`:
//! - every call carries the user's token, as `authorization: Bearer <token>`, or
//!   once as the password of a Basic handshake, which answers with the bearer token
//!   to use; a hub's token is refused, and so are unknown ones;
//! - a statement is planned for its columns when its flight is asked for, and run
//!   through the engine as `POST /v1/sql` runs it when its ticket is fetched (one
//!   audit entry); prepared statements are the same, without parameters;
//! - the table versions an answer read come back as the `techmon-table-versions`
//!   header, and a request's `techmon-table-versions` header pins them;
//! - the catalogue (`GetCatalogs`, `GetDbSchemas`, `GetTables`, with each table's
//!   columns) lists the tables and views `GET /v1/tables` lists.

use std::pin::Pin;
use std::time::Instant;

use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTables, CommandPreparedStatementQuery, CommandStatementQuery,
    ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse, IpcMessage,
    SchemaAsIpc, Ticket,
};
use base64::Engine as _;
use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::{Schema, SchemaRef};
use deltalake::arrow::ipc::writer::IpcWriteOptions;
use futures::{Stream, TryStreamExt, stream};
use prost::Message;
use techmon_lake::TableVersions;
use techmon_service::audit::{AuditAction, AuditEntry};
use techmon_service::{ApiError, Asked, User};
use tokio::net::TcpListener;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status, Streaming};

use crate::QueryError;
use crate::catalogue::SourceKind;
use crate::http::QueryService;

/// Base64 as Basic authorization comes, with its padding or without.
const PADDED_OR_NOT: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// The header that pins table versions, and that names those an answer read.
const VERSIONS_HEADER: &str = "techmon-table-versions";

/// Serves Flight SQL on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    service: QueryService,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), QueryError> {
    let flight = FlightSql {
        service,
        sql_info: sql_info(),
    };
    tonic::transport::Server::builder()
        .add_service(FlightServiceServer::new(flight))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await
        .map_err(|e| {
            QueryError::engine(
                "Flight SQL",
                deltalake::datafusion::error::DataFusionError::External(Box::new(e)),
            )
        })
}

/// What the server says of itself (`GetSqlInfo`).
fn sql_info() -> SqlInfoData {
    let mut info = SqlInfoDataBuilder::new();
    info.append(SqlInfo::FlightSqlServerName, "techmon");
    info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    info.append(SqlInfo::FlightSqlServerArrowVersion, "59");
    info.append(SqlInfo::FlightSqlServerReadOnly, true);
    info.build().expect("a fixed set of server facts")
}

pub struct FlightSql {
    service: QueryService,
    sql_info: SqlInfoData,
}

/// A streamed answer.
type Answers<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

impl FlightSql {
    /// The user whose token the request carries, if they may ask.
    fn user(&self, metadata: &MetadataMap) -> Result<User, Status> {
        let token = metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                Status::unauthenticated("send your token: authorization: Bearer <token>")
            })?;
        self.user_of_token(token)
    }

    fn user_of_token(&self, token: &str) -> Result<User, Status> {
        self.service
            .sql_endpoint_user(token, "Flight SQL")
            .map_err(|e| status(&e))
    }

    /// The flight of `sql`: its columns, and the ticket that runs it.
    async fn flight(
        &self,
        sql: &str,
        metadata: &MetadataMap,
        descriptor: FlightDescriptor,
    ) -> Result<Response<FlightInfo>, Status> {
        let user = self.user(metadata)?;
        let (schema, _) = self
            .service
            .answer_schema(&user, sql, &pins(metadata)?)
            .await
            .map_err(|e| status(&e.into()))?;
        let ticket = TicketStatementQuery {
            statement_handle: sql.as_bytes().to_vec().into(),
        };
        let endpoint =
            FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec()));
        let info = FlightInfo::new()
            .try_with_schema(&schema)
            .map_err(|e| Status::internal(e.to_string()))?
            .with_descriptor(descriptor)
            .with_endpoint(endpoint)
            .with_ordered(true);
        Ok(Response::new(info))
    }

    /// Runs `sql` and streams its answer.
    async fn rows(
        &self,
        sql: &[u8],
        metadata: &MetadataMap,
    ) -> Result<Response<Answers<arrow_flight::FlightData>>, Status> {
        let user = self.user(metadata)?;
        let sql = std::str::from_utf8(sql).map_err(|_| {
            Status::invalid_argument("the ticket is not a statement of this server")
        })?;
        let started = Instant::now();
        let mut asked = Asked {
            user: std::borrow::Cow::Borrowed(&user),
            entry: AuditEntry::new(AuditAction::Query, started),
            started,
        };
        asked.entry.sql = Some(sql.to_string());
        asked.entry.detail = Some("Flight SQL".into());
        let answer = self.service.answer(&mut asked, sql, &pins(metadata)?).await;
        let answer = self
            .service
            .access
            .audited(asked, answer)
            .map_err(|e| status(&e))?;
        let versions = answer.versions.to_string();
        let schema: SchemaRef = answer.schema.clone();
        let batches = stream::iter(answer.batches.into_iter().map(Ok));
        let encoded = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(batches)
            .map_err(Status::from);
        let mut response = Response::new(Box::pin(encoded) as Answers<_>);
        if let Ok(value) = MetadataValue::try_from(versions.as_str()) {
            response.metadata_mut().insert(VERSIONS_HEADER, value);
        }
        Ok(response)
    }
}

/// The catalogue and schema the catalogue's tables are in, as SQL names them.
const CATALOG: &str = "datafusion";
const SCHEMA: &str = "public";

impl FlightSql {
    /// The flight of a listing (the catalogue, the server's facts): its ticket is
    /// the command itself.
    fn listing<T>(
        &self,
        request: Request<T>,
        command: arrow_flight::sql::Any,
        schema: &Schema,
    ) -> Result<Response<FlightInfo>, Status>
    where
        T: Into<FlightDescriptor>,
    {
        self.user(request.metadata())?;
        let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(command.encode_to_vec()));
        let info = FlightInfo::new()
            .try_with_schema(schema)
            .map_err(|e| Status::internal(e.to_string()))?
            .with_descriptor(request.into_inner().into())
            .with_endpoint(endpoint);
        Ok(Response::new(info))
    }
}

/// A listing's one batch as a stream of flight data.
fn listed(
    batch: Result<RecordBatch, arrow_flight::error::FlightError>,
) -> Result<Response<Answers<arrow_flight::FlightData>>, Status> {
    let batch = batch.map_err(|e| Status::internal(e.to_string()))?;
    let encoded = FlightDataEncoderBuilder::new()
        .with_schema(batch.schema())
        .build(stream::iter([Ok(batch)]))
        .map_err(Status::from);
    Ok(Response::new(Box::pin(encoded) as Answers<_>))
}

/// The table versions a request pins.
fn pins(metadata: &MetadataMap) -> Result<TableVersions, Status> {
    metadata
        .get(VERSIONS_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .parse()
        .map_err(|e| status(&QueryError::from(e).into()))
}

/// An answer's error as gRPC knows it, with techmon's stable code in front.
fn status(error: &ApiError) -> Status {
    let message = format!("{}: {}", error.code, error.message);
    match error.status.as_u16() {
        400 | 406 | 413 | 415 => Status::invalid_argument(message),
        401 => Status::unauthenticated(message),
        403 => Status::permission_denied(message),
        404 => Status::not_found(message),
        422 => Status::resource_exhausted(message),
        429 | 503 => Status::unavailable(message),
        _ => Status::internal(message),
    }
}

#[tonic::async_trait]
impl FlightSqlService for FlightSql {
    type FlightService = FlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<Answers<HandshakeResponse>>, Status> {
        let authorization = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                Status::unauthenticated(
                    "send your token as the password of Basic authorization, or as a Bearer token",
                )
            })?;
        let token = match authorization.strip_prefix("Basic ") {
            Some(encoded) => {
                // With padding or without: ADBC's driver leaves it off.
                let decoded = PADDED_OR_NOT
                    .decode(encoded.trim())
                    .ok()
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .ok_or_else(|| Status::invalid_argument("the Basic authorization is not base64 of user:token"))?;
                decoded.split_once(':').map(|(_, token)| token.to_string()).ok_or_else(|| Status::invalid_argument("the Basic authorization is not user:token"))?
            }
            None => authorization
                .strip_prefix("Bearer ")
                .map(str::to_string)
                .ok_or_else(|| Status::unauthenticated("send your token as the password of Basic authorization, or as a Bearer token"))?,
        };
        self.user_of_token(&token)?;
        let answer = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into_bytes().into(),
        };
        let mut response = Response::new(Box::pin(stream::iter([Ok(answer)])) as Answers<_>);
        let bearer = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| Status::invalid_argument("the token is not a header value"))?;
        response.metadata_mut().insert("authorization", bearer);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let descriptor = request.get_ref().clone();
        self.flight(&query.query, request.metadata(), descriptor)
            .await
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let sql = String::from_utf8(query.prepared_statement_handle.to_vec())
            .map_err(|_| Status::invalid_argument("not a prepared statement of this server"))?;
        let descriptor = request.get_ref().clone();
        self.flight(&sql, request.metadata(), descriptor).await
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.rows(&ticket.statement_handle, request.metadata())
            .await
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.rows(&query.prepared_statement_handle, request.metadata())
            .await
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let user = self.user(request.metadata())?;
        let (schema, parameters) = self
            .service
            .answer_schema(&user, &query.query, &pins(request.metadata())?)
            .await
            .map_err(|e| status(&e.into()))?;
        if !parameters.is_empty() {
            return Err(Status::invalid_argument(
                "bad_sql: statements with parameters are not taken over Flight SQL yet; put the values in the SQL",
            ));
        }
        let IpcMessage(dataset_schema) = SchemaAsIpc::new(&schema, &IpcWriteOptions::default())
            .try_into()
            .map_err(|e: deltalake::arrow::error::ArrowError| Status::internal(e.to_string()))?;
        let IpcMessage(parameter_schema) =
            SchemaAsIpc::new(&Schema::empty(), &IpcWriteOptions::default())
                .try_into()
                .map_err(|e: deltalake::arrow::error::ArrowError| {
                    Status::internal(e.to_string())
                })?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: query.query.into_bytes().into(),
            dataset_schema,
            parameter_schema,
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        request: Request<arrow_flight::Action>,
    ) -> Result<(), Status> {
        self.user(request.metadata())?;
        Ok(())
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = self.sql_info.schema();
        self.listing(request, query.as_any(), &schema)
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.user(request.metadata())?;
        let batch = self.sql_info.record_batch(query.info);
        listed(batch)
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.listing(request, query.as_any(), &schema)
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.user(request.metadata())?;
        let mut catalogs = query.into_builder();
        catalogs.append(CATALOG);
        listed(catalogs.build())
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.listing(request, query.as_any(), &schema)
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.user(request.metadata())?;
        let mut schemas = query.into_builder();
        schemas.append(CATALOG, SCHEMA);
        listed(schemas.build())
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.listing(request, query.as_any(), &schema)
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.user(request.metadata())?;
        let catalogue = self
            .service
            .engine
            .describe()
            .await
            .map_err(|e| status(&e.into()))?;
        let mut tables = query.into_builder();
        for table in &catalogue {
            let kind = match table.kind {
                SourceKind::View | SourceKind::Estimate => "VIEW",
                _ => "TABLE",
            };
            tables
                .append(CATALOG, SCHEMA, &table.name, kind, &table.schema)
                .map_err(|e| Status::internal(e.to_string()))?;
        }
        listed(tables.build())
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}
