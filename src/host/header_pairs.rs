//! The header map as proxy-wasm serialises it, read without copying each header.

use std::borrow::Cow;

/// A header map as proxy-wasm serialises it: a little-endian `u32` count, then a (name length,
/// value length) `u32` pair per header, then each name and value followed by a NUL.
///
/// Read in place: a request check looks up three or four of a dozen headers, and copying every
/// header into its own `String` cost more instructions than the rest of the check. Where each
/// header lies is found once, when the map arrives: a Bearer hit then looks names up a dozen
/// times (three reads, then every name it strips) by comparing slices, without decoding the
/// lengths again. A truncated map yields the headers before the damage. Never panics.
pub struct HeaderPairs {
    bytes: Vec<u8>,
    spans: Vec<Span>,
}

/// Where one header's name and value lie in the map's bytes.
struct Span {
    name: (usize, usize),
    value: (usize, usize),
}

impl HeaderPairs {
    pub fn new(bytes: Vec<u8>) -> Self {
        let spans = spans_of(&bytes);
        HeaderPairs { bytes, spans }
    }

    /// Every (name, value) pair, raw, in the host's order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let part = |(start, end): (usize, usize)| self.bytes.get(start..end);
        self.spans.iter().filter_map(move |span| Some((part(span.name)?, part(span.value)?)))
    }

    /// The first value of header `name` (lower case, as Envoy keeps names). Bytes that are not
    /// UTF-8 become U+FFFD, which the gateway's syntax checks then refuse.
    pub fn get(&self, name: &str) -> Option<Cow<'_, str>> {
        let (_, value) = self.iter().find(|(n, _)| *n == name.as_bytes())?;
        // `from_utf8` has an ASCII fast path that the lossy decoder lacks.
        Some(match std::str::from_utf8(value) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(value),
        })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.iter().any(|(n, _)| n == name.as_bytes())
    }
}

/// The spans of every whole header in `bytes`, in order; decoding stops at the first damage.
fn spans_of(bytes: &[u8]) -> Vec<Span> {
    let read_u32 = |at: usize| -> Option<usize> {
        let chunk: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(chunk)).ok()
    };
    let count = read_u32(0).unwrap_or(0);
    // A count the bytes cannot hold is damage too: never reserve more than they could describe.
    let mut spans = Vec::with_capacity(count.min(bytes.len() / 10));
    let mut data = 4usize.saturating_add(count.saturating_mul(8));
    for index in 0..count {
        let sizes = index.saturating_mul(8).saturating_add(4);
        let (Some(name_len), Some(value_len)) = (read_u32(sizes), read_u32(sizes.saturating_add(4))) else {
            break;
        };
        let name_end = data.saturating_add(name_len);
        let value_start = name_end.saturating_add(1);
        let value_end = value_start.saturating_add(value_len);
        if value_end > bytes.len() {
            break;
        }
        spans.push(Span { name: (data, name_end), value: (value_start, value_end) });
        data = value_end.saturating_add(1);
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Serialises like the host does, to feed the decoder.
    fn encode_header_pairs(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (name, value) in pairs {
            out.extend_from_slice(&(name.len() as u32).to_le_bytes());
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
        }
        for (name, value) in pairs {
            out.extend_from_slice(name);
            out.push(0);
            out.extend_from_slice(value);
            out.push(0);
        }
        out
    }

    #[test]
    fn header_pairs_decode_and_survive_bad_bytes() {
        let bytes = encode_header_pairs(&[
            (b":path", b"/api"),
            (b"authorization", b"Bearer \xff\xfe"),
            (b"x", b""),
            (b"x", b"second"),
        ]);
        let headers = HeaderPairs::new(bytes.clone());
        assert_eq!(headers.iter().count(), 4);
        assert_eq!(headers.get(":path").as_deref(), Some("/api"));
        assert_eq!(headers.get("authorization").as_deref(), Some("Bearer \u{fffd}\u{fffd}"));
        assert_eq!(headers.get("x").as_deref(), Some(""), "the first copy wins");
        assert!(headers.contains("x") && !headers.contains("X") && !headers.contains("y"));
        assert_eq!(headers.get("y"), None);
        for cut in 0..bytes.len() {
            let truncated = HeaderPairs::new(bytes[..cut].to_vec());
            // Only the last value's terminating NUL may be missing for all four to survive.
            assert_eq!(truncated.iter().count() == 4, cut == bytes.len() - 1, "cut at {cut}");
            assert_eq!(truncated.get(":path").is_some(), cut >= 4 + 4 * 8 + ":path\0/api".len());
        }
        assert_eq!(HeaderPairs::new(vec![0xff, 0xff, 0xff, 0xff]).iter().count(), 0);
        assert_eq!(HeaderPairs::new(Vec::new()).iter().count(), 0);
    }
}
