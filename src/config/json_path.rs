//! Where a parse error is, as a JSON path (`applications[0].grant_types[1]`, `.` for the top).
//!
//! serde_json reports only a line and column. Rather than track the path while deserializing
//! (serde_path_to_error's wrapper instantiated every config type's deserializer a second time:
//! 38 KB of the optimised module), this scans the text up to the error's position once, after
//! the parse failed.
//! serde_json places an error just after the value it concerns (a missing field: after the
//! object's `}`), so the path is that of the last value begun there. Never panics, whatever
//! the input: a truncated or malformed text gives the path of what was read of it.

use std::fmt::Write;

/// An open object or array, and where in it the scan is.
enum Frame {
    /// `key`: the member's key once read; `expecting_key`: after `{` or `,`.
    Object { key: Option<String>, expecting_key: bool },
    /// `index`: the element begun last, none before the first.
    Array { index: Option<usize> },
}

/// The byte offset of serde_json's position: `line` counts from 1, `column` is the bytes
/// before the position on its line.
pub(super) fn offset_of(text: &[u8], line: usize, column: usize) -> usize {
    let line_start = match line.checked_sub(2) {
        None => 0,
        Some(newlines_before) => (text.iter().enumerate().filter(|(_, byte)| **byte == b'\n'))
            .nth(newlines_before)
            .map_or(text.len(), |(at, _)| at.saturating_add(1)),
    };
    line_start.saturating_add(column).min(text.len())
}

/// The path of the value the first `offset` bytes of `text` end in, in the syntax
/// serde_path_to_error used: keys joined by `.`, indices in brackets, `.` for the top level.
pub(super) fn path_at(text: &[u8], offset: usize) -> String {
    let (mut rest, after) = text.split_at_checked(offset).unwrap_or((text, &[]));
    let mut frames = Vec::new();
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        match byte {
            b'"' => {
                let (string, closed, tail) = split_string(rest);
                rest = tail;
                string_read(&mut frames, string, closed);
            }
            b'{' => {
                value_begins(&mut frames);
                frames.push(Frame::Object { key: None, expecting_key: true });
            }
            b'[' => {
                value_begins(&mut frames);
                frames.push(Frame::Array { index: None });
            }
            b'}' | b']' => {
                frames.pop();
            }
            b',' => next_member(&mut frames),
            b':' | b' ' | b'\t' | b'\n' | b'\r' => {}
            _ => value_begins(&mut frames),
        }
    }
    // serde_json reads a scalar before it refuses it, but refuses an array or object (where a
    // string belongs, say) on its first byte, placing the error just before it: the value
    // about to begin is the one meant.
    if matches!(after.first(), Some(b'[' | b'{')) {
        value_begins(&mut frames);
    }
    display(&frames)
}

/// A string's raw contents, whether its closing quote was found, and the text after it.
fn split_string(text: &[u8]) -> (&[u8], bool, &[u8]) {
    let mut escaped = false;
    for (at, &byte) in text.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if byte == b'\\' {
            escaped = true;
        } else if byte == b'"' {
            let after = text.get(at.saturating_add(1)..).unwrap_or_default();
            return (text.get(..at).unwrap_or_default(), true, after);
        }
    }
    (text, false, &[])
}

/// A string in a key's place names the member (once it is whole); anywhere else it is a value.
fn string_read(frames: &mut [Frame], string: &[u8], closed: bool) {
    match frames.last_mut() {
        Some(Frame::Object { key, expecting_key }) if *expecting_key => {
            if closed {
                *key = Some(unescaped(string));
                *expecting_key = false;
            }
        }
        _ => value_begins(frames),
    }
}

fn value_begins(frames: &mut [Frame]) {
    if let Some(Frame::Array { index: index @ None }) = frames.last_mut() {
        *index = Some(0);
    }
}

fn next_member(frames: &mut [Frame]) {
    match frames.last_mut() {
        Some(Frame::Object { key, expecting_key }) => {
            *key = None;
            *expecting_key = true;
        }
        Some(Frame::Array { index }) => *index = Some(index.map_or(0, |i| i.saturating_add(1))),
        None => {}
    }
}

fn display(frames: &[Frame]) -> String {
    let mut path = String::new();
    for frame in frames {
        match frame {
            Frame::Object { key: Some(key), .. } => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
            }
            Frame::Array { index: Some(index) } => {
                let _ = write!(path, "[{index}]");
            }
            _ => {}
        }
    }
    if path.is_empty() {
        path.push('.');
    }
    path
}

/// A key's text with JSON's escapes decoded (`\u` pairs too); what cannot be decoded
/// becomes U+FFFD.
fn unescaped(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some((&byte, tail)) = rest.split_first() {
        rest = tail;
        if byte != b'\\' {
            out.push(byte);
            continue;
        }
        let Some((&escape, tail)) = rest.split_first() else { break };
        rest = tail;
        let decoded = match escape {
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let (decoded, tail) = unicode_escape(rest);
                rest = tail;
                decoded
            }
            other => char::from(other),
        };
        out.extend_from_slice(decoded.encode_utf8(&mut [0; 4]).as_bytes());
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The character of a `\u` escape (`text` follows the `u`), joining a surrogate pair.
fn unicode_escape(text: &[u8]) -> (char, &[u8]) {
    let Some(first) = hex4(text) else { return (char::REPLACEMENT_CHARACTER, text) };
    let rest = text.get(4..).unwrap_or_default();
    if !(0xD800..0xDC00).contains(&first) {
        return (char::from_u32(first).unwrap_or(char::REPLACEMENT_CHARACTER), rest);
    }
    let low = rest.strip_prefix(b"\\u").and_then(hex4).filter(|low| (0xDC00..0xE000).contains(low));
    match low {
        Some(low) => {
            let code = 0x10000 + ((first - 0xD800) << 10) + (low - 0xDC00);
            (char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER), rest.get(6..).unwrap_or_default())
        }
        None => (char::REPLACEMENT_CHARACTER, rest),
    }
}

