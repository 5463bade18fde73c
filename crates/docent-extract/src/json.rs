//! JSON and JSON Lines with serde_json. Each object (the top-level object, each element of a
//! top-level array, each line) becomes one [`BlockKind::Record`] whose fields are its string
//! values under dotted paths (`author.name`, `tags.0`), or exactly the fields named in
//! [`Limits::json_text_fields`] (any scalar type) when that is set. Nesting deeper than
//! `max_depth` is refused before parsing. A `.json` file that is not valid JSON is kept as
//! plain text.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A JSON value that keeps object keys in document order (serde_json's own `Value` sorts
/// them unless a workspace-wide feature is switched on).
enum Value {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Value>),
    Object(Vec<(String, Value)>),
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.to_string()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Number(v.to_string()))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            out.push((k, v));
        }
        Ok(Value::Object(out))
    }
}

use crate::{BlockKind, Builder, ExtractError, Extracted, Limits};

pub(crate) fn extract(text: &str, lines: bool, limits: &Limits) -> Result<Extracted, ExtractError> {
    let depth = max_depth(text);
    if depth > limits.max_depth {
        return Err(ExtractError::TooLarge(format!(
            "JSON nesting deeper than {} levels",
            limits.max_depth
        )));
    }
    let mut b = Builder::new(limits);
    if lines {
        let mut ok = 0usize;
        let mut bad = 0usize;
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            match parse(line) {
                Ok(v) => {
                    ok += 1;
                    record(&mut b, &v, limits);
                }
                Err(_) => bad += 1,
            }
            if b.full() {
                break;
            }
        }
        if ok == 0 && bad > 0 {
            return crate::plain(text, limits);
        }
        return b.finish("application/x-ndjson");
    }
    let value = match parse(text) {
        Ok(v) => v,
        Err(e) if e.contains("recursion limit") => {
            return Err(ExtractError::TooLarge(format!(
                "JSON nesting too deep: {e}"
            )));
        }
        Err(_) => return crate::plain(text, limits),
    };
    match &value {
        Value::Array(items) => {
            for item in items {
                record(&mut b, item, limits);
                if b.full() {
                    break;
                }
            }
        }
        other => record(&mut b, other, limits),
    }
    b.finish("application/json")
}

fn parse(s: &str) -> Result<Value, String> {
    serde_json::from_str(s).map_err(|e| e.to_string())
}

fn record(b: &mut Builder, v: &Value, limits: &Limits) {
    let mut fields = Vec::new();
    flatten(v, &mut String::new(), &mut fields, limits);
    if fields.len() > limits.max_record_fields {
        // flatten stopped one past the limit: the count is at least this.
        b.record_too_wide(fields.len());
        return;
    }
    if fields.is_empty() {
        return;
    }
    if limits.json_text_fields.is_empty() && matches!(v, Value::String(_)) {
        b.push(BlockKind::Paragraph, None, &fields[0].1);
        return;
    }
    b.push_record(None, fields);
}

fn flatten(v: &Value, path: &mut String, out: &mut Vec<(String, String)>, limits: &Limits) {
    let wanted = |p: &str| {
        limits.json_text_fields.is_empty() || limits.json_text_fields.iter().any(|f| f == p)
    };
    let scalar = |v: &Value| -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) if !limits.json_text_fields.is_empty() => Some(n.clone()),
            Value::Bool(x) if !limits.json_text_fields.is_empty() => Some(x.to_string()),
            Value::Null
            | Value::Number(_)
            | Value::Bool(_)
            | Value::Array(_)
            | Value::Object(_) => None,
        }
    };
    // One past the limit is enough to refuse the record.
    if out.len() > limits.max_record_fields {
        return;
    }
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k);
                flatten(child, path, out, limits);
                path.truncate(len);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&i.to_string());
                flatten(child, path, out, limits);
                path.truncate(len);
            }
        }
        other => {
            let name = if path.is_empty() {
                "value"
            } else {
                path.as_str()
            };
            if wanted(name)
                && let Some(s) = scalar(other)
                && !s.trim().is_empty()
            {
                out.push((name.to_owned(), s));
            }
        }
    }
}

/// Deepest `[`/`{` nesting outside strings.
fn max_depth(text: &str) -> usize {
    let (mut depth, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    for &c in text.as_bytes() {
        if in_str {
            match c {
                _ if esc => esc = false,
                b'\\' => esc = true,
                b'"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            b'"' => in_str = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use crate::{BlockKind, Limits, extract};

    #[test]
    fn jsonl_lines_become_records_of_string_fields() {
        let src = b"{\"title\":\"A\",\"n\":1,\"author\":{\"name\":\"Ann\"}}\n{\"title\":\"B\",\"tags\":[\"x\",\"y\"]}\n";
        let out = extract(src, "a.jsonl", "", Limits::default()).unwrap();
        assert_eq!(out.detected_type, "application/x-ndjson");
        assert_eq!(
            out.blocks[0].kind,
            BlockKind::Record {
                fields: vec![
                    ("title".into(), "A".into()),
                    ("author.name".into(), "Ann".into())
                ]
            }
        );
        assert_eq!(
            out.block_text(&out.blocks[1]),
            "title: B\ntags.0: x\ntags.1: y"
        );
        let limits = Limits {
            json_text_fields: vec!["n".into()],
            ..Limits::default()
        };
        let out = extract(src, "a.jsonl", "", limits).unwrap();
        assert_eq!(out.blocks.len(), 1);
        assert_eq!(out.block_text(&out.blocks[0]), "n: 1");
    }

    #[test]
    fn deep_json_is_refused() {
        let src = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let err = extract(src.as_bytes(), "a.json", "", Limits::default()).unwrap_err();
        assert_eq!(err.code(), "payload_too_large");
    }
}
