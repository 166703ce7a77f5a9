//! File names and content types: what a client says is never trusted. The
//! type is sniffed from the first bytes; the name is reduced to a safe
//! basename (no path, no control or reserved characters, bounded length)
//! that is only ever used for `Content-Disposition` and the URL's last
//! segment, never as a storage path.

/// Bytes to look at before deciding the type.
pub const SNIFF_BYTES: usize = 8192;

/// The content type of `head` (the first bytes), or
/// `application/octet-stream` when unknown. Text is recognised as
/// `text/plain` only when the bytes are valid UTF-8 without NULs.
pub fn sniff(head: &[u8]) -> &'static str {
    if let Some(kind) = infer::get(head) {
        return kind.mime_type();
    }
    let text = match std::str::from_utf8(head) {
        Ok(s) => Some(s),
        // A multi-byte character cut at the end of the sample.
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&head[..e.valid_up_to()]).ok(),
        Err(_) => None,
    };
    match text {
        Some(s) if !s.is_empty() && !s.contains('\0') => "text/plain",
        _ => "application/octet-stream",
    }
}

/// A safe basename for `raw`: the part after the last `/` or `\`, without
/// control characters, quotes or reserved characters, no leading dots,
/// at most 120 bytes (on a character boundary), `file` when nothing is left.
pub fn sanitize(raw: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let mut out: String = base
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| match c {
            '<' | '>' | ':' | '"' | '|' | '?' | '*' | ';' | '%' | '#' => '_',
            c if c.is_whitespace() => ' ',
            c => c,
        })
        .collect();
    out = out.trim().trim_start_matches('.').trim().to_string();
    while out.len() > 120 {
        out.pop();
    }
    if out.is_empty() { "file".into() } else { out }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_paths_and_reserved_characters() {
        assert_eq!(sanitize("../../etc/passwd"), "passwd");
        assert_eq!(sanitize("..\\..\\boot.ini"), "boot.ini");
        assert_eq!(sanitize("a\r\nb\0c.txt"), "abc.txt");
        assert_eq!(sanitize("..."), "file");
        assert_eq!(sanitize(""), "file");
        assert_eq!(sanitize("rep\"ort;.pdf"), "rep_ort_.pdf");
        assert_eq!(sanitize("ảnh đẹp.jpg"), "ảnh đẹp.jpg");
        let long = "é".repeat(100);
        assert!(sanitize(&long).len() <= 120);
    }

    #[test]
    fn types_come_from_the_bytes() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), "image/png");
        assert_eq!(sniff(b"\xff\xd8\xff\xe0\0\x10JFIF\0"), "image/jpeg");
        assert_eq!(sniff(b"%PDF-1.7\n"), "application/pdf");
        assert_eq!(sniff("xin chào".as_bytes()), "text/plain");
        assert_eq!(sniff(b"\0\x01\x02\x03"), "application/octet-stream");
    }
}
