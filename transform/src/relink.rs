//! Relinking: the rows of a participant reference named before its registration
//! get the registration's pseudonym (see [`crate::lake::Lake::relink`]).

use std::sync::Arc;

use deltalake::arrow::array::{Array, ArrayRef, AsArray, StringArray, new_empty_array};
use deltalake::arrow::compute::{cast, concat, max_string, min_string};
use deltalake::arrow::datatypes::DataType;
use deltalake::kernel::{Add, Remove};
use deltalake::logstore::object_store::{ObjectStoreExt as _, PutPayload};
use deltalake::parquet::arrow::ProjectionMask;
use deltalake::parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use deltalake::parquet::arrow::arrow_writer::{ArrowRowGroupWriterFactory, compute_leaves};
use deltalake::parquet::column::writer::ColumnCloseResult;
use deltalake::parquet::file::metadata::PageIndexPolicy;
use deltalake::parquet::file::page_index::column_index::ColumnIndexMetaData;
use deltalake::parquet::file::reader::ChunkReader;
use deltalake::parquet::file::writer::SerializedFileWriter;
use deltalake::{DeltaTable, DeltaTableError, Path};
use techmon_lake::writer_properties;

use crate::state::QuickMap;

/// Rewrites every data file of `current` that holds a pseudonym of `relinks` with
/// the replacement, two files at a time (one per core), and commits the new files
/// in place of the old in one commit. A Delta merge would do the same, but holds the
/// rows it joins, which on a large lake takes a lot of memory. Returns the rows
/// changed.
pub(crate) async fn relink_table(
    current: DeltaTable,
    column: &'static str,
    relinks: &Arc<QuickMap<String, String>>,
) -> Result<(DeltaTable, u64), DeltaTableError> {
    use deltalake::kernel::Action;
    use deltalake::kernel::transaction::CommitBuilder;
    use deltalake::protocol::DeltaOperation;
    use futures::StreamExt as _;

    let files: Vec<_> = current
        .snapshot()?
        .log_data()
        .iter()
        .map(|file| DataFile {
            path: file.object_store_path(),
            remove: file.remove_action(true),
            stats: file.stats(),
        })
        .collect();
    let rewrites = futures::stream::iter(files)
        .map(|file| {
            let (current, relinks) = (current.clone(), Arc::clone(relinks));
            tokio::spawn(async move {
                let rewritten = relink_file(&current, column, &relinks, &file).await?;
                Ok::<_, DeltaTableError>(rewritten.map(|(new, rows)| (new, file.remove, rows)))
            })
        })
        .buffer_unordered(2)
        .collect::<Vec<_>>()
        .await;
    let mut actions = Vec::new();
    let mut updated = 0;
    for rewrite in rewrites {
        let rewrite = rewrite.map_err(|e| DeltaTableError::Generic(e.to_string()))??;
        if let Some((new, old, rows)) = rewrite {
            actions.push(Action::Add(new));
            actions.push(Action::Remove(old));
            updated += rows;
        }
    }
    if actions.is_empty() {
        return Ok((current, 0));
    }
    let operation = DeltaOperation::Update { predicate: None };
    CommitBuilder::default()
        .with_actions(actions)
        .build(Some(current.snapshot()?), current.log_store(), operation)
        .await?;
    let mut after = current;
    after.update_incremental(None).await?;
    Ok((after, updated))
}

/// A data file of a table, as the relink needs it.
struct DataFile {
    path: Path,
    /// Its removal, should it be replaced.
    remove: Remove,
    /// Its Delta statistics (JSON).
    stats: Option<String>,
}

