//! Rows into Arrow arrays as they are made: a round holds its rows as column buffers
//! (about the size of the Parquet they become, before compression), not as one
//! allocation per cell.

use std::fmt::Write as _;
use std::sync::Arc;

use deltalake::arrow::array::{
    ArrayBuilder, ArrayRef, BooleanBuilder, Float64Builder, Int32Builder, Int64Builder,
    ListBuilder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
};
use deltalake::arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use deltalake::arrow::error::ArrowError;
use techmon_lake::tables::Table;

use crate::TransformError;
use crate::tables::{Cell, Row};

/// One table's rows of a round, as Arrow arrays being built.
pub struct TableRows {
    pub table: &'static Table,
    schema: SchemaRef,
    columns: Vec<ColumnBuilder>,
    len: usize,
}

enum ColumnBuilder {
    Text(StringBuilder),
    Int(Int32Builder),
    BigInt(Int64Builder),
    Real(Float64Builder),
    Flag(BooleanBuilder),
    Time(TimestampMicrosecondBuilder, Option<Arc<str>>),
    Ints(ListBuilder<Int32Builder>),
    Texts(ListBuilder<StringBuilder>),
}

impl TableRows {
    pub fn new(table: &'static Table) -> Self {
        let schema = table.arrow_schema();
        let columns = schema
            .fields()
            .iter()
            .map(|field| match field.data_type() {
                DataType::Int32 => ColumnBuilder::Int(Int32Builder::new()),
                DataType::Int64 => ColumnBuilder::BigInt(Int64Builder::new()),
                DataType::Float64 => ColumnBuilder::Real(Float64Builder::new()),
                DataType::Boolean => ColumnBuilder::Flag(BooleanBuilder::new()),
                DataType::Timestamp(TimeUnit::Microsecond, zone) => {
                    ColumnBuilder::Time(TimestampMicrosecondBuilder::new(), zone.clone())
                }
                DataType::List(item) if item.data_type() == &DataType::Int32 => {
                    ColumnBuilder::Ints(
                        ListBuilder::new(Int32Builder::new()).with_field(item.clone()),
                    )
                }
                DataType::List(item) => ColumnBuilder::Texts(
                    ListBuilder::new(StringBuilder::new()).with_field(item.clone()),
                ),
                _ => ColumnBuilder::Text(StringBuilder::new()),
            })
            .collect();
        Self {
            table,
            schema,
            columns,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds a row. A row that does not fit the table's columns (a bug in
    /// [`crate::tables::row`]) is refused whole, naming the column but not the value.
    pub fn push(&mut self, row: Row<'_>) -> Result<(), TransformError> {
        let misfit = |reason: String| TransformError::Rows {
            table: self.table.name,
            source: ArrowError::InvalidArgumentError(reason),
        };
        if row.0.len() != self.columns.len() {
            return Err(misfit(format!(
                "a row of {} cells for {} columns",
                row.0.len(),
                self.columns.len()
            )));
        }
        if let Some((c, _)) = self
            .columns
            .iter()
            .zip(&row.0)
            .enumerate()
            .find(|(_, (column, cell))| !column.fits(cell))
        {
            let field = self.schema.field(c);
            return Err(misfit(format!(
                "column {} ({}) cannot hold the row's cell",
                field.name(),
                field.data_type()
            )));
        }
        for (column, cell) in self.columns.iter_mut().zip(row.0) {
            column.append(cell);
        }
        self.len += 1;
        Ok(())
    }

    /// The rows as one batch of the table's schema, with the people's pseudonyms (one
    /// per row) in the table's person column.
    pub fn finish(self, pseudonyms: Option<ArrayRef>) -> Result<RecordBatch, TransformError> {
        let mut columns: Vec<ArrayRef> = self
            .columns
            .into_iter()
            .map(|column| match column {
                ColumnBuilder::Text(mut b) => ArrayBuilder::finish(&mut b),
                ColumnBuilder::Int(mut b) => ArrayBuilder::finish(&mut b),
                ColumnBuilder::BigInt(mut b) => ArrayBuilder::finish(&mut b),
                ColumnBuilder::Real(mut b) => ArrayBuilder::finish(&mut b),
                ColumnBuilder::Flag(mut b) => ArrayBuilder::finish(&mut b),
                ColumnBuilder::Time(mut b, zone) => Arc::new(b.finish().with_timezone_opt(zone)),
                ColumnBuilder::Ints(mut b) => ArrayBuilder::finish(&mut b),
                ColumnBuilder::Texts(mut b) => ArrayBuilder::finish(&mut b),
            })
            .collect();
        if let (Some((column, _)), Some(pseudonyms)) = (self.table.person_column(), pseudonyms) {
            columns[column] = pseudonyms;
        }
        RecordBatch::try_new(self.schema, columns).map_err(|source| TransformError::Rows {
            table: self.table.name,
            source,
        })
    }
}

impl ColumnBuilder {
    fn fits(&self, cell: &Cell) -> bool {
        match (self, cell) {
            (_, Cell::Null) => true,
            (ColumnBuilder::Text(_), Cell::Text(_) | Cell::Id(_) | Cell::SchoolYear(_))
            | (ColumnBuilder::BigInt(_), Cell::Int(_))
            | (ColumnBuilder::Real(_), Cell::Real(_))
            | (ColumnBuilder::Flag(_), Cell::Flag(_))
            | (ColumnBuilder::Time(..), Cell::Time(_))
            | (ColumnBuilder::Texts(_), Cell::Texts(_)) => true,
            (ColumnBuilder::Int(_), Cell::Int(v)) => i32::try_from(*v).is_ok(),
            (ColumnBuilder::Ints(_), Cell::Ints(values)) => {
                values.iter().all(|v| i32::try_from(*v).is_ok())
            }
            _ => false,
        }
    }

    /// Appends a cell that [`ColumnBuilder::fits`].
    fn append(&mut self, cell: Cell<'_>) {
        let small = |v: i64| i32::try_from(v).unwrap_or_default();
        match (self, cell) {
            (ColumnBuilder::Text(b), Cell::Text(v)) => b.append_value(v),
            (ColumnBuilder::Text(b), Cell::Id(v)) => {
                b.append_value(
                    v.hyphenated()
                        .encode_lower(&mut uuid::Uuid::encode_buffer()),
                );
            }
            (ColumnBuilder::Text(b), Cell::SchoolYear(v)) => {
                // Writing to a string builder cannot fail; the empty value ends the row's.
                let _ = write!(b, "{v}");
                b.append_value("");
            }
            (ColumnBuilder::Int(b), Cell::Int(v)) => b.append_value(small(v)),
            (ColumnBuilder::BigInt(b), Cell::Int(v)) => b.append_value(v),
            (ColumnBuilder::Real(b), Cell::Real(v)) => b.append_value(v),
            (ColumnBuilder::Flag(b), Cell::Flag(v)) => b.append_value(v),
            (ColumnBuilder::Time(b, _), Cell::Time(v)) => b.append_value(v),
            (ColumnBuilder::Ints(b), Cell::Ints(values)) => {
                b.values()
                    .extend(values.into_iter().map(|v| Some(small(v))));
                b.append(true);
            }
            (ColumnBuilder::Texts(b), Cell::Texts(values)) => {
                for v in values {
                    b.values().append_value(v);
                }
                b.append(true);
            }
            (column, _) => column.append_null(),
        }
    }

    fn append_null(&mut self) {
        match self {
            ColumnBuilder::Text(b) => b.append_null(),
            ColumnBuilder::Int(b) => b.append_null(),
            ColumnBuilder::BigInt(b) => b.append_null(),
            ColumnBuilder::Real(b) => b.append_null(),
            ColumnBuilder::Flag(b) => b.append_null(),
            ColumnBuilder::Time(b, _) => b.append_null(),
            ColumnBuilder::Ints(b) => b.append_null(),
            ColumnBuilder::Texts(b) => b.append_null(),
        }
    }
}
