//! Reference tables imported from DUO open onderwijsdata, stored as Delta tables in
//! the lake next to the event tables. Every row carries its source (URL or file
//! name), the SHA-256 of the file and the import time.

use std::sync::Arc;

use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// One reference table.
pub struct ReferenceTable {
    pub name: &'static str,
    pub description: &'static str,
    columns: &'static [(&'static str, DataType, bool)],
}

/// Counts as DUO publishes them: `pupils` is null where DUO suppressed a small count
/// (`<5` or -1, meaning 1 to 4); `pupils_min`/`pupils_max` bound every cell.
const COUNT: &[(&str, DataType, bool)] = &[
    ("pupils", DataType::Int32, true),
    ("pupils_min", DataType::Int32, false),
    ("pupils_max", DataType::Int32, false),
    ("suppressed", DataType::Boolean, false),
];

/// Where every row came from.
const PROVENANCE: &[(&str, DataType, bool)] = &[
    ("source", DataType::Utf8, false),
    ("source_sha256", DataType::Utf8, false),
];

pub const REFERENCE_TABLES: &[ReferenceTable] = &[
    ReferenceTable {
        name: "duo_vo_pupils",
        description: "DUO: VO pupils per school (BRIN6), onderwijstype, opleiding, leerjaar and gender, per school year (counted on 1 October); opleidingen mapped to VO profiles with their technical flag.",
        columns: &[
            ("brin6", DataType::Utf8, false),
            ("school_name", DataType::Utf8, false),
            ("municipality", DataType::Utf8, false),
            ("onderwijstype", DataType::Utf8, false),
            ("opleidingsnaam", DataType::Utf8, false),
            ("profile_code", DataType::Utf8, true),
            ("technical", DataType::Boolean, false),
            ("leerjaar", DataType::Int32, false),
            ("gender", DataType::Utf8, false),
        ],
    },
    ReferenceTable {
        name: "duo_po_pupils",
        description: "DUO: PO pupils per school (BRIN6) and age on 1 October, per school year, with the groep band the age maps to (4-5: groep 1-2, 6-9: groep 3-6, 10 and older: groep 7-8).",
        columns: &[
            ("brin6", DataType::Utf8, false),
            ("school_name", DataType::Utf8, false),
            ("municipality", DataType::Utf8, false),
            ("age", DataType::Int32, false),
            ("groep_band", DataType::Utf8, true),
        ],
    },
    ReferenceTable {
        name: "duo_schools",
        description: "DUO: school addresses (BRIN6, name, PC4, place, municipality), per school year.",
        columns: &[
            ("brin6", DataType::Utf8, false),
            ("name", DataType::Utf8, false),
            ("pc4", DataType::Utf8, true),
            ("place", DataType::Utf8, false),
            ("municipality", DataType::Utf8, false),
            ("kind", DataType::Utf8, true),
        ],
    },
];

impl ReferenceTable {
    fn has_counts(&self) -> bool {
        self.name != "duo_schools"
    }

    /// Its own columns, the counts where it has them, the provenance, and the school
    /// year (the partition column) with the import time last.
    pub fn arrow_schema(&self) -> SchemaRef {
        let counts: &[(&str, DataType, bool)] = if self.has_counts() { COUNT } else { &[] };
        let mut fields: Vec<Field> = self
            .columns
            .iter()
            .chain(counts)
            .chain(PROVENANCE)
            .map(|(name, data_type, nullable)| Field::new(*name, data_type.clone(), *nullable))
            .collect();
        fields.push(Field::new(
            "imported_at",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ));
        fields.push(Field::new("school_year", DataType::Utf8, false));
        Arc::new(Schema::new(fields))
    }
}
