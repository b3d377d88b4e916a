//! The few bits of S3's XML this adapter reads: the `<Code>` and `<Message>` of
//! an error body and the `<UploadId>` of a new multipart upload. A full XML
//! parser buys nothing here: the elements are flat, unique, and text-only.

/// The text of the first `<tag>…</tag>` in `body`, entities decoded; `None`
/// when absent or malformed (never a panic, whatever the body).
pub(crate) fn element(body: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = body.find(&open)? + open.len();
    let len = body.get(start..)?.find(&close)?;
    Some(unescape(body.get(start..start + len)?))
}

/// The five predefined entities and numeric references; anything else is kept
/// as written.
pub(crate) fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        let Some(end) = rest.find(';') else { break };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `s` with `&`, `<` and `>` escaped, for element text we send.
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_error_bodies() {
        let body = "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code>\
                    <Message>a &lt;b&gt; &amp; &#x41;&#66; &bogus; &</Message></Error>";
        assert_eq!(element(body, "Code").as_deref(), Some("NoSuchKey"));
        assert_eq!(
            element(body, "Message").as_deref(),
            Some("a <b> & AB &bogus; &")
        );
        assert_eq!(element(body, "UploadId"), None);
        assert_eq!(element("<Code>unterminated", "Code"), None);
        assert_eq!(element("", "Code"), None);
    }

    #[test]
    fn escapes() {
        assert_eq!(escape("a&b<c>"), "a&amp;b&lt;c&gt;");
        assert_eq!(unescape(&escape("x&<>y")), "x&<>y");
    }
}
