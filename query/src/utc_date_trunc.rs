//! DataFusion's `date_trunc`, with a shortcut for timestamps in UTC. To a day or
//! longer it does a time-zone calculation per value for any zone, UTC included,
//! which is most of the cost of truncating a column such as `starts_at` to months
//! (`activities_per_month`); in UTC the truncated instant is the truncated
//! wall-clock time, which it computes without one. Every lake timestamp is in UTC.

use std::sync::Arc;

use deltalake::arrow::array::{ArrayRef, make_array};
use deltalake::arrow::datatypes::{DataType, FieldRef};
use deltalake::datafusion::common::Result;
use deltalake::datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use deltalake::datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};

#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct UtcDateTrunc(Arc<ScalarUDF>);

impl UtcDateTrunc {
    /// The function to register in place of DataFusion's (same name and aliases).
    pub(crate) fn udf() -> ScalarUDF {
        ScalarUDF::new_from_impl(Self(
            deltalake::datafusion::functions::datetime::date_trunc(),
        ))
    }
}

impl ScalarUDFImpl for UtcDateTrunc {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn aliases(&self) -> &[String] {
        self.0.aliases()
    }

    fn signature(&self) -> &Signature {
        self.0.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.0.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.0.return_field_from_args(args)
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        self.0.output_ordering(inputs)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.0.documentation()
    }

    fn invoke_with_args(&self, mut args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let utc = match args.args.get(1) {
            Some(ColumnarValue::Array(timestamps)) => match timestamps.data_type() {
                DataType::Timestamp(unit, Some(zone)) if is_utc(zone) => {
                    Some((Arc::clone(timestamps), *unit, Arc::clone(zone)))
                }
                _ => None,
            },
            _ => None,
        };
        let Some((timestamps, unit, zone)) = utc else {
            return self.0.invoke_with_args(args);
        };
        // The inner function checks its answer against the type it was promised.
        let naive = DataType::Timestamp(unit, None);
        let as_naive =
            |field: &FieldRef| Arc::new(field.as_ref().clone().with_data_type(naive.clone()));
        args.arg_fields[1] = as_naive(&args.arg_fields[1]);
        args.return_field = as_naive(&args.return_field);
        args.args[1] = ColumnarValue::Array(retyped(&timestamps, naive.clone())?);
        Ok(match self.0.invoke_with_args(args)? {
            ColumnarValue::Array(truncated) => {
                ColumnarValue::Array(retyped(&truncated, DataType::Timestamp(unit, Some(zone)))?)
            }
            scalar => scalar,
        })
    }
}

fn is_utc(zone: &str) -> bool {
    matches!(zone, "UTC" | "+00:00" | "Z" | "Etc/UTC")
}

/// The same values under another timestamp type (no copy).
fn retyped(array: &ArrayRef, to: DataType) -> Result<ArrayRef> {
    Ok(make_array(
        array.to_data().into_builder().data_type(to).build()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::array::{Array, TimestampMicrosecondArray};
    use deltalake::arrow::datatypes::Field;
    use deltalake::datafusion::common::ScalarValue;
    use deltalake::datafusion::config::ConfigOptions;

    fn truncate(function: &ScalarUDF, granularity: &str, timestamps: &ArrayRef) -> ArrayRef {
        let fields = vec![
            Arc::new(Field::new("g", DataType::Utf8, false)),
            Arc::new(Field::new("t", timestamps.data_type().clone(), true)),
        ];
        let args = ScalarFunctionArgs {
            args: vec![
                ColumnarValue::Scalar(ScalarValue::Utf8(Some(granularity.into()))),
                ColumnarValue::Array(Arc::clone(timestamps)),
            ],
            arg_fields: fields.clone(),
            number_rows: timestamps.len(),
            return_field: Arc::clone(&fields[1]),
            config_options: Arc::new(ConfigOptions::default()),
        };
        match function.invoke_with_args(args).expect("date_trunc") {
            ColumnarValue::Array(array) => array,
            ColumnarValue::Scalar(_) => panic!("an array in, an array out"),
        }
    }

    #[test]
    fn utc_timestamps_truncate_as_datafusion_truncates_them() {
        // Around month, quarter and year ends, a leap day, and before 1970.
        let micros: Vec<Option<i64>> = [
            "2024-02-29T23:59:59.999999Z",
            "2024-03-01T00:00:00Z",
            "2023-12-31T23:30:00Z",
            "2025-09-30T22:00:00Z",
            "1969-12-31T12:00:00Z",
        ]
        .iter()
        .map(|t| {
            Some(
                chrono::DateTime::parse_from_rfc3339(t)
                    .expect("time")
                    .timestamp_micros(),
            )
        })
        .chain([None])
        .collect();
        let ours = UtcDateTrunc::udf();
        let theirs = deltalake::datafusion::functions::datetime::date_trunc();
        for zone in ["UTC", "+00:00", "Europe/Amsterdam"] {
            let timestamps: ArrayRef =
                Arc::new(TimestampMicrosecondArray::from(micros.clone()).with_timezone(zone));
            for granularity in ["year", "quarter", "month", "week", "day", "hour", "minute"] {
                let expected = truncate(&theirs, granularity, &timestamps);
                let got = truncate(&ours, granularity, &timestamps);
                assert_eq!(got.data_type(), timestamps.data_type());
                assert_eq!(&got, &expected, "{zone} {granularity}");
            }
        }
    }
}
