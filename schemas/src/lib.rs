//! techmon's event types, JSON Schemas and reference code lists.
//!
//! This crate is pure: it does no I/O. The JSON Schema files (`json/`), the code
//! lists (`codes/`) and the examples (`examples/`) are embedded with `include_str!`
//! and parsed once, on first use.
//!
//! - [`validate_event`] checks one incoming record (envelope, payload schema of its
//!   kind and version, semantic rules) and returns the typed [`Event`] or every
//!   problem found, each with the JSON Pointer of its field. Reasons never repeat
//!   the offending value: records carry personal data.
//! - [`record_from_csv`] turns one CSV row of a feed into an event record, to be
//!   passed to [`validate_event`].
//! - [`schema`] and [`catalogue`] serve the composed schemas (envelope + payload)
//!   for `GET /v1/schemas/{kind}/{version}` and `GET /v1/schemas`.
//! - [`codes`] holds the code lists: hubs, zeven werelden van techniek, profiles
//!   with their technical flag, KPI targets, and [`codes::SchoolYear`].

/// Defines a closed set of string codes: the enum, `as_str`, `ALL`, `Display`,
/// `FromStr` and serde (as the string). Errors never repeat the offending value.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in schema order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The code as it appears in JSON.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::UnknownCode;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::UnknownCode { list: stringify!($name) }),
                }
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct Visitor;
                impl serde::de::Visitor<'_> for Visitor {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        write!(f, "a {} code", stringify!($name))
                    }
                    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<$name, E> {
                        s.parse().map_err(E::custom)
                    }
                }
                deserializer.deserialize_str(Visitor)
            }
        }
    };
}

pub mod codes;
pub mod event;
pub mod json;
mod registry;
pub mod sheet;
pub mod time;
pub mod validate;

pub use event::*;
pub use registry::{
    ColumnShape, REFUSAL_COLUMN, ReadEventError, TimeShape, catalogue, column_shape,
    csv_column_pointer, csv_delimiter, envelope_schema, kinds, kinds_of_header, latest_version,
    payload_schema, read_event, record_from_csv, schema, validate_event,
};
pub use validate::{FieldError, Problem};

/// A string is not one of the codes of a closed list. The message names the list,
/// never the string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a known {list} code")]
pub struct UnknownCode {
    /// The name of the list (the Rust type), such as `EventKind`.
    pub list: &'static str,
}
