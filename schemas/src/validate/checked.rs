//! Validation while a typed value is read: [`Checked`] wraps a deserializer and
//! checks every value it hands over against a [`Schema`], so that a valid event is
//! read in one pass over its text, without a tree (the transform reads every event
//! of the log).
//!
//! It answers only yes or no. Whatever it cannot decide alone (an unknown field,
//! `enum` or `const` on an object or array, a value read in a way techmon's types
//! do not use) is a no; a refused record is validated again on its tree, which
//! lists the problems ([`crate::read_event`]). Its errors carry no text: the tree
//! says what is wrong.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

use super::{Schema, json_equal};
use crate::json::Json;

/// [`Schema::types`] bits of an array and of an object.
const ARRAY: u8 = 1 << 5;
const OBJECT: u8 = 1 << 6;

fn refused<E: de::Error>() -> E {
    E::custom("")
}

/// A value that must match `schema`: wrapped around a deserializer, a visitor or
/// a seed, so that the check goes wherever the value is read.
pub(crate) struct Checked<'a, T> {
    inner: T,
    schema: &'a Schema,
    /// The items read so far of an array whose items must be unique (this value
    /// is one of them).
    earlier: Option<&'a mut Vec<Json<'static>>>,
}

impl<'a, T> Checked<'a, T> {
    pub(crate) fn new(inner: T, schema: &'a Schema) -> Self {
        Self {
            inner,
            schema,
            earlier: None,
        }
    }

    fn wrap<V>(self, visitor: V) -> (T, Checked<'a, V>) {
        let Checked {
            inner,
            schema,
            earlier,
        } = self;
        (
            inner,
            Checked {
                inner: visitor,
                schema,
                earlier,
            },
        )
    }
}

/// The `Deserializer` methods of a wrapper with a `wrap` method, each handing its
/// visitor, wrapped, to the same method of the wrapped deserializer. A value the
/// reader ignores is still read, and so checked.
macro_rules! forward_wrapped {
    ($($method:ident($($arg:ident: $ty:ty),*)),* $(,)?) => {
        $(fn $method<V: Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, D::Error> {
            let (inner, visitor) = self.wrap(visitor);
            inner.$method($($arg,)* visitor)
        })*

        fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
            let (inner, visitor) = self.wrap(visitor);
            inner.deserialize_any(visitor)
        }

        fn is_human_readable(&self) -> bool {
            self.inner.is_human_readable()
        }
    };
}

