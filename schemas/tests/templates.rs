//! The CSV templates of the hub guide (`docs/templates/`): one per event kind, plain
//! sheets with Dutch headers, and every row passes the feed's validation as it
//! stands once its envelope is filled in as the feed fills it.

use std::path::Path;

use techmon_schemas::sheet::{
    Receipt, complete, content_digest, identify, version_event_id, version_name,
};
use techmon_schemas::{EventKind, csv_delimiter, record_from_csv, validate_event};

#[test]
fn every_kind_has_a_template_and_every_template_row_is_accepted() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/templates");
    for kind in EventKind::ALL {
        let path = folder.join(format!("{}.csv", kind.as_str()));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let delimiter = csv_delimiter(text.lines().next().unwrap_or_default().as_bytes());
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .from_reader(text.as_bytes());
        let headers = reader.headers().expect("header row").clone();
        let headers: Vec<&str> = headers.iter().collect();
        let mut rows = 0;
        for (line, row) in reader.records().enumerate() {
            let row = row.expect("a CSV row");
            let cells: Vec<&str> = row.iter().collect();
            let mut record = record_from_csv(kind.as_str(), 1, &headers, &cells)
                .unwrap_or_else(|e| panic!("{} row {}: {e:?}", path.display(), line + 1));
            assert!(
                record.get("event_id").is_none() && record.get("hub_id").is_none(),
                "{} leads with the envelope",
                path.display()
            );
            let receipt = Receipt {
                hub_id: "tec-deventer",
                received_at: chrono::Utc::now(),
                repeat: 0,
            };
            let row = complete(*kind, &mut record, &receipt).expect("a plain row has a key");
            let digest = content_digest(&record);
            identify(
                &mut record,
                version_event_id(&version_name(row, digest, None)),
                None,
            );
            let event = validate_event(&record)
                .unwrap_or_else(|e| panic!("{} row {}: {e:?}", path.display(), line + 1));
            assert_eq!(event.kind(), *kind);
            rows += 1;
        }
        assert!(rows > 0, "{} has no example row", path.display());
    }
}
