//! The lake's catalogue: every table techmon keeps, with its columns, its kind (which
//! says who writes it), its partition column and the column that names a person.
//!
//! Only what research needs is carried: participants are pseudonyms; names, e-mail
//! addresses, phone numbers, street addresses, pupil numbers and free text never
//! reach a table; birth dates become birth years and postcodes PC4.

use std::sync::Arc;

use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

/// A column's type, as few as the tables need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    Text,
    Int,
    BigInt,
    Real,
    Flag,
    Time,
    IntList,
    TextList,
}

impl ColumnType {
    pub fn arrow(self) -> DataType {
        match self {
            ColumnType::Text => DataType::Utf8,
            ColumnType::Int => DataType::Int32,
            ColumnType::BigInt => DataType::Int64,
            ColumnType::Real => DataType::Float64,
            ColumnType::Flag => DataType::Boolean,
            ColumnType::Time => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            ColumnType::IntList => {
                DataType::List(Arc::new(Field::new("item", DataType::Int32, true)))
            }
            ColumnType::TextList => {
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
            }
        }
    }
}

/// A column: its name, its type, and whether it may be null.
type Column = (&'static str, ColumnType, bool);

/// What a table holds, which says who writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableKind {
    /// A row per event (of the kinds the table takes), written by the transform.
    Events,
    /// Counts of people without research consent, rewritten whole by the transform.
    Counts,
    /// Open onderwijsdata from DUO, written by the reference import.
    Reference,
    /// techmon's code lists as the administrators keep them (hubs, KPI targets):
    /// rewritten whole at every change, so a version is the whole list at a moment
    /// and the versions are its history. Not partitioned, and without the columns
    /// added to the event and reference tables since their first release.
    Registry,
}

/// One lake table.
#[derive(Debug)]
pub struct Table {
    pub name: &'static str,
    pub description: &'static str,
    pub kind: TableKind,
    /// Its columns in order, in groups (the groups most tables share, and its own).
    columns: &'static [&'static [Column]],
}

/// The columns every event table starts with.
const COMMON: &[Column] = &[
    ("event_id", ColumnType::Text, false),
    ("hub_id", ColumnType::Text, false),
    ("occurred_at", ColumnType::Time, false),
    ("school_year", ColumnType::Text, false),
    ("log_partition", ColumnType::Int, false),
    ("log_offset", ColumnType::BigInt, false),
];

/// A column added after the tables were first released: last in every table, and
/// nullable, so that a table written before it takes it as it is; `fill` (SQL over the
/// table's other columns) then gives the older rows their values, once (`None`: they
/// stay null).
#[derive(Debug)]
pub struct AddedColumn {
    column: Column,
    pub fill: Option<&'static str>,
}

impl AddedColumn {
    pub fn name(&self) -> &'static str {
        self.column.0
    }

    pub fn field(&self) -> Field {
        let (name, column_type, nullable) = self.column;
        Field::new(name, column_type.arrow(), nullable)
    }
}

/// The columns every table has gained since its first release, in the order they came.
pub const ADDED_COLUMNS: &[AddedColumn] = &[AddedColumn {
    // The school year as a number to compare and compute with: 2024 for 2024/25
    // (`school_year` stays, as readers know it and as the tables are partitioned).
    column: ("school_year_start", ColumnType::Int, true),
    fill: Some("CAST(substr(school_year, 1, 4) AS INT)"),
}];

/// The region of hubs and targets registered before regions were: the one built in.
const FIRST_REGION: AddedColumn = AddedColumn {
    column: ("region_id", ColumnType::Text, true),
    fill: Some("'cleantech-regio'"),
};

/// The columns the hubs have gained since the registry's first release.
const HUBS_ADDED: &[AddedColumn] = &[FIRST_REGION];

/// The columns the KPI targets have gained since the registry's first release: whose
/// targets they are (a region's, or one hub's within it).
const KPI_TARGETS_ADDED: &[AddedColumn] = &[
    FIRST_REGION,
    AddedColumn {
        column: ("hub_id", ColumnType::Text, true),
        fill: None,
    },
];

