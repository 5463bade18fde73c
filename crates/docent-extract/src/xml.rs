//! A small streaming layer over quick-xml for the XML inside office containers: local names
//! (prefixes dropped), attributes as strings, entity and character references resolved, and
//! a nesting-depth limit. Never builds a tree, never recurses.

use std::borrow::Cow;

use quick_xml::events::Event;

use crate::ExtractError;

/// An element start (or an empty element, which is followed by its [`Ev::End`]).
pub(crate) struct Tag {
    /// Local name, without prefix.
    pub name: String,
    /// Attributes, values unescaped: each under its qualified name (`r:id`) and its local
    /// name (`id`).
    pub attrs: Vec<(String, String)>,
}

impl Tag {
    pub(crate) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// An XML event.
pub(crate) enum Ev<'a> {
    Start(&'a Tag),
    End(&'a str),
    Text(&'a str),
}

/// Decodes XML bytes (UTF-8, or UTF-16 with a BOM) to a string.
pub(crate) fn decode(bytes: &[u8]) -> Cow<'_, str> {
    match encoding_rs::Encoding::for_bom(bytes) {
        Some((enc, _)) => {
            let (s, _, _) = enc.decode(bytes);
            Cow::Owned(s.trim_start_matches('\u{feff}').to_owned())
        }
        None => String::from_utf8_lossy(bytes),
    }
}

/// Streams the events of `xml` to `f`, failing on malformed XML or nesting deeper than
/// `max_depth`, and stopping when `cancel` trips. `f` may stop the walk early by returning
/// `Ok(false)`.
pub(crate) fn walk(
    xml: &str,
    max_depth: usize,
    cancel: &crate::Cancel,
    mut f: impl FnMut(Ev<'_>) -> Result<bool, ExtractError>,
) -> Result<(), ExtractError> {
    let mut reader = quick_xml::Reader::from_str(xml);
    {
        let cfg = reader.config_mut();
        cfg.expand_empty_elements = true;
        cfg.check_end_names = false;
    }
    let mut depth = 0usize;
    let mut tag = Tag {
        name: String::new(),
        attrs: Vec::new(),
    };
    let mut text = String::new();
    let mut events = 0u32;
    loop {
        events = events.wrapping_add(1);
        if events.is_multiple_of(1024) {
            cancel.check()?;
        }
        let event = reader
            .read_event()
            .map_err(|e| ExtractError::failed("malformed XML", e))?;
        match event {
            Event::Start(e) => {
                depth += 1;
                if depth > max_depth {
                    return Err(ExtractError::TooLarge(format!(
                        "XML nesting deeper than {max_depth} levels"
                    )));
                }
                tag.name.clear();
                tag.name.push_str(e.local_name().as_ref());
                tag.attrs.clear();
                for a in e.attributes().with_checks(false).flatten() {
                    let qname: &str = a.key.as_ref();
                    let local = a.key.local_name().as_ref().to_owned();
                    let value = a
                        .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .map(Cow::into_owned)
                        .unwrap_or_else(|_| a.value.to_string());
                    if qname != local {
                        tag.attrs.push((qname.to_owned(), value.clone()));
                    }
                    tag.attrs.push((local, value));
                }
                if !f(Ev::Start(&tag))? {
                    return Ok(());
                }
            }
            Event::End(e) => {
                depth = depth.saturating_sub(1);
                let name = e.local_name().as_ref().to_owned();
                if !f(Ev::End(&name))? {
                    return Ok(());
                }
            }
            Event::Text(e) => {
                text.clear();
                text.push_str(&e.xml10_content());
                if !f(Ev::Text(&text))? {
                    return Ok(());
                }
            }
            Event::CData(e) => {
                text.clear();
                text.push_str(&e.into_inner());
                if !f(Ev::Text(&text))? {
                    return Ok(());
                }
            }
            Event::GeneralRef(e) => {
                text.clear();
                match e.resolve_char_ref() {
                    Ok(Some(c)) => text.push(c),
                    _ => match e.as_ref() {
                        "amp" => text.push('&'),
                        "lt" => text.push('<'),
                        "gt" => text.push('>'),
                        "quot" => text.push('"'),
                        "apos" => text.push('\''),
                        "nbsp" => text.push('\u{a0}'),
                        _ => {}
                    },
                }
                if !text.is_empty() && !f(Ev::Text(&text))? {
                    return Ok(());
                }
            }
            Event::Eof => return Ok(()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_and_depth() {
        let mut out = String::new();
        walk(
            "<a x=\"1 &amp; 2\"><b>x &amp; y &#65;</b><c/></a>",
            10,
            &crate::Cancel::default(),
            |e| {
                match e {
                    Ev::Start(t) => {
                        out.push_str(&format!("<{}{}>", t.name, t.attr("x").unwrap_or("")))
                    }
                    Ev::End(n) => out.push_str(&format!("</{n}>")),
                    Ev::Text(t) => out.push_str(t),
                }
                Ok(true)
            },
        )
        .unwrap();
        assert_eq!(out, "<a1 & 2><b>x & y A</b><c></c></a>");
        let deep = "<a>".repeat(100_000);
        let err = walk(&deep, 64, &crate::Cancel::default(), |_| Ok(true)).unwrap_err();
        assert!(matches!(err, ExtractError::TooLarge(_)));
    }
}
