//! techmon's code lists, as small tables beside the lake's: what the codes in the
//! events mean.

use std::sync::Arc;

use deltalake::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, Int32Array, RecordBatch, StringArray,
};
use deltalake::arrow::datatypes::{Field, Schema};
use techmon_schemas::codes;

use crate::LakeError;

/// One code list.
#[derive(Debug)]
pub struct CodeList {
    pub name: &'static str,
    pub description: &'static str,
    pub batch: RecordBatch,
}

/// techmon's code lists as small tables: hubs, the zeven werelden, VO profiles with
/// their technical flag, and the KPI targets (one row per KPI and year).
pub fn code_lists() -> Result<Vec<CodeList>, LakeError> {
    let text = |values: Vec<Option<&str>>| Arc::new(StringArray::from(values)) as ArrayRef;
    let batch = |name: &'static str, columns: Vec<(&str, ArrayRef)>| {
        let fields: Vec<Field> = columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), a.null_count() > 0))
            .collect();
        RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns.into_iter().map(|(_, a)| a).collect(),
        )
        .map_err(|source| LakeError::CodeList { list: name, source })
    };
    let hubs = codes::hubs();
    let worlds = codes::worlds();
    let profiles = codes::profiles();
    let targets: Vec<(&codes::KpiTarget, i32, Option<f64>)> = codes::kpi_targets()
        .iter()
        .flat_map(|k| {
            k.targets
                .iter()
                .map(move |(year, target)| (k, *year, *target))
        })
        .collect();
    Ok(vec![
        CodeList {
            name: "hubs",
            description: "The techniekhubs: hub_id as in events, name and municipality.",
            batch: batch(
                "hubs",
                vec![
                    (
                        "hub_id",
                        text(hubs.iter().map(|h| Some(h.id.as_str())).collect()),
                    ),
                    (
                        "name",
                        text(hubs.iter().map(|h| Some(h.name.as_str())).collect()),
                    ),
                    (
                        "municipality",
                        text(hubs.iter().map(|h| Some(h.municipality.as_str())).collect()),
                    ),
                ],
            )?,
        },
        CodeList {
            name: "worlds",
            description: "De zeven werelden van techniek (activities.worlds holds their numbers).",
            batch: batch(
                "worlds",
                vec![
                    (
                        "world",
                        Arc::new(Int32Array::from(
                            worlds
                                .iter()
                                .map(|w| i32::from(w.number))
                                .collect::<Vec<_>>(),
                        )) as ArrayRef,
                    ),
                    (
                        "name",
                        text(worlds.iter().map(|w| Some(w.name.as_str())).collect()),
                    ),
                ],
            )?,
        },
        CodeList {
            name: "vo_profiles",
            description: "VO profiles with the onderwijstypes offering them and whether they count as technical (Monitor Techniekpact).",
            batch: batch(
                "vo_profiles",
                vec![
                    (
                        "profile_code",
                        text(profiles.iter().map(|p| Some(p.code.as_str())).collect()),
                    ),
                    (
                        "name",
                        text(profiles.iter().map(|p| Some(p.name.as_str())).collect()),
                    ),
                    (
                        "onderwijstypes",
                        Arc::new(StringArray::from(
                            profiles
                                .iter()
                                .map(|p| {
                                    p.onderwijstypes
                                        .iter()
                                        .map(|o| o.as_str())
                                        .collect::<Vec<_>>()
                                        .join(",")
                                })
                                .collect::<Vec<_>>(),
                        )) as ArrayRef,
                    ),
                    (
                        "technical",
                        Arc::new(BooleanArray::from(
                            profiles.iter().map(|p| p.technical).collect::<Vec<_>>(),
                        )) as ArrayRef,
                    ),
                ],
            )?,
        },
        CodeList {
            name: "kpi_targets",
            description: "The KPI targets of seed 003 per year (null: no target that year); year Y is school year Y/Y+1.",
            batch: batch(
                "kpi_targets",
                vec![
                    (
                        "kpi",
                        text(targets.iter().map(|(k, ..)| Some(k.kpi.as_str())).collect()),
                    ),
                    (
                        "band",
                        text(targets.iter().map(|(k, ..)| k.band.as_deref()).collect()),
                    ),
                    (
                        "unit",
                        text(
                            targets
                                .iter()
                                .map(|(k, ..)| Some(k.unit.as_str()))
                                .collect(),
                        ),
                    ),
                    (
                        "year",
                        Arc::new(Int32Array::from(
                            targets.iter().map(|(_, y, _)| *y).collect::<Vec<_>>(),
                        )) as ArrayRef,
                    ),
                    (
                        "target",
                        Arc::new(Float64Array::from(
                            targets.iter().map(|(.., t)| *t).collect::<Vec<_>>(),
                        )) as ArrayRef,
                    ),
                    (
                        "description",
                        text(
                            targets
                                .iter()
                                .map(|(k, ..)| Some(k.description.as_str()))
                                .collect(),
                        ),
                    ),
                ],
            )?,
        },
    ])
}