/// Columns of the event tables whose values (almost) never repeat within a table.
pub const UNIQUE_COLUMNS: &[&str] = &["event_id", "occurred_at", "log_offset"];

/// The partition column of the event and reference tables.
pub const PARTITION_COLUMN: &str = "school_year";

/// Columns that hold the pseudonym of the person a row is about.
pub const PERSON_COLUMNS: &[&str] = &["participant_pseudonym", "ambassador_pseudonym"];

pub const EVENT_TABLES: &[Table] = &[
    Table {
        name: "activities",
        description: "Activities held by the hubs (activity_held).",
        kind: TableKind::Events,
        columns: &[
            COMMON,
            &[
                ("activity_id", ColumnType::Text, false),
                ("activity_type", ColumnType::Text, false),
                ("title", ColumnType::Text, false),
                ("starts_at", ColumnType::Time, false),
                ("ends_at", ColumnType::Time, false),
                ("duration_minutes", ColumnType::Int, true),
                ("worlds", ColumnType::IntList, true),
                ("target_groups", ColumnType::TextList, true),
                ("location", ColumnType::Text, true),
                ("partner_organisations", ColumnType::TextList, true),
            ],
        ],
    },
    Table {
        name: "group_participations",
        description: "Groups (school classes) taking part in an activity, with counts by gender (group_participated).",
        kind: TableKind::Events,
        columns: &[
            COMMON,
            &[
                ("activity_id", ColumnType::Text, false),
                ("school_brin6", ColumnType::Text, true),
                ("sector", ColumnType::Text, false),
                ("groep", ColumnType::Int, true),
                ("leerjaar", ColumnType::Int, true),
                ("onderwijstype", ColumnType::Text, true),
                ("participants_girls", ColumnType::Int, false),
                ("participants_boys", ColumnType::Int, false),
                ("participants_other", ColumnType::Int, false),
                ("participants_total", ColumnType::Int, false),
                ("accompanying_teachers", ColumnType::Int, false),
            ],
        ],
    },
    Table {
        name: "participants",
        description: "Individual registrations, pseudonymised (participant_registered).",
        kind: TableKind::Events,
        columns: &[
            COMMON,
            &[
                ("participant_pseudonym", ColumnType::Text, false),
                ("pseudonym_key_id", ColumnType::Text, false),
                ("birth_year", ColumnType::Int, true),
                ("pc4", ColumnType::Text, true),
                ("school_brin6", ColumnType::Text, true),
                ("sector", ColumnType::Text, true),
                ("groep", ColumnType::Int, true),
                ("leerjaar", ColumnType::Int, true),
                ("onderwijstype", ColumnType::Text, true),
                ("gender", ColumnType::Text, false),
                ("role", ColumnType::Text, false),
                ("consent_research", ColumnType::Flag, false),
            ],
        ],
    },
    Table {
        name: "attendances",
        description: "Individual attendance of an activity, pseudonymised (participant_attended).",
        kind: TableKind::Events,
        columns: &[
            COMMON,
            &[
                ("activity_id", ColumnType::Text, false),
                ("participant_pseudonym", ColumnType::Text, false),
                ("pseudonym_key_id", ColumnType::Text, false),
                ("role", ColumnType::Text, true),
            ],
        ],
    },
    Table {
        name: "survey_answers",
        description: "Satisfaction scores, also converted to a 10-point scale (survey_answered).",
        kind: TableKind::Events,
        columns: &[
            COMMON,
            &[
                ("activity_id", ColumnType::Text, false),
                ("participant_pseudonym", ColumnType::Text, true),
                ("pseudonym_key_id", ColumnType::Text, true),
                ("respondent_role", ColumnType::Text, false),
                ("score", ColumnType::Real, false),
                ("scale_max", ColumnType::Int, false),
                ("score_of_10", ColumnType::Real, false),
            ],
        ],
    },
    Table {
        name: "profile_choices",
        description: "VO profile choices, per pupil (pseudonymised) or as a count (profile_chosen).",
        kind: TableKind::Events,
        columns: &[
            COMMON,
            &[
                ("school_brin6", ColumnType::Text, false),
                ("leerjaar", ColumnType::Int, false),
                ("onderwijstype", ColumnType::Text, false),
                ("profile_code", ColumnType::Text, false),
                ("technical", ColumnType::Flag, false),
                ("participant_pseudonym", ColumnType::Text, true),
                ("pseudonym_key_id", ColumnType::Text, true),
                ("pupils", ColumnType::Int, false),
            ],
        ],
    },
    Table {
        name: "partner_events",
        description: "Organisations joining or leaving a hub (partner_joined, partner_left).",
        kind: TableKind::Events,
        columns: &[
            COMMON,
            &[
                ("partner_id", ColumnType::Text, false),
                ("change", ColumnType::Text, false),
                ("organisation_name", ColumnType::Text, true),
                ("organisation_kind", ColumnType::Text, true),
                ("contribution", ColumnType::Text, true),
            ],
        ],
    },
    Table {
        name: "ambassadors",
        description: "People committed as hub ambassadors, pseudonymised (ambassador_committed).",
        kind: TableKind::Events,
        columns: &[
            COMMON,
            &[
                ("ambassador_pseudonym", ColumnType::Text, false),
                ("pseudonym_key_id", ColumnType::Text, false),
                ("organisation_name", ColumnType::Text, true),
            ],
        ],
    },
    Table {
        name: "trajectory_events",
        description: "Adult work-learning routes starting and ending (trajectory_started, trajectory_ended).",
        kind: TableKind::Events,
        columns: &[
            COMMON,
            &[
                ("trajectory_id", ColumnType::Text, false),
                ("participant_pseudonym", ColumnType::Text, false),
                ("pseudonym_key_id", ColumnType::Text, false),
                ("change", ColumnType::Text, false),
                ("route", ColumnType::Text, true),
                ("employer", ColumnType::Text, true),
                ("outcome", ColumnType::Text, true),
            ],
        ],
    },
];

