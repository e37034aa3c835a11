//! A table written by a release before a column was added (its layout as that release
//! wrote it: the catalogue's columns without the added ones) gets the column when the
//! lake is opened for writing, with every older row's value filled in, once: the
//! school year's start in the event tables, the built-in region in the registry's
//! hubs and targets.

use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int32Array, Int64Array, ListArray,
    ListBuilder, RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{DataType, Int32Type, Schema};
use deltalake::kernel::StructType;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake::protocol::SaveMode;
use techmon_lake::LakeLocation;
use techmon_lake::tables::{self, ADDED_COLUMNS};

/// The school years of the rows written the old way, and the numbers they start with.
const YEARS: &[(&str, i32)] = &[("2021/22", 2021), ("2022/23", 2022), ("2024/25", 2024)];

/// A value for every row of a column of `data_type`; the school year as given.
fn column(name: &str, data_type: &DataType, years: &[&str]) -> ArrayRef {
    let n = years.len();
    match data_type {
        _ if name == "school_year" => Arc::new(StringArray::from(years.to_vec())),
        DataType::Utf8 => Arc::new(StringArray::from_iter_values(
            (0..n).map(|i| format!("{name}-{i}")),
        )),
        DataType::Int32 => Arc::new(Int32Array::from_iter_values(0..n as i32)),
        DataType::Int64 => Arc::new(Int64Array::from_iter_values(0..n as i64)),
        DataType::Float64 => Arc::new(Float64Array::from_iter_values((0..n).map(|i| i as f64))),
        DataType::Boolean => Arc::new(BooleanArray::from_iter((0..n).map(|i| Some(i % 2 == 0)))),
        DataType::Timestamp(_, zone) => Arc::new(
            TimestampMicrosecondArray::from_iter_values(
                (0..n as i64).map(|i| 1_700_000_000_000_000 + i),
            )
            .with_timezone_opt(zone.clone()),
        ),
        DataType::List(item) if item.data_type() == &DataType::Int32 => {
            Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(
                (0..n).map(|i| Some(vec![Some(i as i32)])),
            ))
        }
        DataType::List(_) => {
            let mut list = ListBuilder::new(StringBuilder::new());
            for i in 0..n {
                list.values().append_value(format!("{name}-{i}"));
                list.append(true);
            }
            Arc::new(list.finish())
        }
        other => panic!("{name}: no values for {other}"),
    }
}

/// `table` as the older release made it (without the added columns and their
/// property), with rows of the three school years.
async fn old_table(
    lake: &LakeLocation,
    dir: &std::path::Path,
    table: &'static tables::Table,
) -> DeltaTable {
    let added: Vec<&str> = table.added_columns().iter().map(|c| c.name()).collect();
    let now = table.arrow_schema();
    let before = Arc::new(Schema::new(
        now.fields()
            .iter()
            .filter(|f| !added.contains(&f.name().as_str()))
            .cloned()
            .collect::<Vec<_>>(),
    ));
    let years: Vec<&str> = YEARS.iter().map(|(y, _)| *y).collect();
    let rows = RecordBatch::try_new(
        Arc::clone(&before),
        before
            .fields()
            .iter()
            .map(|f| column(f.name(), f.data_type(), &years))
            .collect(),
    )
    .expect("rows of the old layout");
    std::fs::create_dir_all(dir.join(table.name)).expect("the table's folder");
    let columns: StructType = before.as_ref().try_into_kernel().expect("a Delta schema");
    lake.open(table.name)
        .await
        .expect("open")
        .create()
        .with_table_name(table.name)
        .with_columns(columns.fields().cloned())
        .with_partition_columns(table.partition_column())
        .await
        .expect("the old table")
        .write(vec![rows])
        .with_save_mode(SaveMode::Append)
        .await
        .expect("the old rows")
}

/// The school years and their starts as the table `t` of `delta` holds them; every
/// start filled.
async fn years_read(delta: &DeltaTable) -> Vec<(String, i32)> {
    let batches = techmon_lake::session_over(delta, "t")
        .await
        .expect("session")
        .sql("SELECT school_year, school_year_start FROM t ORDER BY school_year")
        .await
        .expect("plan")
        .collect()
        .await
        .expect("rows");
    let mut read = Vec::new();
    for batch in &batches {
        let (years, starts) = (batch.column(0), batch.column(1).as_primitive::<Int32Type>());
        let years = deltalake::arrow::compute::cast(years, &DataType::Utf8).expect("text");
        for row in 0..batch.num_rows() {
            assert!(starts.is_valid(row), "row {row} has no school_year_start");
            read.push((
                years.as_string::<i32>().value(row).to_string(),
                starts.value(row),
            ));
        }
    }
    read
}

