//! The registry tables ([`crate::tables::REGISTRY_TABLES`]) as built in: the regions,
//! the hubs and the KPI targets of the code lists compiled into techmon, the first
//! version of each until an administrator changes it.

use std::sync::Arc;

use deltalake::arrow::array::{
    ArrayRef, Float64Array, Int32Array, ListBuilder, RecordBatch, StringArray, StringBuilder,
    TimestampMicrosecondArray,
};
use techmon_schemas::codes;

use crate::LakeError;
use crate::tables::Table;

/// The rows of registry table `table` as built in; `None` for another table.
pub fn built_in(table: &'static Table) -> Option<Result<RecordBatch, LakeError>> {
    let text = |values: Vec<Option<&str>>| Arc::new(StringArray::from(values)) as ArrayRef;
    let unchanged = |rows: usize| {
        [
            Arc::new(TimestampMicrosecondArray::from(vec![None; rows]).with_timezone("UTC"))
                as ArrayRef,
            text(vec![None; rows]),
        ]
    };
    let columns: Vec<ArrayRef> = match table.name {
        "regions" => {
            let regions = codes::regions();
            let mut municipalities = ListBuilder::new(StringBuilder::new());
            for region in regions {
                municipalities.append_value(region.municipalities.iter().map(Some));
            }
            let mut columns = vec![
                text(regions.iter().map(|r| Some(r.id.as_str())).collect()),
                text(regions.iter().map(|r| Some(r.name.as_str())).collect()),
                Arc::new(municipalities.finish()),
            ];
            columns.extend(unchanged(regions.len()));
            columns
        }
        "hubs" => {
            let hubs = codes::hubs();
            let mut columns = vec![
                text(hubs.iter().map(|h| Some(h.id.as_str())).collect()),
                text(hubs.iter().map(|h| Some(h.name.as_str())).collect()),
                text(hubs.iter().map(|h| Some(h.municipality.as_str())).collect()),
                text(vec![None; hubs.len()]),
                text(vec![None; hubs.len()]),
            ];
            columns.extend(unchanged(hubs.len()));
            columns.push(text(hubs.iter().map(|h| Some(h.region.as_str())).collect()));
            columns
        }
        "kpi_targets" => {
            let targets: Vec<(&codes::KpiTarget, i32, Option<f64>)> = codes::kpi_targets()
                .iter()
                .flat_map(|k| {
                    k.targets
                        .iter()
                        .map(move |(year, target)| (k, *year, *target))
                })
                .collect();
            let rows = targets.len();
            let mut columns = vec![
                text(targets.iter().map(|(k, ..)| Some(k.kpi.as_str())).collect()),
                text(targets.iter().map(|(k, ..)| k.band.as_deref()).collect()),
                text(
                    targets
                        .iter()
                        .map(|(k, ..)| Some(k.unit.as_str()))
                        .collect(),
                ),
                Arc::new(Int32Array::from(
                    targets.iter().map(|(_, y, _)| *y).collect::<Vec<_>>(),
                )),
                Arc::new(Float64Array::from(
                    targets.iter().map(|(.., t)| *t).collect::<Vec<_>>(),
                )),
                text(
                    targets
                        .iter()
                        .map(|(k, ..)| Some(k.description.as_str()))
                        .collect(),
                ),
            ];
            columns.extend(unchanged(rows));
            columns.push(text(vec![Some(codes::kpi_targets_region()); rows]));
            columns.push(text(vec![None; rows]));
            columns
        }
        _ => return None,
    };
    Some(
        RecordBatch::try_new(table.arrow_schema(), columns).map_err(|source| LakeError::CodeList {
            list: table.name,
            source,
        }),
    )
}
