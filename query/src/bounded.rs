//! Functions that can build a value far larger than their arguments (`repeat('x',
//! 1e9)`) are wrapped: before they run, the size of the value each row would get is
//! worked out from the arguments, and a row past `query.max_value_bytes` ends the
//! query with `value_too_large`, naming the function and the bound, before anything
//! is allocated. The query's memory pool does not see what scalar functions allocate.
//!
//! Wrapped, with the size reckoned per row: `repeat` (text × count), `lpad` and
//! `rpad` (the length asked, with the text), `replace` (every match of the pattern
//! replaced), `regexp_replace` (every position replaced), `array_repeat` (count
//! elements), `array_resize` (size elements), and the list functions `range` and
//! `generate_series` with whole-number bounds (count elements). Other functions make
//! values at most a few times the size of their arguments (`concat`, `to_hex`,
//! `encode`, …), and aggregates (`string_agg`, `array_agg`) count against the
//! query's memory pool.

use std::fmt;
use std::sync::Arc;

use deltalake::arrow::array::{Array, ArrayRef, AsArray};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{DataType, FieldRef, Int64Type};
use deltalake::datafusion::common::{DataFusionError, Result};
use deltalake::datafusion::logical_expr::{
    ColumnarValue, Documentation, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl,
    Signature,
};
use deltalake::datafusion::prelude::SessionContext;

/// A value a function was asked to make past the bound.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{function} would make a value of {bytes} bytes, more than the {bound} a value may have \
     (query.max_value_bytes)"
)]
pub struct ValueTooLarge {
    pub function: String,
    pub bytes: u64,
    pub bound: u64,
}

/// How a function's value grows with its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Growth {
    /// text × count
    Repeat,
    /// the length asked, plus the text
    Pad,
    /// every match of argument 1 in argument 0 replaced by argument 2
    Replace,
    /// every position of argument 0 replaced by argument 2
    RegexpReplace,
    /// argument 1 elements of argument 0
    ArrayRepeat,
    /// argument 1 elements
    ArrayResize,
    /// (stop - start) / step elements, whole numbers only
    Range,
}

const WRAPPED: &[(&str, Growth)] = &[
    ("repeat", Growth::Repeat),
    ("lpad", Growth::Pad),
    ("rpad", Growth::Pad),
    ("replace", Growth::Replace),
    ("regexp_replace", Growth::RegexpReplace),
    ("array_repeat", Growth::ArrayRepeat),
    ("array_resize", Growth::ArrayResize),
    ("range", Growth::Range),
    ("generate_series", Growth::Range),
];

/// Replaces the growing functions of `ctx` by their bounded wrappers.
pub fn register(ctx: &SessionContext, bound: u64) {
    let functions = ctx.state().scalar_functions().clone();
    for (name, growth) in WRAPPED {
        if let Some(inner) = functions.get(*name) {
            ctx.register_udf(ScalarUDF::new_from_impl(Bounded {
                inner: Arc::clone(inner),
                growth: *growth,
                bound,
            }));
        }
    }
}

#[derive(PartialEq, Eq, Hash)]
struct Bounded {
    inner: Arc<ScalarUDF>,
    growth: Growth,
    bound: u64,
}

impl fmt::Debug for Bounded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bounded({}, {})", self.inner.name(), self.bound)
    }
}

/// Per row, the argument as a whole number (None for null or not one).
fn numbers(arg: &ColumnarValue, rows: usize) -> Vec<Option<i64>> {
    let array = match arg.to_array(rows) {
        Ok(array) => array,
        Err(_) => return vec![None; rows],
    };
    match cast(&array, &DataType::Int64) {
        Ok(ints) => {
            let ints = ints.as_primitive::<Int64Type>();
            (0..ints.len())
                .map(|i| ints.is_valid(i).then(|| ints.value(i)))
                .collect()
        }
        Err(_) => vec![None; rows],
    }
}

