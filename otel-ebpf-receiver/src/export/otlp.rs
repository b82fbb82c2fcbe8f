//! Conversions from the receiver's own attribute model to OTLP protobuf objects.
//!
//! Stage: inside **export** (OTLP types live here only). Input: [`Attributes`] of resources,
//! metric series and log records. Output: `opentelemetry_proto` `KeyValue`s and `Resource`s
//! for the metrics and logs requests (spans are encoded without objects, see `encode`).

use crate::attr::{AttrValue, Attributes};
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;

/// An OTLP attribute.
pub(crate) fn kv(key: &str, v: Value) -> KeyValue {
    KeyValue {
        key: key.to_string(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

/// An OTLP string attribute.
pub(crate) fn kv_str(key: &str, v: &str) -> KeyValue {
    kv(key, Value::StringValue(v.to_string()))
}

/// The OTLP value of one of our values.
pub(crate) fn value(v: &AttrValue) -> Value {
    match v {
        AttrValue::Str(s) => Value::StringValue(s.to_string()),
        AttrValue::Int(i) => Value::IntValue(*i),
        AttrValue::Double(d) => Value::DoubleValue(*d),
        AttrValue::Bool(b) => Value::BoolValue(*b),
        AttrValue::StrArray(v) => Value::ArrayValue(ArrayValue {
            values: v
                .iter()
                .map(|s| AnyValue {
                    value: Some(Value::StringValue(s.clone())),
                })
                .collect(),
        }),
    }
}

/// The OTLP attributes of a list, in order.
pub(crate) fn key_values(a: &Attributes) -> Vec<KeyValue> {
    a.iter().map(|(k, v)| kv(k, value(v))).collect()
}

/// An OTLP resource with these attributes.
pub(crate) fn resource(a: &Attributes) -> Resource {
    Resource {
        attributes: key_values(a),
        ..Default::default()
    }
}

/// An OTLP int attribute.
pub(crate) fn kv_int(key: &str, v: i64) -> KeyValue {
    kv(key, Value::IntValue(v))
}

/// The value of attribute `key` in `attrs`, if present.
#[cfg(test)]
pub(crate) fn find_attr<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()
}