macro_rules! wrapped_deserializer {
    ($name:ident) => {
        impl<'de, D: Deserializer<'de>> Deserializer<'de> for $name<'_, D> {
            type Error = D::Error;

            forward_wrapped! {
                deserialize_any(), deserialize_bool(), deserialize_i8(), deserialize_i16(),
                deserialize_i32(), deserialize_i64(), deserialize_i128(), deserialize_u8(),
                deserialize_u16(), deserialize_u32(), deserialize_u64(), deserialize_u128(),
                deserialize_f32(), deserialize_f64(), deserialize_char(), deserialize_str(),
                deserialize_string(), deserialize_bytes(), deserialize_byte_buf(),
                deserialize_option(), deserialize_unit(), deserialize_seq(), deserialize_map(),
                deserialize_identifier(),
                deserialize_unit_struct(name: &'static str),
                deserialize_newtype_struct(name: &'static str),
                deserialize_tuple(len: usize),
                deserialize_tuple_struct(name: &'static str, len: usize),
                deserialize_struct(name: &'static str, fields: &'static [&'static str]),
                deserialize_enum(name: &'static str, variants: &'static [&'static str]),
            }
        }
    };
}

wrapped_deserializer!(Checked);
wrapped_deserializer!(Key);

impl<V> Checked<'_, V> {
    /// Checks a value that is not an array or object.
    fn scalar<E: de::Error>(&mut self, value: Json) -> Result<(), E> {
        if !self.schema.accepts_scalar(&value) {
            return Err(refused());
        }
        if let Some(earlier) = self.earlier.as_deref_mut() {
            if earlier.iter().any(|e| json_equal(e, &value)) {
                return Err(refused());
            }
            earlier.push(value.into_owned());
        }
        Ok(())
    }

    /// Checks that an array or object (`bit`) may stand here; its parts are
    /// checked as they are read.
    fn container<E: de::Error>(&self, bit: u8) -> Result<(), E> {
        let schema = self.schema;
        let allowed = schema.types == 0 || schema.types & bit != 0;
        // Comparing whole arrays or objects is left to the tree.
        let compared = schema.constant.is_some() || schema.options.is_some();
        if allowed && !compared && self.earlier.is_none() {
            Ok(())
        } else {
            Err(refused())
        }
    }
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Checked<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.inner.expecting(f)
    }

    fn visit_bool<E: de::Error>(mut self, v: bool) -> Result<V::Value, E> {
        self.scalar(Json::Bool(v))?;
        self.inner.visit_bool(v)
    }

    fn visit_i64<E: de::Error>(mut self, v: i64) -> Result<V::Value, E> {
        self.scalar(Json::Number(v.into()))?;
        self.inner.visit_i64(v)
    }

    fn visit_u64<E: de::Error>(mut self, v: u64) -> Result<V::Value, E> {
        self.scalar(Json::Number(v.into()))?;
        self.inner.visit_u64(v)
    }

    fn visit_f64<E: de::Error>(mut self, v: f64) -> Result<V::Value, E> {
        // As the tree reads it (serde_json never hands over NaN or an infinity).
        self.scalar(Number::from_f64(v).map_or(Json::Null, Json::Number))?;
        self.inner.visit_f64(v)
    }

    fn visit_str<E: de::Error>(mut self, v: &str) -> Result<V::Value, E> {
        self.scalar(Json::String(Cow::Borrowed(v)))?;
        self.inner.visit_str(v)
    }

    fn visit_borrowed_str<E: de::Error>(mut self, v: &'de str) -> Result<V::Value, E> {
        self.scalar(Json::String(Cow::Borrowed(v)))?;
        self.inner.visit_borrowed_str(v)
    }

    fn visit_string<E: de::Error>(mut self, v: String) -> Result<V::Value, E> {
        self.scalar(Json::String(Cow::Borrowed(&v)))?;
        self.inner.visit_string(v)
    }

    fn visit_none<E: de::Error>(mut self) -> Result<V::Value, E> {
        self.scalar(Json::Null)?;
        self.inner.visit_none()
    }

    fn visit_unit<E: de::Error>(mut self) -> Result<V::Value, E> {
        self.scalar(Json::Null)?;
        self.inner.visit_unit()
    }

    fn visit_some<D: Deserializer<'de>>(self, de: D) -> Result<V::Value, D::Error> {
        let (inner, de) = self.wrap(de);
        inner.visit_some(de)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, de: D) -> Result<V::Value, D::Error> {
        let (inner, de) = self.wrap(de);
        inner.visit_newtype_struct(de)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<V::Value, A::Error> {
        self.container(ARRAY)?;
        let mut items = CheckedSeq {
            seq,
            schema: self.schema,
            count: 0,
            done: false,
            earlier: Vec::new(),
        };
        let value = self.inner.visit_seq(&mut items)?;
        let schema = self.schema;
        let count_fits = schema.min_items.is_none_or(|min| items.count >= min)
            && schema.max_items.is_none_or(|max| items.count <= max);
        if items.done && count_fits {
            Ok(value)
        } else {
            Err(refused())
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V::Value, A::Error> {
        self.container(OBJECT)?;
        let mut fields = CheckedMap {
            map,
            schema: self.schema,
            present: 0,
            pending: None,
            done: false,
        };
        let value = self.inner.visit_map(&mut fields)?;
        let complete = (self.schema.required.iter()).all(|p| fields.present & (1 << p) != 0);
        if fields.done && complete {
            Ok(value)
        } else {
            Err(refused())
        }
    }
}

struct CheckedSeq<'a, A> {
    seq: A,
    schema: &'a Schema,
    count: u64,
    /// Whether the end of the array was read.
    done: bool,
    /// The items so far, if they must be unique.
    earlier: Vec<Json<'static>>,
}

impl<'de, A: SeqAccess<'de>> SeqAccess<'de> for CheckedSeq<'_, A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, A::Error> {
        let Some(schema) = self.schema.items.as_deref() else {
            return Err(refused());
        };
        let seed = Checked {
            inner: seed,
            schema,
            earlier: self.schema.unique_items.then_some(&mut self.earlier),
        };
        let item = self.seq.next_element_seed(seed)?;
        match item {
            Some(_) => self.count += 1,
            None => self.done = true,
        }
        Ok(item)
    }

    fn size_hint(&self) -> Option<usize> {
        self.seq.size_hint()
    }
}

struct CheckedMap<'a, A> {
    map: A,
    schema: &'a Schema,
    /// Bits of the properties read.
    present: u128,
    /// The property whose value is next.
    pending: Option<usize>,
    /// Whether the end of the object was read.
    done: bool,
}

impl<'de, A: MapAccess<'de>> MapAccess<'de> for CheckedMap<'_, A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, A::Error> {
        let mut property = None;
        let seed = Key {
            inner: seed,
            schema: self.schema,
            property: &mut property,
        };
        let key = self.map.next_key_seed(seed)?;
        if key.is_none() {
            self.done = true;
            return Ok(None);
        }
        // An unknown field, or a field given twice.
        match property {
            Some(p) if self.present & (1 << p) == 0 => {
                self.present |= 1 << p;
                self.pending = Some(p);
                Ok(key)
            }
            _ => Err(refused()),
        }
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<T::Value, A::Error> {
        let Some(p) = self.pending.take() else {
            return Err(refused());
        };
        let seed = Checked::new(seed, &self.schema.properties[p].1);
        self.map.next_value_seed(seed)
    }

    fn size_hint(&self) -> Option<usize> {
        self.map.size_hint()
    }
}

impl<'de, T: DeserializeSeed<'de>> DeserializeSeed<'de> for Checked<'_, T> {
    type Value = T::Value;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<T::Value, D::Error> {
        let (inner, de) = self.wrap(de);
        inner.deserialize(de)
    }
}

/// An object's key, which notes the property of `schema` it names: wrapped around
/// the key's seed, its deserializer and its visitor. Keys are strings in JSON; a
/// key read any other way names no property.
struct Key<'a, T> {
    inner: T,
    schema: &'a Schema,
    property: &'a mut Option<usize>,
}

impl<'a, T> Key<'a, T> {
    fn wrap<V>(self, visitor: V) -> (T, Key<'a, V>) {
        let Key {
            inner,
            schema,
            property,
        } = self;
        (
            inner,
            Key {
                inner: visitor,
                schema,
                property,
            },
        )
    }
}

impl<'de, T: DeserializeSeed<'de>> DeserializeSeed<'de> for Key<'_, T> {
    type Value = T::Value;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<T::Value, D::Error> {
        let (inner, de) = self.wrap(de);
        inner.deserialize(de)
    }
}

impl<'de, V: Visitor<'de>> Visitor<'de> for Key<'_, V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        self.inner.expecting(f)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<V::Value, E> {
        *self.property = self.schema.property(v);
        self.inner.visit_str(v)
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<V::Value, E> {
        *self.property = self.schema.property(v);
        self.inner.visit_borrowed_str(v)
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<V::Value, E> {
        *self.property = self.schema.property(&v);
        self.inner.visit_string(v)
    }
}
