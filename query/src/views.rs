//! The named views that answer the monitor's research questions. Each is plain SQL
//! over the catalogue, so researchers can read, reuse and check it
//! (`SELECT * FROM information_schema.views`).
//!
//! Decisions the SQL encodes:
//! - KPI year Y is school year Y/Y+1 (DUO counts on 1 October of Y fall in it).
//! - People who took part: a school class counts once per school year. Per school,
//!   groep/leerjaar and activity the groups are added up (several classes in one
//!   activity); per school and groep/leerjaar the largest of those over the year's
//!   activities counts (one class in several activities). Individually registered
//!   participants count once per school year by pseudonym.
//! - A professionalised teacher attended a docentprofessionalisering activity as a
//!   teacher: in that role, or without a role and registered as a teacher.
//! - A region is its municipalities (the `regions` registry table); a hub's share
//!   uses the DUO counts of its own municipality. All regions together (scope
//!   `regions`) are shown where there are several; with one region they are it.
//! - A count DUO suppressed (`<5`) counts as 2.5 in point estimates; the bounds take
//!   it as 1 and as 4.
//! - Satisfaction is on a 10-point scale: a score of s out of m counts as 10·s/m.

use techmon_lake::glossary::{self, Codes, Term};

/// A named view: SQL over the catalogue's tables and the views before it.
pub struct View {
    pub name: &'static str,
    pub description: &'static str,
    pub sql: &'static str,
    /// The meaning of its columns that mean something of their own here; the others
    /// mean what [`VIEW_TERMS`], else the lake's glossary, says.
    pub columns: &'static [Term],
    /// What a researcher gets of it.
    pub release: Release,
}

/// How a view is released to researchers (see [`crate::disclosure`]): a curated
/// output, computed whole and then released as a table.
pub enum Release {
    /// It reads no person-level rows, or only which school years they fall in.
    Open,
    /// Rows whose `persons` (SQL over the view's columns: the persons behind the row)
    /// is below the threshold have their `values` blanked, and so have the next
    /// smallest rows of the same `within` partition (rows that add up to a total
    /// found elsewhere) where one blank would follow from that total.
    Persons {
        persons: &'static str,
        values: &'static [&'static str],
        within: &'static [&'static str],
    },
}

impl View {
    /// What `column` of this view means.
    pub fn term(&self, column: &str) -> Option<&'static Term> {
        self.columns
            .iter()
            .chain(VIEW_TERMS)
            .find(|term| term.column == column)
            .or_else(|| glossary::shared(column))
    }
}

/// The view called `name`.
pub fn find(name: &str) -> Option<&'static View> {
    VIEWS.iter().find(|v| v.name == name)
}

/// Columns that mean the same in every view that has them.
pub const VIEW_TERMS: &[Term] = &[
    Term::new("scope", "What the row covers: 'national' (every school in DUO's file), 'regions' (every region's municipalities; only where there are several regions), 'region' (the municipalities of region_id) or a hub_id (the hub's municipality).").codes(Codes::List("hubs", "hub_id")),
    Term::new("region_id", "The region of the row: the region itself for scope 'region', the hub's for a hub; null for 'national' and 'regions'.").codes(Codes::List("regions", "region_id")),
    Term::new("track", "The Monitor Techniekpact population: 'vmbo' (vmbo bb/kb/gl, leerjaar 3), 'havo_vwo' (havo and vwo, leerjaar 4), or 'all' (both).").codes(Codes::Values(&["vmbo", "havo_vwo", "all"])),
    Term::new("pupils", "Pupils counted, from DUO: a count DUO suppressed (1 to 4) counts as 2.5; pupils_min and pupils_max bound the sum.").unit("pupils"),
    Term::new("technical_pupils", "Of pupils, those in a technical profile.").unit("pupils"),
    Term::new("share_pct", "The share of pupils in a technical profile: 100 × technical_pupils / pupils.").unit("percent"),
    Term::new("share_min_pct", "The least the share can be given DUO's suppressed counts (technical ones as 1, others as 4).").unit("percent"),
    Term::new("share_max_pct", "The most the share can be given DUO's suppressed counts (technical ones as 4, others as 1).").unit("percent"),
    Term::new("suppressed_cells", "How many of DUO's counts behind the row were suppressed (<5).").unit("counts"),
    Term::new("numerator", "The KPI's numerator: people, organisations or the sum of scores (see the KPI's unit)."),
    Term::new("denominator", "The KPI's denominator: DUO pupils for a share, answers for a score; null for a count."),
];

