//! Dotted paths (`queue.backend.kind`) in figment dictionaries.

use figment::value::{Dict, Value};

/// The value at `path`.
pub(crate) fn get<'a>(dict: &'a Dict, path: &str) -> Option<&'a Value> {
    match path.split_once('.') {
        None => dict.get(path),
        Some((head, rest)) => get(dict.get(head)?.as_dict()?, rest),
    }
}

/// Puts `value` at `path`, making the dictionaries on the way.
pub(crate) fn insert(dict: &mut Dict, path: &str, value: Value) {
    match path.split_once('.') {
        None => {
            dict.insert(path.to_owned(), value);
        }
        Some((head, rest)) => {
            let child = dict
                .entry(head.to_owned())
                .or_insert_with(|| Value::from(Dict::new()));
            if let Value::Dict(_, child) = child {
                insert(child, rest, value);
            }
        }
    }
}

/// Removes the value at `path`.
pub(crate) fn remove(dict: &mut Dict, path: &str) {
    match path.split_once('.') {
        None => {
            dict.remove(path);
        }
        Some((head, rest)) => {
            if let Some(Value::Dict(_, child)) = dict.get_mut(head) {
                remove(child, rest);
            }
        }
    }
}
