//! Reading Yjs content against a layout: deviations are collected as [`SchemaIssue`]s, never
//! turned into panics or errors, so a client that writes the wrong type is reported and the rest
//! of the document still reads.

use serde::Serialize;
use yrs::types::ToJson;
use yrs::{Any, Map, MapRef, Out, ReadTxn};

/// Longest short text field (title, tag, label, assignee, contact field) a typed edit may set, in
/// characters. Bodies, descriptions, notes and replies are bounded by the request size instead.
pub const SHORT_TEXT_CHARS_MAX: usize = 1024;
/// Most entries of a list (tags, labels, assignees) a typed edit may set.
pub const LIST_LEN_MAX: usize = 100;

/// Something in a document that does not match its layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct SchemaIssue {
    /// Where, e.g. `meta.private` or `replies[2].text`.
    pub path: String,
    pub expected: &'static str,
    pub found: String,
}

pub fn describe(value: &Out, txn: &impl ReadTxn) -> String {
    match value {
        Out::Any(a) => format!("{a}"),
        Out::YText(_) => "Y.Text".into(),
        Out::YMap(_) => "Y.Map".into(),
        Out::YArray(_) => "Y.Array".into(),
        Out::YXmlElement(_) | Out::YXmlFragment(_) | Out::YXmlText(_) => "Y.Xml".into(),
        other => format!("{}", other.to_json(txn)),
    }
}

/// The primitive kinds a layout expects in a map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Number,
    Boolean,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Number => "number",
            Kind::Boolean => "boolean",
        }
    }

    fn accepts(self, any: &Any) -> bool {
        matches!(
            (self, any),
            (Kind::String, Any::String(_))
                | (Kind::Number, Any::Number(_))
                | (Kind::Boolean, Any::Bool(_))
        )
    }
}

/// The primitive fields of one map, read against the layout; a deviation is reported at
/// `path.key` and reads as the kind's default.
pub struct Fields<'a, T: ReadTxn> {
    pub map: &'a MapRef,
    pub txn: &'a T,
    /// Where the map sits (`meta`, `replies[2]`).
    pub path: &'a str,
    pub issues: &'a mut Vec<SchemaIssue>,
}

impl<T: ReadTxn> Fields<'_, T> {
    /// `map[key]` if it holds a primitive of `kind`; anything else present is reported.
    fn get(&mut self, key: &str, kind: Kind) -> Option<Any> {
        match self.map.get(self.txn, key) {
            None => None,
            Some(Out::Any(any)) if kind.accepts(&any) => Some(any),
            Some(other) => {
                self.issues.push(SchemaIssue {
                    path: format!("{}.{key}", self.path),
                    expected: kind.name(),
                    found: describe(&other, self.txn),
                });
                None
            }
        }
    }

    pub fn string(&mut self, key: &str) -> String {
        as_string(self.get(key, Kind::String))
    }

    pub fn time_ms(&mut self, key: &str) -> i64 {
        as_time_ms(self.get(key, Kind::Number))
    }

    pub fn boolean(&mut self, key: &str) -> bool {
        as_bool(self.get(key, Kind::Boolean))
    }
}

fn as_string(any: Option<Any>) -> String {
    match any {
        Some(Any::String(s)) => s.to_string(),
        _ => String::new(),
    }
}

/// A time in whole milliseconds since the epoch. Documents keep times as JavaScript numbers
/// (`Date.now()`, an f64 on the wire), and any client may write a fraction there
/// (`performance.timeOrigin + performance.now()`); readers get an integer, rounded, so a REST
/// answer never says `1796153363581.4373` (or `1796153363581.0`). Not a finite number: 0.
fn as_time_ms(any: Option<Any>) -> i64 {
    match any {
        // `as` saturates at i64's bounds and maps NaN to 0; a time is far inside them.
        #[allow(clippy::cast_possible_truncation)]
        Some(Any::Number(yrs::any::Number::Float(f))) if f.is_finite() => f.round() as i64,
        Some(Any::Number(yrs::any::Number::Int(i))) => i,
        _ => 0,
    }
}

fn as_bool(any: Option<Any>) -> bool {
    matches!(any, Some(Any::Bool(true)))
}

/// The strings of an array of strings; other entries are reported.
pub fn strings<T: ReadTxn>(
    array: &yrs::ArrayRef,
    txn: &T,
    path: &str,
    issues: &mut Vec<SchemaIssue>,
) -> Vec<String> {
    use yrs::Array;
    let mut out = Vec::new();
    for (i, v) in array.iter(txn).enumerate() {
        match v {
            Out::Any(Any::String(s)) => out.push(s.to_string()),
            other => issues.push(SchemaIssue {
                path: format!("{path}[{i}]"),
                expected: "string",
                found: describe(&other, txn),
            }),
        }
    }
    out
}