/// The counts kept of people whose registration refused research use: the rows of
/// those people never reach the other tables.
pub const WITHHELD_COUNTS: Table = Table {
    name: "participation_without_consent",
    description: "People without research consent, as counts only: per measure ('reach': took part, by sector, PO groep band and role, as the reach view counts individuals; 'teachers_professionalised': teachers attending docentprofessionalisering), hub and school year, each person once per group. The KPI views add them; their rows never reach the other tables.",
    kind: TableKind::Counts,
    columns: &[&[
        ("measure", ColumnType::Text, false),
        ("hub_id", ColumnType::Text, false),
        ("school_year", ColumnType::Text, false),
        ("sector", ColumnType::Text, true),
        ("band", ColumnType::Text, true),
        ("role", ColumnType::Text, true),
        ("people", ColumnType::BigInt, false),
    ]],
};

/// Counts as DUO publishes them: `pupils` is null where DUO suppressed a small count
/// (`<5` or -1, meaning 1 to 4); `pupils_min`/`pupils_max` bound every cell.
const COUNTS: &[Column] = &[
    ("pupils", ColumnType::Int, true),
    ("pupils_min", ColumnType::Int, false),
    ("pupils_max", ColumnType::Int, false),
    ("suppressed", ColumnType::Flag, false),
];

/// Where every reference row came from (the source's URL or file name and the
/// SHA-256 of the file), when it was imported, and its school year.
const PROVENANCE: &[Column] = &[
    ("source", ColumnType::Text, false),
    ("source_sha256", ColumnType::Text, false),
    ("imported_at", ColumnType::Time, false),
    ("school_year", ColumnType::Text, false),
];

