use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use crate::LakeError;

/// The Delta table versions an answer was computed from: `activities=3,participants=7`.
/// Sent back with a request, it pins the same versions again.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct TableVersions(pub BTreeMap<String, u64>);

impl fmt::Display for TableVersions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (table, version) in &self.0 {
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{table}={version}")?;
        }
        Ok(())
    }
}

impl FromStr for TableVersions {
    type Err = LakeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut versions = BTreeMap::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (table, version) = part
                .split_once('=')
                .and_then(|(t, v)| Some((t.trim(), v.trim().parse::<u64>().ok()?)))
                .ok_or_else(|| LakeError::VersionPin {
                    pin: part.to_string(),
                })?;
            versions.insert(table.to_string(), version);
        }
        Ok(Self(versions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_read_back_what_they_print() {
        let pins: TableVersions = " participants=7, activities = 3 ,".parse().expect("pins");
        assert_eq!(pins.to_string(), "activities=3,participants=7");
        assert_eq!(
            pins.to_string().parse::<TableVersions>().expect("again"),
            pins
        );
        for bad in ["activities", "activities=x", "activities=-1"] {
            assert!(
                matches!(bad.parse::<TableVersions>(), Err(LakeError::VersionPin { pin }) if pin == bad),
                "{bad}"
            );
        }
    }
}
