//! PostgreSQL's own catalogue (`pg_catalog`: `pg_class`, `pg_attribute`, `pg_type`,
//! …, and functions such as `format_type` and `pg_table_is_visible`), so that the
//! questions psql's `\d`, DBeaver and Power BI ask about tables get answers. It lists
//! the catalogue's tables and views as a first session has them.
//!
//! One listing for the life of the service: a client asks for a table's oid in one
//! query and for its columns by that oid in the next, each in a session of its own,
//! so the oids must not change between sessions.

use std::sync::Arc;

use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::pg_catalog::generate_series_arg_coercion::CoerceIntArgsToBigInt;
use datafusion_pg_catalog::setup_pg_catalog;
use deltalake::datafusion::catalog::SchemaProvider;
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::logical_expr::ScalarUDF;
use deltalake::datafusion::prelude::SessionContext;

/// The schema the catalogue's tables are in, as PostgreSQL clients see them.
const CATALOG: &str = "datafusion";
const SCHEMA: &str = "pg_catalog";

/// `pg_catalog` and its functions, ready to put in a session.
#[derive(Debug, Clone)]
pub struct PgCatalog {
    schema: Arc<dyn SchemaProvider>,
    functions: Vec<Arc<ScalarUDF>>,
}

impl PgCatalog {
    /// The catalogue as `listed` has it (a session with every table and view).
    pub fn new(listed: &SessionContext) -> Result<Self, DataFusionError> {
        let before: Vec<String> = listed.state().scalar_functions().keys().cloned().collect();
        setup_pg_catalog(listed, CATALOG, EmptyContextProvider).map_err(|e| *e)?;
        let schema = listed
            .catalog(CATALOG)
            .and_then(|c| c.schema(SCHEMA))
            .ok_or_else(|| DataFusionError::Internal("pg_catalog was not set up".into()))?;
        let functions = listed
            .state()
            .scalar_functions()
            .iter()
            .filter(|(name, _)| !before.contains(name))
            .map(|(_, f)| Arc::clone(f))
            .collect();
        Ok(Self { schema, functions })
    }

    /// Puts `pg_catalog` and its functions in `ctx`.
    pub fn install(&self, ctx: &SessionContext) -> Result<(), DataFusionError> {
        let catalog = ctx
            .catalog(CATALOG)
            .ok_or_else(|| DataFusionError::Internal("the session has no catalog".into()))?;
        catalog.register_schema(SCHEMA, Arc::clone(&self.schema))?;
        for function in &self.functions {
            ctx.register_udf(function.as_ref().clone());
        }
        CoerceIntArgsToBigInt::widen(ctx);
        Ok(())
    }
}
