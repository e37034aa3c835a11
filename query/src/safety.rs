//! Read-only by construction, first layer: only one SELECT / WITH / EXPLAIN /
//! DESCRIBE / SHOW statement per request reaches the planner. The second layer is the
//! planner's own `SQLOptions` (no DDL, no DML, no SET), and the third is the catalogue:
//! the session has no file or URL tables to reach.

use deltalake::datafusion::sql::parser::{DFParser, Statement};
use deltalake::datafusion::sql::sqlparser::ast::{SetExpr, Statement as SqlStatement};

use crate::QueryError;

/// Checks that `sql` is exactly one statement that only reads.
pub fn check(sql: &str) -> Result<(), QueryError> {
    let statements = DFParser::parse_sql(sql).map_err(|e| QueryError::Sql(Box::new(e)))?;
    match statements.len() {
        1 => reads_only(&statements[0]),
        count => Err(QueryError::NotOneStatement { count }),
    }
}

fn reads_only(statement: &Statement) -> Result<(), QueryError> {
    let refused = |text: String| QueryError::StatementRefused {
        statement: leading_keywords(&text),
    };
    match statement {
        Statement::Statement(inner) => match inner.as_ref() {
            SqlStatement::Query(query) => match query.body.as_ref() {
                // SELECT … INTO creates a table.
                SetExpr::Select(select) if select.into.is_some() => {
                    Err(QueryError::StatementRefused {
                        statement: "SELECT INTO".into(),
                    })
                }
                _ => Ok(()),
            },
            SqlStatement::Explain { statement, .. } => {
                reads_only(&Statement::Statement(statement.clone()))
            }
            SqlStatement::ExplainTable { .. }
            | SqlStatement::ShowTables { .. }
            | SqlStatement::ShowColumns { .. }
            | SqlStatement::ShowFunctions { .. }
            | SqlStatement::ShowVariable { .. } => Ok(()),
            other => Err(refused(other.to_string())),
        },
        Statement::Explain(explain) => reads_only(&explain.statement),
        other => Err(refused(other.to_string())),
    }
}

/// The statement's leading keywords (`CREATE EXTERNAL TABLE`, `INSERT INTO`, `SET`),
/// to name what was refused without repeating the rest of the statement.
fn leading_keywords(text: &str) -> String {
    let words: Vec<&str> = text
        .split_whitespace()
        .take_while(|w| w.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .take(3)
        .collect();
    if words.is_empty() {
        "this statement".into()
    } else {
        words.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reading_statements_pass() {
        for sql in [
            "SELECT 1",
            "WITH a AS (SELECT 1 AS x) SELECT x FROM a",
            "EXPLAIN SELECT 1",
            "DESCRIBE activities",
            "SHOW TABLES",
            "SHOW COLUMNS FROM activities",
        ] {
            assert!(check(sql).is_ok(), "{sql} should pass: {:?}", check(sql));
        }
    }

    #[test]
    fn writing_statements_are_refused_by_name() {
        for (sql, named) in [
            ("CREATE TABLE t (a INT)", "CREATE TABLE"),
            (
                "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
                "CREATE EXTERNAL TABLE",
            ),
            ("INSERT INTO activities VALUES (1)", "INSERT INTO"),
            ("DELETE FROM activities", "DELETE FROM"),
            ("COPY (SELECT 1) TO '/tmp/x.csv'", "COPY"),
            ("SET datafusion.execution.batch_size = 1", "SET"),
            ("DROP TABLE activities", "DROP TABLE"),
            ("EXPLAIN COPY (SELECT 1) TO '/tmp/x.csv'", "COPY"),
            ("SELECT 1 INTO t", "SELECT INTO"),
        ] {
            match check(sql) {
                Err(QueryError::StatementRefused { statement }) => {
                    assert_eq!(statement, named, "{sql}")
                }
                other => panic!("{sql}: expected a refusal, got {other:?}"),
            }
        }
    }

    #[test]
    fn more_than_one_statement_is_refused() {
        assert!(matches!(
            check("SELECT 1; DROP TABLE activities"),
            Err(QueryError::NotOneStatement { count: 2 })
        ));
    }
}
