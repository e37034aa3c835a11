use deltalake::parquet::basic::{Compression, ZstdLevel};
use deltalake::parquet::file::properties::WriterProperties;

use crate::tables::{PERSON_COLUMNS, UNIQUE_COLUMNS};

/// Rows per Parquet row group (DuckDB writes 122,880). A reader splits a table's work
/// among its threads by row group, and a writer holds a group in memory, so groups of
/// this size keep a compaction's memory bounded while every core still has work.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;

/// How every data file of the lake is written: zstd, row groups of [`ROW_GROUP_ROWS`],
/// and no dictionary for the columns whose values (almost) never repeat, where one
/// only costs time (and space) until the writer gives up on it.
pub fn writer_properties() -> WriterProperties {
    UNIQUE_COLUMNS
        .iter()
        .chain(PERSON_COLUMNS)
        .fold(
            WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::default()))
                .set_max_row_group_row_count(Some(ROW_GROUP_ROWS)),
            |builder, column| builder.set_column_dictionary_enabled((*column).into(), false),
        )
        .build()
}
