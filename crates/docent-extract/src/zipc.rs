//! Zip containers under a budget. Before anything is inflated the central directory is
//! checked: number of entries, the declared total uncompressed size, and the compression
//! ratio of each large entry and of the whole archive (zip bombs). Declared sizes can lie, so
//! every read also counts the bytes actually inflated against the same budget and against the
//! entry's declared size.

use std::io::{Cursor, Read};

use crate::{ExtractError, Limits};

/// Entries smaller than this are not ratio-checked on their own (small XML parts compress
/// very well and are harmless).
const RATIO_MIN_ENTRY: u64 = 1024 * 1024;

pub(crate) struct Container<'a> {
    archive: zip::ZipArchive<Cursor<&'a [u8]>>,
    /// Uncompressed bytes still allowed.
    budget: u64,
    limit: u64,
    /// Entries already inflated in full and counted (by index).
    counted: Vec<bool>,
}

impl<'a> Container<'a> {
    pub(crate) fn open(bytes: &'a [u8], limits: &Limits) -> Result<Self, ExtractError> {
        let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
            .map_err(|e| ExtractError::failed("corrupt or truncated zip container", e))?;
        if archive.len() > limits.max_zip_entries {
            return Err(ExtractError::TooLarge(format!(
                "the archive has {} entries, more than the limit of {}",
                archive.len(),
                limits.max_zip_entries
            )));
        }
        let mut total: u64 = 0;
        for i in 0..archive.len() {
            let entry = archive
                .by_index_raw(i)
                .map_err(|e| ExtractError::failed("corrupt zip entry", e))?;
            let size = entry.size();
            let packed = entry.compressed_size().max(1);
            total = total.saturating_add(size);
            if total > limits.max_uncompressed_bytes {
                return Err(ExtractError::TooLarge(format!(
                    "the archive declares more than {} uncompressed bytes",
                    limits.max_uncompressed_bytes
                )));
            }
            if size > RATIO_MIN_ENTRY && size / packed > limits.max_compression_ratio {
                return Err(ExtractError::TooLarge(format!(
                    "entry {:?} has a compression ratio of {}:1, above the limit of {}:1",
                    entry.name().map(|n| n.into_owned()).unwrap_or_default(),
                    size / packed,
                    limits.max_compression_ratio
                )));
            }
        }
        if total > 16 * RATIO_MIN_ENTRY
            && total / (bytes.len() as u64).max(1) > limits.max_compression_ratio
        {
            return Err(ExtractError::TooLarge(format!(
                "the archive has a compression ratio of {}:1, above the limit of {}:1",
                total / (bytes.len() as u64).max(1),
                limits.max_compression_ratio
            )));
        }
        let counted = vec![false; archive.len()];
        Ok(Self {
            archive,
            counted,
            budget: limits.max_uncompressed_bytes,
            limit: limits.max_uncompressed_bytes,
        })
    }

    pub(crate) fn names(&self) -> Vec<String> {
        self.archive
            .file_names()
            .filter_map(|n| n.ok())
            .map(|n| n.into_owned())
            .collect()
    }

    /// Whether an entry of that name exists.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.archive.index_for_name(name).is_some()
    }

    /// Reads one entry, counting inflated bytes. `Ok(None)` when there is no such entry.
    pub(crate) fn read(&mut self, name: &str) -> Result<Option<Vec<u8>>, ExtractError> {
        let Some(index) = self.archive.index_for_name(name) else {
            return Ok(None);
        };
        self.read_index(index).map(Some)
    }

    fn read_index(&mut self, index: usize) -> Result<Vec<u8>, ExtractError> {
        let entry = match self.archive.by_index(index) {
            Ok(e) => e,
            Err(zip::result::ZipError::UnsupportedArchive(m))
                if m.contains("ncrypt") || m.contains("assword") =>
            {
                return Err(ExtractError::Encrypted);
            }
            Err(e) => return Err(ExtractError::failed("corrupt zip entry", e)),
        };
        if entry.encrypted() {
            return Err(ExtractError::Encrypted);
        }
        let declared = entry.size();
        let cap = declared.min(self.budget);
        let mut out = Vec::with_capacity(cap.min(64 * 1024 * 1024) as usize);
        // One byte past the cap tells a lying or over-budget entry from an exact one.
        let n = entry
            .take(cap + 1)
            .read_to_end(&mut out)
            .map_err(|e| ExtractError::failed("corrupt zip entry", e))? as u64;
        if n > cap {
            return Err(if n > self.budget {
                ExtractError::TooLarge(format!(
                    "the archive inflates to more than {} bytes",
                    self.limit
                ))
            } else {
                ExtractError::Failed("a zip entry inflates to more than its declared size".into())
            });
        }
        self.budget -= n;
        self.counted[index] = true;
        Ok(out)
    }

    /// Reads one entry as text (UTF-8 or a BOM-marked UTF-16).
    pub(crate) fn read_text(&mut self, name: &str) -> Result<Option<String>, ExtractError> {
        Ok(self
            .read(name)?
            .map(|b| crate::xml::decode(&b).into_owned()))
    }

    /// Inflates every entry not read yet into nothing, so that a parser that reads the archive
    /// by itself (calamine) only ever sees sizes that were really counted.
    pub(crate) fn verify_all(&mut self) -> Result<(), ExtractError> {
        for i in 0..self.archive.len() {
            if self.counted[i] {
                continue;
            }
            let is_dir = self
                .archive
                .by_index_raw(i)
                .map(|e| e.is_dir())
                .unwrap_or(false);
            if !is_dir {
                self.read_index(i)?;
            }
        }
        Ok(())
    }
}

/// Resolves a relationship target against the directory of the part that refers to it.
pub(crate) fn resolve(base_part: &str, target: &str) -> String {
    if let Some(abs) = target.strip_prefix('/') {
        return abs.to_owned();
    }
    let mut parts: Vec<&str> = base_part.split('/').collect();
    parts.pop();
    for seg in target.split('/') {
        match seg {
            ".." => {
                parts.pop();
            }
            "." | "" => {}
            s => parts.push(s),
        }
    }
    parts.join("/")
}

/// The relationships of an OOXML part: id → (type, resolved target).
pub(crate) fn relationships(
    zip: &mut Container<'_>,
    part: &str,
    max_depth: usize,
) -> Result<Vec<(String, String, String)>, ExtractError> {
    let (dir, file) = part.rsplit_once('/').unwrap_or(("", part));
    let rels_name = if dir.is_empty() {
        format!("_rels/{file}.rels")
    } else {
        format!("{dir}/_rels/{file}.rels")
    };
    let Some(xml) = zip.read_text(&rels_name)? else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    crate::xml::walk(&xml, max_depth, &crate::Cancel::default(), |e| {
        if let crate::xml::Ev::Start(t) = e
            && t.name == "Relationship"
            && t.attr("TargetMode") != Some("External")
        {
            let id = t.attr("Id").unwrap_or("").to_owned();
            let ty = t.attr("Type").unwrap_or("").to_owned();
            let target = resolve(part, t.attr("Target").unwrap_or(""));
            out.push((id, ty, target));
        }
        Ok(true)
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_resolve_against_the_part() {
        assert_eq!(
            resolve("word/document.xml", "footnotes.xml"),
            "word/footnotes.xml"
        );
        assert_eq!(
            resolve("ppt/slides/slide1.xml", "../notesSlides/n1.xml"),
            "ppt/notesSlides/n1.xml"
        );
        assert_eq!(
            resolve("ppt/presentation.xml", "/ppt/slides/s.xml"),
            "ppt/slides/s.xml"
        );
    }
}