pub const REFERENCE_TABLES: &[Table] = &[
    Table {
        name: "duo_vo_pupils",
        description: "DUO: VO pupils per school (BRIN6), onderwijstype, vmbo sector, afdeling, opleiding, leerjaar and gender, per school year (counted on 1 October); profiles read from DUO's values with their technical flag. municipality is null where DUO's file has none (the views take it from duo_schools).",
        kind: TableKind::Reference,
        columns: &[
            &[
                ("brin6", ColumnType::Text, false),
                ("school_name", ColumnType::Text, false),
                ("municipality", ColumnType::Text, true),
                ("onderwijstype", ColumnType::Text, false),
                ("vmbo_sector", ColumnType::Text, true),
                ("afdeling", ColumnType::Text, true),
                ("elementcode", ColumnType::Text, true),
                ("opleidingsnaam", ColumnType::Text, false),
                ("profile_code", ColumnType::Text, true),
                ("technical", ColumnType::Flag, false),
                ("leerjaar", ColumnType::Int, false),
                ("gender", ColumnType::Text, false),
            ],
            COUNTS,
            PROVENANCE,
        ],
    },
    Table {
        name: "duo_po_pupils",
        description: "DUO: PO pupils per school (BRIN6), soort PO (Bo, Sbo, So, ...) and age on 1 October, per school year, with the groep band the age maps to (4-5: groep 1-2, 6-9: groep 3-6, 10 and older: groep 7-8).",
        kind: TableKind::Reference,
        columns: &[
            &[
                ("brin6", ColumnType::Text, false),
                ("school_name", ColumnType::Text, false),
                ("municipality", ColumnType::Text, false),
                ("soort_po", ColumnType::Text, true),
                ("age", ColumnType::Int, false),
                ("groep_band", ColumnType::Text, true),
            ],
            COUNTS,
            PROVENANCE,
        ],
    },
    Table {
        name: "duo_schools",
        description: "DUO: school addresses (BRIN6, name, PC4, place, municipality), per school year.",
        kind: TableKind::Reference,
        columns: &[
            &[
                ("brin6", ColumnType::Text, false),
                ("name", ColumnType::Text, false),
                ("pc4", ColumnType::Text, true),
                ("place", ColumnType::Text, false),
                ("municipality", ColumnType::Text, false),
                ("kind", ColumnType::Text, true),
            ],
            PROVENANCE,
        ],
    },
];

/// Who last changed a registry row, and when; null for a row as built in.
const CHANGED: &[Column] = &[
    ("changed_at", ColumnType::Time, true),
    ("changed_by", ColumnType::Text, true),
];

pub const REGISTRY_TABLES: &[Table] = &[
    Table {
        name: "regions",
        description: "The regions whose hubs share a KPI set and targets: region_id, name and municipalities (where its schools are, as DUO writes them); as built in, or as an administrator last changed them.",
        kind: TableKind::Registry,
        columns: &[
            &[
                ("region_id", ColumnType::Text, false),
                ("name", ColumnType::Text, false),
                ("municipalities", ColumnType::TextList, false),
            ],
            CHANGED,
        ],
    },
    Table {
        name: "hubs",
        description: "The techniekhubs: hub_id as in events, name, municipality and region, and the school years it reports (null: from the start, or still); as built in, or as an administrator last changed them.",
        kind: TableKind::Registry,
        columns: &[
            &[
                ("hub_id", ColumnType::Text, false),
                ("name", ColumnType::Text, false),
                ("municipality", ColumnType::Text, false),
                ("first_school_year", ColumnType::Text, true),
                ("last_school_year", ColumnType::Text, true),
            ],
            CHANGED,
        ],
    },
    Table {
        name: "hub_tokens",
        description: "Tokens issued to hubs while techmon runs (`techmon hubs token`), by their SHA-256 only: ingest takes a hub's events with one as with a configured token.",
        kind: TableKind::Registry,
        columns: &[
            &[
                ("hub_id", ColumnType::Text, false),
                ("token_sha256", ColumnType::Text, false),
            ],
            CHANGED,
        ],
    },
    Table {
        name: "kpi_targets",
        description: "The KPI set of each region and its targets per year (null: no target that year); year Y is school year Y/Y+1. A row with a hub_id is that hub's own target, else the region's and each of its hubs'. From seed 003 for the Cleantech Regio, or as an administrator last changed them.",
        kind: TableKind::Registry,
        columns: &[
            &[
                ("kpi", ColumnType::Text, false),
                ("band", ColumnType::Text, true),
                ("unit", ColumnType::Text, false),
                ("year", ColumnType::Int, false),
                ("target", ColumnType::Real, true),
                ("description", ColumnType::Text, false),
            ],
            CHANGED,
        ],
    },
];

