//! EPUB with zip + quick-xml + the HTML extractor: the package document named by
//! `META-INF/container.xml` gives title, author, language and the spine; each spine document
//! (XHTML) is one page, in reading order. DRM-encrypted content fails with
//! [`ExtractError::Encrypted`].

use std::collections::HashMap;

use crate::xml::{Ev, walk};
use crate::zipc::{Container, resolve};
use crate::{Builder, ExtractError, Extracted, Limits};

pub(crate) fn extract(bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
    let mut zip = Container::open(bytes, limits)?;
    let container = zip
        .read_text("META-INF/container.xml")?
        .ok_or_else(|| ExtractError::Failed("the EPUB has no META-INF/container.xml".into()))?;
    let mut opf_path = None;
    walk(&container, limits.max_depth, &limits.cancel, |e| {
        if let Ev::Start(t) = e
            && t.name == "rootfile"
            && opf_path.is_none()
        {
            opf_path = t.attr("full-path").map(str::to_owned);
        }
        Ok(true)
    })?;
    let opf_path = opf_path
        .ok_or_else(|| ExtractError::Failed("the EPUB names no package document".into()))?;
    let opf = zip
        .read_text(&opf_path)?
        .ok_or_else(|| ExtractError::Failed("the EPUB package document is missing".into()))?;
    let mut b = Builder::new(limits);
    let mut manifest: HashMap<String, String> = HashMap::new();
    let mut spine: Vec<String> = Vec::new();
    let mut meta_field: Option<String> = None;
    let mut text = String::new();
    walk(&opf, limits.max_depth, &limits.cancel, |e| {
        match e {
            Ev::Start(t) => match t.name.as_str() {
                "item" => {
                    if let (Some(id), Some(href)) = (t.attr("id"), t.attr("href")) {
                        manifest.insert(id.to_owned(), resolve(&opf_path, &percent_decode(href)));
                    }
                }
                "itemref" => {
                    if t.attr("linear") != Some("no")
                        && let Some(id) = t.attr("idref")
                    {
                        spine.push(id.to_owned());
                    }
                }
                "title" | "creator" | "language" => {
                    meta_field = Some(t.name.clone());
                    text.clear();
                }
                _ => {}
            },
            Ev::Text(s) => {
                if meta_field.is_some() {
                    text.push_str(s);
                }
            }
            Ev::End(_) => {
                if let Some(f) = meta_field.take() {
                    let v = text.trim().to_owned();
                    if !v.is_empty() {
                        match f.as_str() {
                            "title" => b.meta.title.get_or_insert(v),
                            "creator" => b.meta.author.get_or_insert(v),
                            _ => b.meta.language.get_or_insert(v),
                        };
                    }
                }
            }
        }
        Ok(true)
    })?;
    if spine.len() > limits.max_pages as usize {
        return Err(ExtractError::TooLarge(format!(
            "{} spine documents, more than the limit of {}",
            spine.len(),
            limits.max_pages
        )));
    }
    let encrypted = zip
        .read_text("META-INF/encryption.xml")?
        .unwrap_or_default();
    for (i, id) in spine.iter().enumerate() {
        let Some(href) = manifest.get(id) else {
            continue;
        };
        let name = href.rsplit('/').next().unwrap_or(href);
        if !encrypted.is_empty() && encrypted.contains(name) {
            return Err(ExtractError::Encrypted);
        }
        let Some(bytes) = zip.read(href)? else {
            continue;
        };
        let Some(html) = crate::text::decode(&bytes, true) else {
            continue;
        };
        crate::html::extract_into(&html, Some(i as u32 + 1), &mut b, limits)?;
        if b.full() {
            break;
        }
    }
    b.meta.page_count = Some(spine.len() as u32);
    b.finish("application/epub+zip")
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(h) = s.get(i + 1..i + 3)
            && let Ok(v) = u8::from_str_radix(h, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
