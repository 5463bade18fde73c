//! E-mail (RFC 5322 / MIME) with mail-parser: the subject as a heading, the main headers
//! (from, to, cc, date, subject) as one record, then the text body (or the HTML body through
//! the HTML extractor), and the names of attachments.

use mail_parser::{Address, MessageParser, MimeHeaders};

use crate::{BlockKind, Builder, ExtractError, Extracted, Limits};

pub(crate) fn extract(bytes: &[u8], limits: &Limits) -> Result<Extracted, ExtractError> {
    let msg = crate::guard("e-mail", || {
        MessageParser::default()
            .parse(bytes)
            .ok_or_else(|| ExtractError::Failed("cannot parse the e-mail".into()))
    })?;
    let mut b = Builder::new(limits);
    let subject = msg.subject().map(str::to_owned);
    if let Some(s) = &subject {
        b.push(BlockKind::Heading { level: 1 }, None, s);
    }
    let mut fields = Vec::new();
    for (name, addr) in [("From", msg.from()), ("To", msg.to()), ("Cc", msg.cc())] {
        if let Some(a) = addr.map(addresses).filter(|a| !a.is_empty()) {
            fields.push((name.to_owned(), a));
        }
    }
    if let Some(d) = msg.date() {
        fields.push(("Date".to_owned(), d.to_rfc3339()));
    }
    if let Some(s) = &subject {
        fields.push(("Subject".to_owned(), s.clone()));
    }
    b.meta.author = msg.from().map(addresses);
    b.push_record(None, fields);
    if msg.text_body_count() > 0 || msg.body_html(0).is_none() {
        let mut i = 0;
        while let Some(text) = msg.body_text(i) {
            for para in text.split("\n\n").flat_map(|p| p.split("\r\n\r\n")) {
                b.push(BlockKind::Paragraph, None, para);
            }
            i += 1;
        }
    } else if let Some(html) = msg.body_html(0) {
        crate::html::extract_into(&html, None, &mut b, limits)?;
    }
    let names: Vec<String> = msg
        .attachments()
        .filter_map(|a| a.attachment_name().map(str::to_owned))
        .collect();
    if !names.is_empty() {
        b.push(
            BlockKind::Paragraph,
            None,
            &format!("Attachments: {}", names.join(", ")),
        );
    }
    b.meta.title = subject;
    b.finish("message/rfc822")
}

fn addresses(a: &Address<'_>) -> String {
    a.iter()
        .map(|x| match (x.name(), x.address()) {
            (Some(n), Some(e)) => format!("{n} <{e}>"),
            (Some(n), None) => n.to_owned(),
            (None, Some(e)) => e.to_owned(),
            (None, None) => String::new(),
        })
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ")
}
