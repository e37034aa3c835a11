//! techmon's code lists, as small tables beside the lake's: what the codes in the
//! events mean.

use std::sync::Arc;

use deltalake::arrow::array::{ArrayRef, BooleanArray, Int32Array, RecordBatch, StringArray};
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

/// techmon's fixed code lists as small tables: the zeven werelden, and the VO profiles
/// with their technical flag. Hubs and KPI targets are kept by the administrators
/// ([`crate::registry`]).
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
    let worlds = codes::worlds();
    let profiles = codes::profiles();
    Ok(vec![
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
    ])
}
