//! Search filters on document and chunk metadata, and the one definition of what they mean:
//! [`meta_matches`]. Index backends that can evaluate them themselves (PostgreSQL, in SQL) must
//! keep exactly these semantics; the search service re-checks every hit with this function.

use serde_json::Value;

use crate::Metadata;

/// A comparison on a metadata field (document metadata overlaid with chunk metadata).
#[derive(Debug, Clone, PartialEq)]
pub enum MetaOp {
    /// Equal to the JSON value.
    Eq(Value),
    /// Equal to one of the values.
    In(Vec<Value>),
    /// Numeric (or ISO date string) greater than.
    Gt(Value),
    /// Greater or equal.
    Gte(Value),
    /// Less than.
    Lt(Value),
    /// Less or equal.
    Lte(Value),
}

/// A metadata condition.
#[derive(Debug, Clone, PartialEq)]
pub struct MetaFilter {
    /// Field name.
    pub key: String,
    /// Condition.
    pub op: MetaOp,
}

/// A JSON number, or a string that parses as one (`"2021"`, `"1e3"`, `"inf"`).
pub fn as_f64(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Orders two values: numerically when both are numbers (or numeric strings), else as
/// strings (ISO-8601 dates compare correctly that way); `None` when they do not compare.
pub fn compare(a: &Value, b: &Value) -> Option<std::cmp::Ordering> {
    match (as_f64(a), as_f64(b)) {
        (Some(x), Some(y)) => x.partial_cmp(&y),
        _ => match (a, b) {
            (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
            _ => None,
        },
    }
}

/// Whether metadata satisfies one condition. A missing field satisfies none.
pub fn meta_matches(meta: &Metadata, f: &MetaFilter) -> bool {
    let Some(v) = meta.get(&f.key) else {
        return false;
    };
    use std::cmp::Ordering::*;
    match &f.op {
        MetaOp::Eq(want) => v == want,
        MetaOp::In(list) => list.contains(v),
        MetaOp::Gt(x) => compare(v, x) == Some(Greater),
        MetaOp::Gte(x) => matches!(compare(v, x), Some(Greater | Equal)),
        MetaOp::Lt(x) => compare(v, x) == Some(Less),
        MetaOp::Lte(x) => matches!(compare(v, x), Some(Less | Equal)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_conditions() {
        let meta: Metadata =
            serde_json::from_str(r#"{"year": 2021, "team": "hr", "date": "2024-05-01"}"#).unwrap();
        let f = |key: &str, op| MetaFilter {
            key: key.into(),
            op,
        };
        assert!(meta_matches(&meta, &f("team", MetaOp::Eq("hr".into()))));
        assert!(!meta_matches(&meta, &f("team", MetaOp::Eq("it".into()))));
        assert!(meta_matches(&meta, &f("year", MetaOp::Gte(2021.into()))));
        assert!(!meta_matches(&meta, &f("year", MetaOp::Gt(2021.into()))));
        assert!(meta_matches(&meta, &f("year", MetaOp::Gt("2020".into()))));
        assert!(meta_matches(
            &meta,
            &f("date", MetaOp::Lt("2025-01-01".into()))
        ));
        assert!(!meta_matches(&meta, &f("team", MetaOp::Lt(5.into()))));
        assert!(meta_matches(
            &meta,
            &f("team", MetaOp::In(vec!["it".into(), "hr".into()]))
        ));
        assert!(!meta_matches(&meta, &f("missing", MetaOp::Eq(1.into()))));
    }
}