/// `groep` (PO) as a KPI band.
macro_rules! groep_band {
    ($groep:literal) => {
        concat!(
            "CASE WHEN ",
            $groep,
            " BETWEEN 1 AND 2 THEN 'groep_1_2' WHEN ",
            $groep,
            " BETWEEN 3 AND 6 THEN 'groep_3_6' WHEN ",
            $groep,
            " BETWEEN 7 AND 8 THEN 'groep_7_8' END"
        )
    };
}

/// The Monitor Techniekpact population a row of VO pupils belongs to: vmbo bb/kb/gl
/// in leerjaar 3 (`vmbo`), havo/vwo in leerjaar 4 (`havo_vwo`), else none.
macro_rules! track {
    () => {
        "CASE WHEN onderwijstype IN ('vmbo-bb', 'vmbo-kb', 'vmbo-gl') AND leerjaar = 3 THEN 'vmbo' \
              WHEN onderwijstype IN ('havo', 'vwo') AND leerjaar = 4 THEN 'havo_vwo' END AS track"
    };
}

/// A DUO count (columns with this prefix) as a point estimate: suppressed as 2.5.
macro_rules! estimate {
    ($prefix:literal) => {
        concat!(
            "coalesce(CAST(",
            $prefix,
            "pupils AS DOUBLE), (",
            $prefix,
            "pupils_min + ",
            $prefix,
            "pupils_max) / 2.0)"
        )
    };
}

/// The technical-profile share of the DUO counts grouped: estimated pupils, technical
/// pupils, the share and its bounds, and the suppressed counts behind it.
macro_rules! share_columns {
    () => {
        concat!(
            "sum(",
            estimate!(""),
            ") AS pupils, \
             sum(CASE WHEN technical THEN ",
            estimate!(""),
            " ELSE 0 END) AS technical_pupils, \
             100.0 * sum(CASE WHEN technical THEN ",
            estimate!(""),
            " ELSE 0 END) / sum(",
            estimate!(""),
            ") AS share_pct, \
             100.0 * sum(CASE WHEN technical THEN pupils_min ELSE 0 END) \
                   / (sum(CASE WHEN technical THEN pupils_min ELSE 0 END) + sum(CASE WHEN technical THEN 0 ELSE pupils_max END)) AS share_min_pct, \
             100.0 * sum(CASE WHEN technical THEN pupils_max ELSE 0 END) \
                   / (sum(CASE WHEN technical THEN pupils_max ELSE 0 END) + sum(CASE WHEN technical THEN 0 ELSE pupils_min END)) AS share_max_pct, \
             sum(CASE WHEN suppressed THEN 1 ELSE 0 END) AS suppressed_cells"
        )
    };
}

/// Whether there are several regions: only then are all regions together (`regions`)
/// a scope of their own.
macro_rules! several_regions {
    () => {
        "(SELECT count(*) FROM regions) > 1"
    };
}

/// A school year's start (an integer expression) as the school year, `2022/23`.
macro_rules! school_year {
    ($start:literal) => {
        concat!(
            "concat(CAST(",
            $start,
            " AS VARCHAR), '/', lpad(CAST((",
            $start,
            " + 1) % 100 AS VARCHAR), 2, '0'))"
        )
    };
}

/// A column's value in school year 2022/23 (the baseline) beside every school year of
/// the same scope and track, as `baseline_<column>`.
macro_rules! baseline {
    ($column:literal) => {
        concat!(
            "max(CASE WHEN school_year = '2022/23' THEN ",
            $column,
            " END) OVER per_scope AS baseline_",
            $column
        )
    };
}