/// Every table of the lake: the event tables, the counts, the reference tables, the
/// registry.
pub fn all() -> impl Iterator<Item = &'static Table> {
    EVENT_TABLES
        .iter()
        .chain(std::iter::once(&WITHHELD_COUNTS))
        .chain(REFERENCE_TABLES)
        .chain(REGISTRY_TABLES)
}

/// The table called `name`.
pub fn find(name: &str) -> Option<&'static Table> {
    all().find(|t| t.name == name)
}

/// Tables with a person's pseudonym (see [`Table::person_column`]), with the
/// column's name: where consent withdrawal erases.
pub fn person_tables() -> impl Iterator<Item = (&'static Table, &'static str)> {
    all().filter_map(|t| t.person_column().map(|(_, name)| (t, name)))
}

impl Table {
    fn columns(&self) -> impl Iterator<Item = &'static Column> {
        self.columns
            .iter()
            .flat_map(|group| group.iter())
            .chain(self.added_columns().iter().map(|added| &added.column))
    }

    /// The columns added since the first release that this table has.
    pub fn added_columns(&self) -> &'static [AddedColumn] {
        match (self.kind, self.name) {
            (TableKind::Registry, "hubs") => HUBS_ADDED,
            (TableKind::Registry, "kpi_targets") => KPI_TARGETS_ADDED,
            (TableKind::Registry, _) => &[],
            _ => ADDED_COLUMNS,
        }
    }

    /// The column holding the pseudonym of the person a row is about (a participant
    /// or an ambassador), if any: its position among the table's columns, and its
    /// name.
    pub fn person_column(&self) -> Option<(usize, &'static str)> {
        self.columns()
            .enumerate()
            .find(|(_, (name, ..))| PERSON_COLUMNS.contains(name))
            .map(|(position, (name, ..))| (position, *name))
    }

    /// The column the table's files are partitioned by; the counts are one small
    /// file, not partitioned.
    pub fn partition_column(&self) -> Option<&'static str> {
        matches!(self.kind, TableKind::Events | TableKind::Reference).then_some(PARTITION_COLUMN)
    }

    /// Where column `name` stands among the table's columns.
    pub fn position(&self, name: &str) -> Option<usize> {
        self.columns().position(|(column, ..)| *column == name)
    }

    pub fn arrow_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns()
                .map(|(name, column, nullable)| Field::new(*name, column.arrow(), *nullable))
                .collect::<Vec<_>>(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_partitions_are_columns() {
        let mut names: Vec<&str> = all().map(|t| t.name).collect();
        names.sort_unstable();
        let count = names.len();
        names.dedup();
        assert_eq!(names.len(), count, "a table name twice");
        for table in all() {
            let schema = table.arrow_schema();
            if let Some(column) = table.partition_column() {
                assert!(schema.field_with_name(column).is_ok(), "{}", table.name);
            }
            let mut columns: Vec<&str> =
                schema.fields().iter().map(|f| f.name().as_str()).collect();
            columns.sort_unstable();
            let count = columns.len();
            columns.dedup();
            assert_eq!(columns.len(), count, "{}: a column twice", table.name);
        }
    }

    #[test]
    fn persons_are_in_event_tables_only() {
        let persons: Vec<&str> = person_tables().map(|(t, _)| t.name).collect();
        assert_eq!(
            persons,
            [
                "participants",
                "attendances",
                "survey_answers",
                "profile_choices",
                "ambassadors",
                "trajectory_events"
            ]
        );
        assert!(person_tables().all(|(t, _)| t.kind == TableKind::Events));
    }
}