/// The data file with `relinks` applied, written as a new file beside it: `None`
/// when it holds none of their pseudonyms. Only the pseudonym column is read and
/// encoded again; the file's other column chunks are copied as they are, still
/// compressed, with their page indexes.
async fn relink_file(
    current: &DeltaTable,
    column: &str,
    relinks: &QuickMap<String, String>,
    old: &DataFile,
) -> Result<Option<(Add, u64)>, DeltaTableError> {
    let path = &old.path;
    let store = current.log_store().object_store(None);
    let bytes = store.get(path).await?.bytes().await?;
    let file = ArrowReaderMetadata::load(
        &bytes,
        ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional),
    )?;
    let metadata = Arc::clone(file.metadata());
    let parquet_schema = metadata.file_metadata().schema_descr_ptr();
    let leaf = parquet_schema
        .columns()
        .iter()
        .position(|c| c.path().parts() == [column])
        .ok_or_else(|| DeltaTableError::Generic(format!("{path}: no {column}")))?;
    let field = file.schema().field_with_name(column)?.clone();
    let groups = pseudonyms_by_row_group(&bytes, &file, leaf)?;
    let found: usize = groups.iter().map(|p| relinks_held(p, relinks)).sum();
    if found == 0 {
        return Ok(None);
    }
    let props = writer_properties()
        .into_builder()
        .set_key_value_metadata(metadata.file_metadata().key_value_metadata().cloned())
        .build();
    let mut writer = SerializedFileWriter::new(
        Vec::with_capacity(bytes.len()),
        parquet_schema.root_schema_ptr(),
        Arc::new(props),
    )?;
    let encoders = ArrowRowGroupWriterFactory::new(&writer, Arc::clone(file.schema()));
    let (mut lowest, mut highest) = (None::<String>, None::<String>);
    for (index, (group, pseudonyms)) in metadata.row_groups().iter().zip(groups).enumerate() {
        let pseudonyms: ArrayRef = Arc::new(relinked(&pseudonyms, relinks));
        let strings = pseudonyms.as_string::<i32>();
        if let Some(low) = min_string(strings)
            && lowest.as_deref().is_none_or(|l| low < l)
        {
            lowest = Some(low.to_string());
        }
        if let Some(high) = max_string(strings)
            && highest.as_deref().is_none_or(|h| high > h)
        {
            highest = Some(high.to_string());
        }
        let mut row_group = writer.next_row_group()?;
        for (c, chunk) in group.columns().iter().enumerate() {
            if c == leaf {
                let mut encoder = encoders.create_column_writers(index)?.swap_remove(leaf);
                // As the file holds them (Utf8, or a compaction's Utf8View).
                let pseudonyms = cast(&pseudonyms, field.data_type())?;
                for leaf_column in compute_leaves(&field, &pseudonyms)? {
                    encoder.write(&leaf_column)?;
                }
                encoder.close()?.append_to_row_group(&mut row_group)?;
                continue;
            }
            row_group.append_column(
                &bytes,
                ColumnCloseResult {
                    bytes_written: u64::try_from(chunk.compressed_size()).unwrap_or_default(),
                    rows_written: u64::try_from(group.num_rows()).unwrap_or_default(),
                    metadata: chunk.clone(),
                    bloom_filter: None,
                    column_index: of_chunk(metadata.column_index(), index, c)
                        .filter(|index| !matches!(index, ColumnIndexMetaData::NONE)),
                    offset_index: of_chunk(metadata.offset_index(), index, c),
                },
            )?;
        }
        row_group.close()?;
    }
    let written = writer.into_inner()?;
    let name = format!("part-00000-{}-c000.zstd.parquet", uuid::Uuid::new_v4());
    let new_path: Path = path
        .parts()
        .take(path.parts().count().saturating_sub(1))
        .chain([name.as_str().into()])
        .collect();
    let size = i64::try_from(written.len()).unwrap_or(i64::MAX);
    store.put(&new_path, PutPayload::from(written)).await?;
    let new = Add {
        path: new_path.to_string(),
        partition_values: old.remove.partition_values.clone().unwrap_or_default(),
        size,
        modification_time: chrono::Utc::now().timestamp_millis(),
        data_change: true,
        stats: old
            .stats
            .as_deref()
            .map(|stats| with_bounds(stats, column, lowest, highest))
            .transpose()?,
        ..Add::default()
    };
    Ok(Some((new, found as u64)))
}

/// The pseudonyms (leaf column `leaf`) of each row group of a data file, as Utf8: a
/// compaction writes text as Utf8View.
fn pseudonyms_by_row_group<R: ChunkReader + Clone + 'static>(
    data: &R,
    file: &ArrowReaderMetadata,
    leaf: usize,
) -> Result<Vec<ArrayRef>, DeltaTableError> {
    let metadata = file.metadata();
    let mut groups = Vec::with_capacity(metadata.num_row_groups());
    for (index, group) in metadata.row_groups().iter().enumerate() {
        let mask = ProjectionMask::leaves(metadata.file_metadata().schema_descr(), [leaf]);
        let rows = usize::try_from(group.num_rows()).unwrap_or(usize::MAX);
        let batches =
            ParquetRecordBatchReaderBuilder::new_with_metadata(data.clone(), file.clone())
                .with_row_groups(vec![index])
                .with_projection(mask)
                .with_batch_size(rows.max(1))
                .build()?
                .map(|batch| batch.map(|b| Arc::clone(b.column(0))))
                .collect::<Result<Vec<ArrayRef>, _>>()?;
        groups.push(match batches.as_slice() {
            [] => new_empty_array(&DataType::Utf8),
            parts => cast(
                &concat(&parts.iter().map(AsRef::as_ref).collect::<Vec<_>>())?,
                &DataType::Utf8,
            )?,
        });
    }
    Ok(groups)
}

/// The page index of column chunk `column` of row group `group`, if the file has one.
fn of_chunk<T: Clone>(indexes: Option<&Vec<Vec<T>>>, group: usize, column: usize) -> Option<T> {
    indexes.and_then(|groups| groups.get(group)?.get(column).cloned())
}

/// A file's Delta statistics (JSON) with `column`'s bounds replaced by these.
fn with_bounds(
    stats: &str,
    column: &str,
    lowest: Option<String>,
    highest: Option<String>,
) -> Result<String, DeltaTableError> {
    let mut stats: serde_json::Value = serde_json::from_str(stats)?;
    for (key, bound) in [("minValues", lowest), ("maxValues", highest)] {
        if let (Some(values), Some(bound)) = (
            stats
                .get_mut(key)
                .and_then(serde_json::Value::as_object_mut),
            bound,
        ) && values.contains_key(column)
        {
            values.insert(column.to_string(), bound.into());
        }
    }
    Ok(stats.to_string())
}

/// How many of these pseudonyms (a string column) have a replacement in `relinks`.
pub(crate) fn relinks_held(pseudonyms: &dyn Array, relinks: &QuickMap<String, String>) -> usize {
    pseudonyms
        .as_string::<i32>()
        .iter()
        .flatten()
        .filter(|p| relinks.contains_key(*p))
        .count()
}

/// These pseudonyms (a string column), each replaced by its replacement in `relinks`
/// if it has one.
pub(crate) fn relinked(pseudonyms: &dyn Array, relinks: &QuickMap<String, String>) -> StringArray {
    pseudonyms
        .as_string::<i32>()
        .iter()
        .map(|p| p.map(|p| relinks.get(p).map_or(p, String::as_str)))
        .collect()
}