pub const VIEWS: &[View] = &[
    View {
        name: "activities_per_month",
        description: "Activities held per hub, month and activity type.",
        columns: &[
            Term::new("month", "The first moment (UTC) of the month the activity started in."),
            Term::new("activities", "Activities held (each activity_id once).").unit("activities"),
        ],
        sql: "SELECT hub_id, date_trunc('month', starts_at) AS month, activity_type, count(*) AS activities \
              FROM (SELECT DISTINCT hub_id, activity_id, activity_type, starts_at FROM activities) \
              GROUP BY hub_id, date_trunc('month', starts_at), activity_type",
        release: Release::Open,
    },
    View {
        name: "kpi_years",
        description: "The years KPIs are reported for (with targets or data); year Y is school year Y/Y+1.",
        columns: &[],
        sql: concat!(
            "SELECT year, ",
            school_year!("year"),
            " AS school_year \
              FROM (SELECT year FROM kpi_targets \
                    UNION SELECT school_year_start FROM group_participations \
                    UNION SELECT school_year_start FROM attendances \
                    UNION SELECT school_year_start FROM survey_answers)"
        ),
        release: Release::Open,
    },
    View {
        name: "reach",
        description: "People who took part per hub, school year, sector, PO groep band and role: classes once per school year (see the view's SQL), individuals once by pseudonym, and people without research consent as counted in participation_without_consent.",
        // The band and role are worked out once per class, and once per participant
        // before the join, rather than for every row they are grouped from (a CASE
        // on groep over the group rows alone cost noticeable CPU time).
        columns: &[],
        sql: concat!(
            "SELECT hub_id, school_year, sector, band, role, sum(people) AS people FROM ( \
               SELECT hub_id, school_year, sector, ",
            groep_band!("groep"),
            " AS band, \
                      CASE WHEN sector IN ('MBO', 'HBO') THEN 'student' ELSE 'pupil' END AS role, people \
               FROM (SELECT hub_id, school_year, sector, groep, max(per_activity) AS people \
                     FROM (SELECT hub_id, school_year, sector, school_brin6, groep, leerjaar, onderwijstype, activity_id, \
                                  sum(participants_total) AS per_activity \
                           FROM group_participations \
                           GROUP BY hub_id, school_year, sector, school_brin6, groep, leerjaar, onderwijstype, activity_id) \
                     GROUP BY hub_id, school_year, sector, school_brin6, groep, leerjaar, onderwijstype) \
               UNION ALL \
               SELECT a.hub_id, a.school_year, p.sector, p.band, coalesce(a.role, p.role) AS role, \
                      count(DISTINCT a.participant_pseudonym) AS people \
               FROM attendances a \
               LEFT JOIN (SELECT participant_pseudonym, max(role) AS role, max(sector) AS sector, \
                                 CASE WHEN max(sector) = 'PO' THEN ",
            groep_band!("max(groep)"),
            " END AS band \
                          FROM participants GROUP BY participant_pseudonym) p \
                 ON a.participant_pseudonym = p.participant_pseudonym \
               GROUP BY a.hub_id, a.school_year, p.sector, p.band, coalesce(a.role, p.role) \
               UNION ALL \
               SELECT hub_id, school_year, sector, band, role, people \
               FROM participation_without_consent WHERE measure = 'reach') \
             GROUP BY hub_id, school_year, sector, band, role"
        ),
        release: Release::Persons {
            persons: "people",
            values: &["people"],
            within: &["school_year", "sector", "band", "role"],
        },
    },
    View {
        name: "region_municipalities",
        description: "Each region's municipalities, one row each, from the regions registry: the places whose DUO counts are the region's.",
        columns: &[Term::new("municipality", "A municipality of the region, as DUO writes it.")],
        sql: "SELECT region_id, unnest(municipalities) AS municipality FROM regions",
        release: Release::Open,
    },
    View {
        name: "po_pupils_per_hub",
        description: "DUO PO pupils per hub (schools in the hub's municipality), school year and groep band: estimate and bounds. Basisonderwijs (Bo) and speciaal basisonderwijs (Sbo) only: pupils of speciaal onderwijs are not in groepen.",
        columns: &[],
        sql: concat!(
            "SELECT h.hub_id, d.school_year, d.groep_band AS band, \
                    sum(",
            estimate!("d."),
            ") AS pupils, \
                    sum(d.pupils_min) AS pupils_min, sum(d.pupils_max) AS pupils_max \
             FROM duo_po_pupils d JOIN hubs h ON upper(trim(d.municipality)) = upper(h.municipality) \
             WHERE d.groep_band IS NOT NULL AND (d.soort_po IS NULL OR upper(d.soort_po) IN ('BO', 'SBO')) \
             GROUP BY h.hub_id, d.school_year, d.groep_band"
        ),
        release: Release::Open,
    },
    View {
        name: "vo_profile_cells",
        description: "DUO VO counts in the Monitor Techniekpact population: vmbo bb/kb/gl leerjaar 3 (track vmbo) and havo/vwo leerjaar 4 (track havo_vwo), each row also under track 'all', with scope 'national', 'regions' (where there are several), 'region' (the municipalities of region_id) or a hub_id (its municipality). A school's municipality is DUO's address file's (duo_schools, its newest import) where the pupils file has none.",
        // One scan of DUO's counts joined to the scopes and tracks, rather than a union
        // per scope and track: every branch of a union is planned and scanned in full.
        columns: &[Term::new(
            "pupils",
            "DUO's count of the cell; null where DUO suppressed it (pupils_min and pupils_max bound it).",
        )
        .unit("pupils")],
        sql: concat!(
            "WITH addresses AS ( \
                SELECT brin6, municipality FROM ( \
                  SELECT brin6, municipality, \
                         row_number() OVER (PARTITION BY brin6 ORDER BY school_year DESC) AS newest \
                  FROM duo_schools) \
                WHERE newest = 1), \
              tracked AS ( \
                SELECT v.brin6, v.school_year, coalesce(v.municipality, a.municipality) AS municipality, \
                       v.technical, v.pupils, v.pupils_min, v.pupils_max, v.suppressed, \
                       ",
            track!(),
            " \
                FROM duo_vo_pupils v LEFT JOIN addresses a ON a.brin6 = v.brin6), \
              scopes AS ( \
                SELECT 'national' AS scope, CAST(NULL AS VARCHAR) AS region_id, CAST(NULL AS VARCHAR) AS place \
                UNION ALL SELECT DISTINCT 'regions', CAST(NULL AS VARCHAR), upper(municipality) FROM region_municipalities \
                  WHERE ",
            several_regions!(),
            " \
                UNION ALL SELECT DISTINCT 'region', region_id, upper(municipality) FROM region_municipalities \
                UNION ALL SELECT hub_id, region_id, upper(municipality) FROM hubs) \
              SELECT s.scope, s.region_id, t.school_year, t.brin6, t.municipality, t.technical, t.pupils, t.pupils_min, t.pupils_max, t.suppressed, \
                     CASE WHEN a.all_tracks THEN 'all' ELSE t.track END AS track \
              FROM tracked t \
              CROSS JOIN (VALUES (false), (true)) AS a(all_tracks) \
              JOIN scopes s ON s.place IS NULL OR s.place = upper(trim(t.municipality)) \
              WHERE t.track IS NOT NULL"
        ),
        release: Release::Open,
    },
    View {
        name: "technical_profile_share",
        description: "Share (%) of VO pupils in a technical profile per scope, school year and track, from DUO: point estimate (suppressed cells as 2.5) and bounds (as 1 and 4).",
        columns: &[],
        sql: concat!(
            "SELECT scope, region_id, school_year, track, ",
            share_columns!(),
            " FROM vo_profile_cells GROUP BY scope, region_id, school_year, track"
        ),
        release: Release::Open,
    },
    View {
        name: "participant_profile_share",
        description: "Share (%) of technical profiles among the profile choices hubs reported for former participants (profile_chosen), per hub, region ('region' with its region_id) or all regions ('regions', where there are several), school year and track.",
        // Summed per hub, school year and the plain columns the track derives from first:
        // the track is then worked out for a few hundred rows rather than every choice,
        // and the grouping sets repeat a few rows per hub four times, which makes the
        // view faster on a large lake.
        columns: &[
            Term::new("scope", "What the row covers: a hub_id, 'region' (every hub of region_id) or 'regions' (every hub; only where there are several regions).").codes(Codes::List("hubs", "hub_id")),
            Term::new("pupils", "Profile choices hubs reported for former participants (profile_chosen).").unit("pupils"),
        ],
        sql: concat!(
            "WITH choices AS ( \
                SELECT c.hub_id, h.region_id, c.school_year, c.track, sum(c.pupils) AS pupils, \
                       sum(CASE WHEN c.technical THEN c.pupils ELSE 0 END) AS technical_pupils \
                FROM (SELECT hub_id, school_year, technical, pupils, ",
            track!(),
            " FROM (SELECT hub_id, school_year, onderwijstype, leerjaar, technical, sum(pupils) AS pupils \
                         FROM profile_choices GROUP BY hub_id, school_year, onderwijstype, leerjaar, technical)) c \
                JOIN hubs h ON h.hub_id = c.hub_id \
                WHERE c.track IS NOT NULL GROUP BY c.hub_id, h.region_id, c.school_year, c.track), \
              scoped AS ( \
                SELECT coalesce(hub_id, CASE WHEN region_id IS NULL THEN 'regions' ELSE 'region' END) AS scope, \
                       region_id, school_year, coalesce(track, 'all') AS track, \
                       sum(pupils) AS pupils, sum(technical_pupils) AS technical_pupils, \
                       100.0 * sum(technical_pupils) / sum(pupils) AS share_pct \
                FROM choices \
                GROUP BY GROUPING SETS ((hub_id, region_id, school_year, track), (hub_id, region_id, school_year), \
                                        (region_id, school_year, track), (region_id, school_year), \
                                        (school_year, track), (school_year))) \
              SELECT * FROM scoped WHERE scope <> 'regions' OR ",
            several_regions!()
        ),
        release: Release::Persons {
            // The smaller of the technical and the other choices: either, small, tells
            // of a few pupils.
            persons: "least(technical_pupils, pupils - technical_pupils)",
            values: &["pupils", "technical_pupils", "share_pct"],
            within: &["school_year", "track"],
        },
    },
    View {
        name: "technical_profile_vs_2022",
        description: "Headline: the technical-profile share per scope, school year and track against school year 2022/23, in percentage points (with bounds) and relative; the national change beside it and the difference (difference-in-differences); the share among former participants beside it.",
        // One technical_profile_share with window functions rather than joins of it to
        // itself: each reference to a view is planned in full, and four references
        // made planning most of this view's time.
        columns: &[
            Term::new("baseline_share_pct", "share_pct in school year 2022/23, the baseline.").unit("percent"),
            Term::new("change_pp", "share_pct minus baseline_share_pct.").unit("percentage points"),
            Term::new("change_pp_min", "The least the change can be given DUO's suppressed counts.").unit("percentage points"),
            Term::new("change_pp_max", "The most the change can be given DUO's suppressed counts.").unit("percentage points"),
            Term::new("change_relative_pct", "The change relative to the baseline: 100 × (share_pct / baseline_share_pct − 1).").unit("percent"),
            Term::new("national_change_pp", "The national change_pp of the same school year and track.").unit("percentage points"),
            Term::new("difference_in_differences_pp", "change_pp minus national_change_pp: how much more the share changed here than in the whole country (descriptive, not an effect estimate).").unit("percentage points"),
            Term::new("participants_share_pct", "participant_profile_share.share_pct of the same scope, school year and track: the share among former participants.").unit("percent"),
            Term::new("participants_reported", "participant_profile_share.pupils: the profile choices that share is of.").unit("pupils"),
            Term::new("suppressed_cells", "How many of DUO's counts behind the row and its baseline were suppressed (<5).").unit("counts"),
            Term::new("note", "A note on the row's estimates, where DUO suppressed counts behind them."),
        ],
        sql: concat!(
            "WITH shares AS ( \
                SELECT *, \
                       max(CASE WHEN school_year = '2022/23' THEN 1 END) OVER per_scope AS has_baseline, ",
            baseline!("share_pct"),
            ", ",
            baseline!("share_min_pct"),
            ", ",
            baseline!("share_max_pct"),
            ", ",
            baseline!("suppressed_cells"),
            " \
                FROM technical_profile_share \
                WINDOW per_scope AS (PARTITION BY scope, region_id, track)), \
              compared AS ( \
                SELECT *, share_pct - baseline_share_pct AS change_pp, \
                       max(CASE WHEN scope = 'national' THEN share_pct - baseline_share_pct END) \
                         OVER (PARTITION BY school_year, track) AS national_change_pp \
                FROM shares WHERE has_baseline = 1) \
              SELECT s.scope, s.region_id, s.school_year, s.track, s.pupils, s.technical_pupils, \
                     s.share_pct, s.share_min_pct, s.share_max_pct, \
                     s.baseline_share_pct, \
                     s.change_pp, \
                     s.share_min_pct - s.baseline_share_max_pct AS change_pp_min, \
                     s.share_max_pct - s.baseline_share_min_pct AS change_pp_max, \
                     100.0 * (s.share_pct / s.baseline_share_pct - 1) AS change_relative_pct, \
                     s.national_change_pp, \
                     s.change_pp - s.national_change_pp AS difference_in_differences_pp, \
                     p.share_pct AS participants_share_pct, p.pupils AS participants_reported, \
                     s.suppressed_cells + s.baseline_suppressed_cells AS suppressed_cells, \
                     CASE WHEN s.suppressed_cells + s.baseline_suppressed_cells > 0 \
                          THEN 'DUO suppressed some counts (<5): estimates count them as 2.5, the _min/_max columns as 1 and 4' END AS note \
              FROM compared s \
              LEFT JOIN participant_profile_share p ON p.scope = s.scope AND coalesce(p.region_id, '') = coalesce(s.region_id, '') \
                AND p.school_year = s.school_year AND p.track = s.track"
        ),
        release: Release::Persons {
            persons: "least(round(participants_reported * participants_share_pct / 100.0), \
                      participants_reported - round(participants_reported * participants_share_pct / 100.0))",
            values: &["participants_share_pct", "participants_reported"],
            within: &["school_year", "track"],
        },
    },
    View {
        name: "effect_panel",
        description: "The effect measurement's panel: per VO school location (BRIN6), school year and track, DUO's pupils and the share in a technical profile (suppressed counts as in technical_profile_share), and when a hub first reached the school. Every school in DUO's file is in it: those never reached are the comparison pool of effect_estimates.",
        columns: &[
            Term::new("municipality", "The school's municipality, from DUO (the address file where the pupils file has none)."),
            Term::new("region_id", "The region whose municipalities the school is in; null: none.").codes(Codes::List("regions", "region_id")),
            Term::new("in_region", "Whether the school is in a region's municipality (region_id is not null)."),
            Term::new("reached_by", "The hub that first reached the school: the first school year one of its VO classes took part in a hub's activity (group_participations); a tie goes to the first hub_id. Null: never reached.").codes(Codes::List("hubs", "hub_id")),
            Term::new("first_reached", "The school year the school was first reached."),
            Term::new("treated_from", "The school year after first_reached: the first whose DUO count (1 October) comes after reached pupils chose their profile (in the spring before), so the first that can show an effect."),
        ],
        sql: concat!(
            "WITH shares AS ( \
                SELECT brin6, school_year, track, max(municipality) AS municipality, ",
            share_columns!(),
            " FROM vo_profile_cells WHERE scope = 'national' GROUP BY brin6, school_year, track), \
              reached AS ( \
                SELECT school_brin6, hub_id, first_reached FROM ( \
                  SELECT school_brin6, hub_id, min(school_year_start) AS first_reached, \
                         row_number() OVER (PARTITION BY school_brin6 ORDER BY min(school_year_start), hub_id) AS earliest \
                  FROM group_participations WHERE sector = 'VO' AND school_brin6 IS NOT NULL \
                  GROUP BY school_brin6, hub_id) \
                WHERE earliest = 1), \
              places AS (SELECT upper(municipality) AS place, min(region_id) AS region_id \
                         FROM region_municipalities GROUP BY upper(municipality)) \
              SELECT s.brin6, s.school_year, s.track, s.municipality, p.region_id, p.place IS NOT NULL AS in_region, \
                     r.hub_id AS reached_by, \
                     CASE WHEN r.hub_id IS NOT NULL THEN ",
            school_year!("r.first_reached"),
            " END AS first_reached, \
                     CASE WHEN r.hub_id IS NOT NULL THEN ",
            school_year!("r.first_reached + 1"),
            " END AS treated_from, \
                     s.pupils, s.technical_pupils, s.share_pct, s.share_min_pct, s.share_max_pct, s.suppressed_cells \
              FROM shares s \
              LEFT JOIN reached r ON r.school_brin6 = s.brin6 \
              LEFT JOIN places p ON p.place = upper(trim(s.municipality))"
        ),
        release: Release::Open,
    },
    View {
        name: "kpi_measures",
        description: "Per KPI, band, hub and school year: numerator and denominator (the KPI is their ratio for shares and scores, the numerator for counts); the technical-profile KPI comes from technical_profile_vs_2022.",
        // Partners and ambassadors as one set of memberships (the latest change per member
        // and year counts; an ambassador only joins), so kpi_years is planned once here.
        columns: &[],
        sql: "SELECT kpi, band, hub_id, school_year, sum(numerator) AS numerator, sum(denominator) AS denominator FROM ( \
               SELECT CASE WHEN sector = 'PO' AND role = 'pupil' AND band IS NOT NULL THEN 'po_participation_share' \
                           WHEN sector = 'VO' AND role = 'pupil' THEN 'vo_pupils' \
                           WHEN sector = 'MBO' AND role IN ('pupil', 'student') THEN 'mbo_students' \
                           WHEN role = 'parent' THEN 'parents' END AS kpi, \
                      CASE WHEN sector = 'PO' THEN band END AS band, hub_id, school_year, \
                      CAST(people AS DOUBLE) AS numerator, \
                      CASE WHEN sector = 'PO' AND role = 'pupil' AND band IS NOT NULL THEN 0.0 END AS denominator \
                 FROM reach \
                 WHERE (sector = 'PO' AND role = 'pupil' AND band IS NOT NULL) OR (sector = 'VO' AND role = 'pupil') \
                    OR (sector = 'MBO' AND role IN ('pupil', 'student')) OR role = 'parent' \
               UNION ALL SELECT 'po_participation_share', band, hub_id, school_year, 0.0, pupils FROM po_pupils_per_hub \
               UNION ALL SELECT 'teachers_professionalised', NULL, a.hub_id, a.school_year, \
                      CAST(count(DISTINCT a.participant_pseudonym) AS DOUBLE), NULL \
                 FROM attendances a \
                 JOIN (SELECT DISTINCT hub_id, activity_id FROM activities WHERE activity_type = 'docentprofessionalisering') t \
                   ON a.hub_id = t.hub_id AND a.activity_id = t.activity_id \
                 WHERE a.role = 'teacher' \
                    OR (a.role IS NULL AND a.participant_pseudonym IN ( \
                          SELECT participant_pseudonym FROM participants WHERE role = 'teacher')) \
                 GROUP BY a.hub_id, a.school_year \
               UNION ALL SELECT 'teachers_professionalised', NULL, hub_id, school_year, CAST(people AS DOUBLE), NULL \
                 FROM participation_without_consent WHERE measure = 'teachers_professionalised' \
               UNION ALL SELECT 'satisfaction', NULL, hub_id, school_year, score_of_10, 1.0 FROM survey_answers \
               UNION ALL SELECT kpi, NULL, hub_id, school_year, CAST(count(*) AS DOUBLE), NULL FROM ( \
                 SELECT m.kpi, m.hub_id, y.school_year, m.change, \
                        row_number() OVER (PARTITION BY m.kpi, m.hub_id, y.school_year, m.member \
                                           ORDER BY m.occurred_at DESC, m.log_partition DESC, m.log_offset DESC) AS recency \
                 FROM (SELECT 'affiliated_organisations' AS kpi, hub_id, school_year, partner_id AS member, change, \
                              occurred_at, log_partition, log_offset FROM partner_events \
                       UNION ALL SELECT 'ambassadors', hub_id, school_year, ambassador_pseudonym, 'joined', \
                              occurred_at, log_partition, log_offset FROM ambassadors) m \
                 JOIN kpi_years y ON m.school_year <= y.school_year) \
                 WHERE recency = 1 AND change = 'joined' GROUP BY kpi, hub_id, school_year \
             ) GROUP BY kpi, band, hub_id, school_year",
        release: Release::Persons {
            persons: "CASE WHEN kpi = 'affiliated_organisations' THEN NULL \
                           WHEN kpi = 'satisfaction' THEN coalesce(denominator, 0) \
                           ELSE coalesce(numerator, 0) END",
            values: &["numerator", "denominator"],
            within: &["kpi", "band", "school_year"],
        },
    },
    View {
        name: "kpi_report",
        description: "Every KPI of its region's KPI set per hub, per region ('region' with its region_id) and for all regions together ('regions', where there are several) per year: actual, target, and whether the target was met (null: no target, or a share or score without data; a count without data is 0). A hub's target is its own where kpi_targets has one, else its region's; all regions together have none.",
        columns: &[
            Term::new("hub_id", "The techniekhub; 'region' for all hubs of region_id together; 'regions' for every hub (where there are several regions).").codes(Codes::List("hubs", "hub_id")),
            Term::new("actual", "The KPI's value: numerator / denominator for a share (× 100) or score, the numerator for a count or change, in the KPI's unit."),
            Term::new("met", "Whether actual reached target; null without a target, or for a share or score without data."),
        ],
        sql: concat!(
            "WITH per_scope AS ( \
                SELECT kpi, band, coalesce(hub_id, CASE WHEN region_id IS NULL THEN 'regions' ELSE 'region' END) AS hub_id, \
                       region_id, school_year, sum(numerator) AS numerator, sum(denominator) AS denominator \
                FROM (SELECT m.*, h.region_id FROM kpi_measures m JOIN hubs h ON h.hub_id = m.hub_id) \
                GROUP BY GROUPING SETS ((kpi, band, hub_id, region_id, school_year), (kpi, band, region_id, school_year), \
                                        (kpi, band, school_year)) \
                UNION ALL \
                SELECT 'technical_profile_change_vs_2022', NULL, scope, region_id, school_year, change_pp, NULL \
                FROM technical_profile_vs_2022 \
                WHERE track = 'all' AND (scope IN ('region', 'regions') OR scope IN (SELECT hub_id FROM hubs))), \
              scopes AS ( \
                SELECT hub_id, region_id FROM hubs \
                UNION ALL SELECT 'region', region_id FROM regions \
                UNION ALL SELECT 'regions', CAST(NULL AS VARCHAR) WHERE ",
            several_regions!(),
            "), \
              frame AS ( \
                SELECT DISTINCT k.kpi, k.band, k.unit, k.description, y.year, y.school_year, s.hub_id, s.region_id \
                FROM scopes s \
                JOIN (SELECT DISTINCT region_id, kpi, band, unit, description FROM kpi_targets) k \
                  ON k.region_id = s.region_id OR s.region_id IS NULL \
                CROSS JOIN kpi_years y), \
              valued AS ( \
                SELECT f.kpi, f.band, f.hub_id, f.region_id, f.year, f.school_year, f.unit, \
                       CASE f.unit \
                         WHEN 'percent' THEN CASE WHEN m.denominator > 0 THEN 100.0 * coalesce(m.numerator, 0) / m.denominator END \
                         WHEN 'score_10' THEN CASE WHEN m.denominator > 0 THEN m.numerator / m.denominator END \
                         WHEN 'percent_change' THEN m.numerator \
                         ELSE coalesce(m.numerator, 0) END AS actual, \
                       m.numerator, m.denominator, f.description \
                FROM frame f LEFT JOIN per_scope m \
                  ON m.kpi = f.kpi AND coalesce(m.band, '') = coalesce(f.band, '') \
                 AND m.hub_id = f.hub_id AND coalesce(m.region_id, '') = coalesce(f.region_id, '') \
                 AND m.school_year = f.school_year), \
              targeted AS ( \
                SELECT v.*, CASE WHEN own.kpi IS NOT NULL THEN own.target ELSE shared.target END AS target \
                FROM valued v \
                LEFT JOIN kpi_targets own \
                  ON own.hub_id = v.hub_id AND own.region_id = v.region_id AND own.kpi = v.kpi \
                 AND coalesce(own.band, '') = coalesce(v.band, '') AND own.year = v.year \
                LEFT JOIN kpi_targets shared \
                  ON shared.hub_id IS NULL AND shared.region_id = v.region_id AND shared.kpi = v.kpi \
                 AND coalesce(shared.band, '') = coalesce(v.band, '') AND shared.year = v.year) \
              SELECT kpi, band, hub_id, region_id, year, school_year, unit, actual, target, \
                     CASE WHEN target IS NULL OR actual IS NULL THEN NULL ELSE actual >= target END AS met, \
                     numerator, denominator, description \
              FROM targeted"
        ),
        release: Release::Persons {
            persons: "CASE WHEN kpi IN ('affiliated_organisations', 'technical_profile_change_vs_2022') THEN NULL \
                           WHEN unit = 'score_10' THEN coalesce(denominator, 0) \
                           ELSE coalesce(numerator, 0) END",
            values: &["actual", "met", "numerator", "denominator"],
            within: &["kpi", "band", "year"],
        },
    },
];