fn hex4(text: &[u8]) -> Option<u32> {
    let digits = std::str::from_utf8(text.get(..4)?).ok()?;
    u32::from_str_radix(digits, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path_before(text: &str, marker: &str) -> String {
        let offset = text.find(marker).unwrap();
        path_at(text.as_bytes(), offset)
    }

    #[test]
    fn offsets_count_lines_and_bytes() {
        let text = b"{\n  \"a\": 1,\n  \"b\": x\n}";
        assert_eq!(offset_of(text, 1, 0), 0);
        assert_eq!(offset_of(text, 1, 1), 1);
        assert_eq!(offset_of(text, 2, 0), 2);
        assert_eq!(offset_of(text, 3, 7), 19);
        assert_eq!(text.get(19), Some(&b'x'));
        assert_eq!(offset_of(text, 9, 3), text.len(), "past the end: clamped");
        assert_eq!(offset_of(text, 1, 999), text.len());
        assert_eq!(offset_of(b"", 0, 0), 0);
        assert_eq!(offset_of(text, usize::MAX, usize::MAX), text.len());
    }

    #[test]
    fn paths_name_keys_and_indices() {
        struct Case {
            name: &'static str,
            text: &'static str,
            before: &'static str,
            path: &'static str,
        }
        let table = [
            Case { name: "top level", text: r#"  {"a": 1}"#, before: "{", path: "." },
            Case { name: "after a key", text: r#"{"a": 1}"#, before: ":", path: "a" },
            Case { name: "after a value", text: r#"{"a": 1, "b": 2}"#, before: ",", path: "a" },
            Case { name: "between members", text: r#"{"a": 1, "b": 2}"#, before: " \"b", path: "." },
            Case {
                name: "nested",
                text: r#"{"a": {"b": [1, 2, {"c": true}]}}"#,
                before: "true",
                path: "a.b[2].c",
            },
            Case { name: "first element", text: r#"{"a": ["x", "y"]}"#, before: ", \"y", path: "a[0]" },
            Case { name: "second element", text: r#"{"a": ["x", "y"]}"#, before: "]", path: "a[1]" },
            Case { name: "an empty array", text: r#"{"a": []}"#, before: "]", path: "a" },
            Case {
                name: "after a closed object",
                text: r#"{"a": [{"b": 1}, 2]}"#,
                before: ", 2",
                path: "a[0]",
            },
            Case { name: "after the whole text", text: r#"{"a": 1} x"#, before: "x", path: "." },
            Case { name: "a top-level array", text: "[1, [2, 3]]", before: "3", path: "[1][1]" },
            Case { name: "brackets in strings", text: r#"{"a": "]}[{,\"", "b": 0}"#, before: "0", path: "b" },
            Case {
                name: "escaped key",
                text: r#"{"a\"b\\c\u00e9\ud83d\ude00": 0}"#,
                before: ": 0",
                path: "a\"b\\cé😀",
            },
            Case { name: "a lone surrogate", text: r#"{"\ud800x": 0}"#, before: ": 0", path: "\u{fffd}x" },
            Case { name: "a bad escape", text: r#"{"\uzz": 0}"#, before: "0", path: "\u{fffd}zz" },
        ];
        for Case { name, text, before, path } in table {
            assert_eq!(path_before(text, before), path, "{name}");
        }
    }

    #[test]
    fn truncated_and_garbage_text_gives_a_path_without_panicking() {
        let text = r#"{"apps": [{"key": "a\"b", "grants": ["x", "y\u00"], "n": -1.5e3}], "z": {"q": null}}"#;
        for offset in 0..=text.len() + 2 {
            let path = path_at(text.as_bytes(), offset);
            assert!(!path.is_empty(), "{offset}");
        }
        assert_eq!(path_at(text.as_bytes(), 1000), ".", "offset past the end: the whole text");
        assert_eq!(path_at(text.as_bytes(), text.find("null").unwrap()), "z.q");
        assert_eq!(path_before(r#"{"unterminated"#, "unterminated"), ".");
        assert_eq!(path_at(br#"{"unterminated"#, 14), ".", "a key is named once whole");
        assert_eq!(path_at(br#"{"a": "open"#, 11), "a");
        assert_eq!(path_at(br#"{"a\"#, 4), ".");
        assert_eq!(path_at(br#"{"\u12"#, 6), ".");
        for garbage in
            ["}}]]", ",,,", "[,", "{{{", ":::", "\"\\", "\\u", "{\"\\ud83d\\u\": 1}", "\u{0}\u{ff}"]
        {
            for offset in 0..=garbage.len() {
                let _ = path_at(garbage.as_bytes(), offset);
            }
        }
        let bytes: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
        for offset in (0..bytes.len()).step_by(7) {
            let _ = path_at(&bytes, offset);
            let _ = offset_of(&bytes, offset, offset);
        }
    }
}
