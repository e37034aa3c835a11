//! The named views that answer the monitor's research questions.

/// A named view: SQL over the catalogue's tables.
pub struct View {
    pub name: &'static str,
    pub description: &'static str,
    pub sql: &'static str,
}

pub const VIEWS: &[View] = &[View {
    name: "activities_per_month",
    description: "Activities held per hub, month and activity type.",
    sql: "SELECT hub_id, date_trunc('month', starts_at) AS month, activity_type, count(*) AS activities \
          FROM activities GROUP BY hub_id, date_trunc('month', starts_at), activity_type",
}];