fn expected() -> Vec<(String, i32)> {
    YEARS.iter().map(|(y, s)| (y.to_string(), *s)).collect()
}

#[tokio::test]
async fn a_table_of_an_older_release_gets_the_added_columns_filled_in() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake =
        LakeLocation::new(&dir.path().to_string_lossy(), Default::default()).expect("a lake");
    let table = tables::find("activities").expect("the activities table");
    let added: Vec<&str> = ADDED_COLUMNS.iter().map(|c| c.name()).collect();
    assert!(added.contains(&"school_year_start"), "{added:?}");
    let old = old_table(&lake, dir.path(), table).await;
    let old_version = old.version().expect("a version");

    // Opened for writing by this release: one commit adds the column, one fills it,
    // one marks it filled.
    let migrated = lake
        .create(table)
        .await
        .expect("the table, with the added columns");
    assert_eq!(migrated.version(), Some(old_version + 3));
    assert_eq!(years_read(&migrated).await, expected());

    // Opened again: nothing is left to add.
    let again = lake.create(table).await.expect("the table again");
    assert_eq!(again.version(), migrated.version());
}

/// A stop between the commit that adds the column and the one that fills it: the
/// next opening fills it.
#[tokio::test]
async fn a_column_added_but_not_filled_is_filled_at_the_next_opening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake =
        LakeLocation::new(&dir.path().to_string_lossy(), Default::default()).expect("a lake");
    let table = tables::find("activities").expect("the activities table");
    let fields: Vec<_> = ADDED_COLUMNS.iter().map(|c| c.field()).collect();
    let fields: StructType = (&Schema::new(fields))
        .try_into_kernel()
        .expect("a Delta schema");
    let added = old_table(&lake, dir.path(), table)
        .await
        .add_columns()
        .with_fields(fields.fields().cloned().collect::<Vec<_>>())
        .await
        .expect("the column, empty");
    let opened = lake.create(table).await.expect("opened again");
    // One commit fills, one marks it filled.
    assert_eq!(opened.version(), added.version().map(|v| v + 2));
    assert_eq!(years_read(&opened).await, expected());
}

/// A table this release creates has nothing to fill: opening it commits nothing.
#[tokio::test]
async fn a_new_table_is_opened_without_a_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake =
        LakeLocation::new(&dir.path().to_string_lossy(), Default::default()).expect("a lake");
    let table = tables::find("activities").expect("the activities table");
    let created = lake.create(table).await.expect("created");
    let opened = lake.create(table).await.expect("opened");
    assert_eq!(opened.version(), created.version());
}

/// The registry's hubs and targets of the release before regions: every row is the
/// built-in region's, and the targets are the region's, not one hub's.
#[tokio::test]
async fn hubs_and_targets_of_the_release_before_regions_are_the_built_in_region_s() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lake =
        LakeLocation::new(&dir.path().to_string_lossy(), Default::default()).expect("a lake");
    for (name, expected) in [
        ("hubs", "SELECT DISTINCT region_id FROM t"),
        (
            "kpi_targets",
            "SELECT DISTINCT region_id, hub_id IS NULL AS shared FROM t",
        ),
    ] {
        let table = tables::find(name).expect("a registry table");
        old_table(&lake, dir.path(), table).await;
        let migrated = lake.create(table).await.expect("migrated");
        let batches = techmon_lake::session_over(&migrated, "t")
            .await
            .expect("session")
            .sql(expected)
            .await
            .expect("plan")
            .collect()
            .await
            .expect("rows");
        let rows: Vec<String> = batches
            .iter()
            .flat_map(|b| {
                (0..b.num_rows()).map(move |i| {
                    (0..b.num_columns())
                        .map(|c| {
                            deltalake::arrow::util::display::array_value_to_string(b.column(c), i)
                                .expect("a value")
                        })
                        .collect::<Vec<_>>()
                        .join(",")
                })
            })
            .collect();
        let region = &techmon_schemas::codes::regions()[0].id;
        let want = if name == "hubs" {
            region.clone()
        } else {
            format!("{region},true")
        };
        assert_eq!(rows, [want], "{name}");
    }
}
