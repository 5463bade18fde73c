//! PPTX (PresentationML) with zip + quick-xml: slides in presentation order (slide = page),
//! title placeholders as headings, text paragraphs (bulleted ones as list items), table rows,
//! and each slide's speaker notes as a `Notes:` paragraph after the slide's text.

use crate::xml::{Ev, walk};
use crate::zipc::{Container, relationships};
use crate::{BlockKind, Builder, ExtractError, Extracted, Limits};

pub(crate) fn extract(bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
    let mut zip = Container::open(bytes, limits)?;
    let pres = "ppt/presentation.xml";
    let Some(pres_xml) = zip.read_text(pres)? else {
        return Err(ExtractError::Failed(
            "the PPTX has no presentation part".into(),
        ));
    };
    let rels = relationships(&mut zip, pres, limits.max_depth)?;
    let mut order: Vec<String> = Vec::new();
    walk(&pres_xml, limits.max_depth, &limits.cancel, |e| {
        if let Ev::Start(t) = e
            && t.name == "sldId"
            && let Some(id) = t.attr("r:id").or_else(|| {
                t.attrs
                    .iter()
                    .rev()
                    .find(|(k, _)| k.ends_with(":id"))
                    .map(|(_, v)| v.as_str())
            })
            && let Some((_, _, target)) = rels.iter().find(|(rid, _, _)| rid == id)
        {
            order.push(target.clone());
        }
        Ok(true)
    })?;
    if order.is_empty() {
        // No slide list: fall back to the slide parts by number.
        let mut names: Vec<String> = zip
            .names()
            .into_iter()
            .filter(|n| n.starts_with("ppt/slides/slide") && n.ends_with(".xml"))
            .collect();
        names.sort_by_key(|n| {
            n.trim_start_matches("ppt/slides/slide")
                .trim_end_matches(".xml")
                .parse::<u32>()
                .unwrap_or(u32::MAX)
        });
        order = names;
    }
    if order.len() > limits.max_pages as usize {
        return Err(ExtractError::TooLarge(format!(
            "{} slides, more than the limit of {}",
            order.len(),
            limits.max_pages
        )));
    }
    let mut b = Builder::new(limits);
    crate::odf::core_props(&mut zip, &mut b.meta, "docProps/core.xml", limits)?;
    for (i, slide) in order.iter().enumerate() {
        let page = Some(i as u32 + 1);
        let Some(xml) = zip.read_text(slide)? else {
            continue;
        };
        for (kind, text) in shapes(&xml, false, limits)? {
            b.push(kind, page, &text);
        }
        let notes = relationships(&mut zip, slide, limits.max_depth)?
            .into_iter()
            .find(|(_, ty, _)| ty.ends_with("/notesSlide"));
        if let Some((_, _, target)) = notes
            && let Some(xml) = zip.read_text(&target)?
        {
            let text: Vec<String> = shapes(&xml, true, limits)?
                .into_iter()
                .map(|(_, t)| t)
                .collect();
            let text = text.join("\n");
            if !text.trim().is_empty() {
                b.push(
                    BlockKind::Paragraph,
                    page,
                    &format!("Notes: {}", text.trim()),
                );
            }
        }
        if b.full() {
            break;
        }
    }
    b.meta.page_count = Some(order.len() as u32);
    b.finish("application/vnd.openxmlformats-officedocument.presentationml.presentation")
}

/// The text of a slide's shapes in document order. With `notes_only`, only the notes body
/// placeholder counts (not the slide image or the slide number).
fn shapes(
    xml: &str,
    notes_only: bool,
    limits: &Limits,
) -> Result<Vec<(BlockKind, String)>, ExtractError> {
    let mut out = Vec::new();
    let mut ph: Option<String> = None;
    let mut in_sp = 0usize;
    let mut para: Option<(bool, String)> = None;
    let mut in_t = false;
    let mut row: Option<Vec<String>> = None;
    let mut in_cell = false;
    walk(xml, limits.max_depth, &limits.cancel, |e| {
        match e {
            Ev::Start(t) => match t.name.as_str() {
                "sp" => {
                    in_sp += 1;
                    ph = None;
                }
                "ph" if in_sp > 0 => ph = Some(t.attr("type").unwrap_or("body").to_owned()),
                "p" => para = Some((false, String::new())),
                "buChar" | "buAutoNum" => {
                    if let Some(p) = para.as_mut() {
                        p.0 = true;
                    }
                }
                "t" => in_t = true,
                "br" => {
                    if let Some(p) = para.as_mut() {
                        p.1.push('\n');
                    }
                }
                "tr" => row = Some(Vec::new()),
                "tc" => {
                    in_cell = true;
                    if let Some(r) = row.as_mut() {
                        r.push(String::new());
                    }
                }
                _ => {}
            },
            Ev::End(name) => match name {
                "sp" => {
                    in_sp = in_sp.saturating_sub(1);
                    ph = None;
                }
                "t" => in_t = false,
                "p" => {
                    if let Some((bullet, text)) = para.take() {
                        let text = text.trim().to_owned();
                        if text.is_empty() {
                            return Ok(true);
                        }
                        if in_cell {
                            if let Some(cell) = row.as_mut().and_then(|r| r.last_mut()) {
                                if !cell.is_empty() {
                                    cell.push(' ');
                                }
                                cell.push_str(&text);
                            }
                            return Ok(true);
                        }
                        let ph = ph.as_deref();
                        if notes_only && ph != Some("body") {
                            return Ok(true);
                        }
                        if matches!(ph, Some("sldNum" | "dt" | "ftr" | "hdr")) {
                            return Ok(true);
                        }
                        let kind = match ph {
                            Some("title" | "ctrTitle") => BlockKind::Heading { level: 1 },
                            Some("subTitle") => BlockKind::Heading { level: 2 },
                            _ if bullet => BlockKind::ListItem,
                            _ => BlockKind::Paragraph,
                        };
                        out.push((kind, text));
                    }
                }
                "tc" => in_cell = false,
                "tr" => {
                    if let Some(cells) = row.take() {
                        let line = cells.join(" | ");
                        if !line.replace('|', "").trim().is_empty() {
                            out.push((BlockKind::TableRow, line));
                        }
                    }
                }
                _ => {}
            },
            Ev::Text(s) => {
                if in_t && let Some(p) = para.as_mut() {
                    p.1.push_str(s);
                }
            }
        }
        Ok(true)
    })?;
    // Consecutive title paragraphs form one heading.
    let mut merged: Vec<(BlockKind, String)> = Vec::new();
    for (kind, text) in out {
        if let (Some((BlockKind::Heading { level: l1 }, prev)), BlockKind::Heading { level: l2 }) =
            (merged.last_mut(), &kind)
            && *l1 == *l2
        {
            prev.push(' ');
            prev.push_str(&text);
            continue;
        }
        merged.push((kind, text));
    }
    Ok(merged)
}
