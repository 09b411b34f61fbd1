//! A message on its way into the store: its bytes, the content hash that keys them, and, once
//! [`NewMessage::compress`] ran, the compressed form the SQLite store keeps.
//!
//! Why a type of its own: hashing and compressing are the costly part of storing a message, and
//! all commits run one at a time on one thread. The pipeline's preparer ([`crate::pipeline`])
//! seals each message on a thread of its own, so the committing thread only writes. The hash is
//! computed here from the bytes and nothing can change either afterwards, so the store can
//! trust the pairing without hashing again.

use std::cell::RefCell;

use flate2::{Compress, Compression, FlushCompress};

use super::chain;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    content_hash: String,
    raw: Vec<u8>,
    compressed: Option<Vec<u8>>,
}

impl NewMessage {
    /// The message with these bytes; hashes them.
    pub fn new(raw: Vec<u8>) -> NewMessage {
        NewMessage {
            content_hash: chain::content_hash(&raw),
            raw,
            compressed: None,
        }
    }

    /// Lowercase hex SHA-256 of the bytes.
    pub fn content_hash(&self) -> &str {
        &self.content_hash
    }

    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    pub fn into_raw(self) -> Vec<u8> {
        self.raw
    }

    /// Compress now, on this thread, for a store that keeps messages compressed.
    pub fn compress(&mut self) {
        if self.compressed.is_none() {
            self.compressed = Some(compress(&self.raw));
        }
    }

    /// Whether [`NewMessage::compress`] ran.
    pub fn is_compressed(&self) -> bool {
        self.compressed.is_some()
    }

    /// The compressed bytes: made earlier by [`NewMessage::compress`], or now.
    pub(crate) fn compressed(&self) -> std::borrow::Cow<'_, [u8]> {
        match &self.compressed {
            Some(c) => std::borrow::Cow::Borrowed(c),
            None => std::borrow::Cow::Owned(compress(&self.raw)),
        }
    }
}

thread_local! {
    /// One compressor per thread, reset between messages: setting one up costs more than
    /// compressing a typical report (it allocates and clears its tables).
    static COMPRESSOR: RefCell<Compress> = RefCell::new(Compress::new(Compression::fast(), true));
}

/// zlib at the fast level: messages are small and mostly text; throughput matters more than
/// ratio.
pub(crate) fn compress(raw: &[u8]) -> Vec<u8> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        c.reset();
        // zlib's own bound for the worst case (incompressible input) plus its header.
        let mut out = Vec::with_capacity(raw.len() + raw.len() / 1000 + 64);
        loop {
            let consumed = usize::try_from(c.total_in()).unwrap_or(usize::MAX);
            let status = c.compress_vec(
                &raw[consumed.min(raw.len())..],
                &mut out,
                FlushCompress::Finish,
            );
            match status {
                Ok(flate2::Status::StreamEnd) => return out,
                // Out of room: grow and go on.
                Ok(_) => out.reserve(out.capacity().max(64)),
                // In-memory deflate of a byte slice does not fail; fall back to a fresh encoder
                // rather than lose the message if it ever did.
                Err(_) => return compress_fresh(raw),
            }
        }
    })
}

fn compress_fresh(raw: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), Compression::fast());
    let _ = enc.write_all(raw);
    enc.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn inflate(z: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::ZlibDecoder::new(z)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn compressing_round_trips_whatever_came_before() {
        // The compressor is reused: each message must come out whole, large or small, text or
        // noise, whatever the previous one was.
        let mut noise = Vec::new();
        let mut x: u32 = 7;
        for _ in 0..300_000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            noise.push((x >> 16) as u8);
        }
        let text = b"Subject: key compromise\r\n\r\nhttps://crt.sh/?id=1\r\n".repeat(2000);
        for raw in [&b""[..], &noise, &text, b"x", &noise[..1000], &text] {
            let z = compress(raw);
            assert_eq!(inflate(&z), raw);
        }
    }

    #[test]
    fn the_hash_is_of_the_bytes() {
        let mut m = NewMessage::new(b"hello".to_vec());
        assert_eq!(m.content_hash(), chain::content_hash(b"hello"));
        m.compress();
        assert_eq!(inflate(&m.compressed()), b"hello");
    }
}