/// Per row, the argument's size in bytes as text (8 for anything that is not).
fn sizes(arg: &ColumnarValue, rows: usize) -> Vec<u64> {
    let Ok(array) = arg.to_array(rows) else {
        return vec![0; rows];
    };
    let text: Option<ArrayRef> = match array.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            cast(&array, &DataType::LargeUtf8).ok()
        }
        _ => None,
    };
    match text {
        Some(text) => {
            let text = text.as_string::<i64>();
            (0..text.len())
                .map(|i| {
                    if text.is_valid(i) {
                        text.value(i).len() as u64
                    } else {
                        0
                    }
                })
                .collect()
        }
        None => vec![8; rows],
    }
}

impl Bounded {
    /// The largest value a row would get.
    fn largest(&self, args: &ScalarFunctionArgs) -> u64 {
        let rows = args.number_rows.max(1);
        let arg = |i: usize| args.args.get(i);
        let count = |i: usize| {
            arg(i)
                .map_or(vec![None; rows], |a| numbers(a, rows))
                .into_iter()
                .map(|n| n.unwrap_or(0).max(0) as u64)
                .collect::<Vec<u64>>()
        };
        let size = |i: usize| arg(i).map_or(vec![0; rows], |a| sizes(a, rows));
        let per_row: Vec<u64> = match self.growth {
            Growth::Repeat => {
                let (text, times) = (size(0), count(1));
                text.iter()
                    .zip(&times)
                    .map(|(t, n)| t.saturating_mul(*n))
                    .collect()
            }
            Growth::Pad => {
                let (text, length) = (size(0), count(1));
                text.iter()
                    .zip(&length)
                    .map(|(t, n)| t.saturating_add(*n))
                    .collect()
            }
            Growth::Replace => {
                let (text, from, to) = (size(0), size(1), size(2));
                (0..rows)
                    .map(|r| {
                        let matches = text[r] / from[r].max(1);
                        text[r].saturating_add(matches.saturating_mul(to[r]))
                    })
                    .collect()
            }
            Growth::RegexpReplace => {
                let (text, to) = (size(0), size(2));
                (0..rows)
                    .map(|r| text[r].saturating_add((text[r] + 1).saturating_mul(to[r])))
                    .collect()
            }
            Growth::ArrayRepeat => {
                let (element, times) = (size(0), count(1));
                element
                    .iter()
                    .zip(&times)
                    .map(|(e, n)| (*e).max(8).saturating_mul(*n))
                    .collect()
            }
            Growth::ArrayResize => count(1).into_iter().map(|n| n.saturating_mul(8)).collect(),
            Growth::Range => {
                let numbers = |i: usize| arg(i).map(|a| numbers(a, rows));
                let (first, second, step) = (numbers(0), numbers(1), numbers(2));
                (0..rows)
                    .map(|r| {
                        // range(stop) counts from 0.
                        let (start, stop) = match (&first, &second) {
                            (Some(a), Some(b)) => (a[r], b[r]),
                            (Some(a), None) => (Some(0), a[r]),
                            _ => (None, None),
                        };
                        let step = step.as_ref().map_or(Some(1), |s| s[r]).unwrap_or(1);
                        match (start, stop) {
                            (Some(start), Some(stop)) if step != 0 => {
                                let span =
                                    (i128::from(stop) - i128::from(start)) / i128::from(step);
                                u64::try_from(span.max(0))
                                    .unwrap_or(u64::MAX)
                                    .saturating_mul(8)
                            }
                            _ => 0,
                        }
                    })
                    .collect()
            }
        };
        per_row.into_iter().max().unwrap_or(0)
    }
}

// Delegates everything to the wrapped function; only `invoke_with_args` looks first.
impl ScalarUDFImpl for Bounded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let bytes = self.largest(&args);
        if bytes > self.bound {
            return Err(DataFusionError::External(Box::new(ValueTooLarge {
                function: self.inner.name().to_string(),
                bytes,
                bound: self.bound,
            })));
        }
        self.inner.invoke_with_args(args)
    }
}
