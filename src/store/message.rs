//! A message on its way into the store: its bytes, the content hash that keys them, and, once
//! [`NewMessage::compress`] ran, the compressed form the SQLite store keeps.
//!
//! Why a type of its own: hashing and compressing are the costly part of storing a message, and
//! all commits run one at a time on one thread. The pipeline's preparer ([`crate::pipeline`])
//! seals each message on a thread of its own, so the committing thread only writes. The hash is
//! computed here from the bytes and nothing can change either afterwards, so the store can
//! trust the pairing without hashing again.

use std::cell::RefCell;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

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

    pub(crate) fn raw(&self) -> &[u8] {
        &self.raw
    }

    pub(crate) fn into_raw(self) -> Vec<u8> {
        self.raw
    }

    /// Compress now, on this thread, for a store that keeps messages compressed.
    pub(crate) fn compress(&mut self) {
        if self.compressed.is_none() {
            self.compressed = Some(compress(&self.raw));
        }
    }

    /// Whether [`NewMessage::compress`] ran.
    #[cfg(test)]
    pub(crate) fn is_compressed(&self) -> bool {
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
    static COMPRESSOR: RefCell<Compress> = RefCell::new(Compress::new(LEVEL, true));
    static DECOMPRESSOR: RefCell<Decompress> = RefCell::new(Decompress::new(true));
}

/// Mail vocabulary (header names, the usual header values, a problem report's words) as a zlib
/// preset dictionary. Without one deflate has only the message itself to refer back to; most of
/// a short message's header is in here, which takes about a tenth off the stored size for
/// almost no time.
///
/// Rows need no marker: a zlib stream made with a dictionary names it in its header (by its
/// Adler-32), so rows written before it, without one, read as before. **Never change it**: rows
/// written with it can only be read with exactly these bytes; a better one would be a second
/// dictionary, chosen by the id the header names.
const DICTIONARY: &[u8] = b"Content-Transfer-Encoding: quoted-printable
Content-Transfer-Encoding: base64
Content-Transfer-Encoding: 7bit
Content-Type: multipart/alternative; boundary=\"
Content-Type: multipart/mixed; boundary=\"
Content-Type: text/html; charset=\"UTF-8\"
Content-Disposition: attachment; filename=\"
X-Mailer: 
User-Agent: Mozilla/5.0
Authentication-Results: mx.; dkim=pass header.d=; spf=pass smtp.mailfrom=; dmarc=pass
DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=; s=; h=From:To:Subject:Date:Message-ID; bh=; b=
ARC-Seal: i=1; a=rsa-sha256; t=; cv=none; d=
Received-SPF: pass (
X-Spam-Status: No, score=
Auto-Submitted: auto-replied
Precedence: bulk
List-Unsubscribe: <mailto:
Reply-To: 
Cc: 
In-Reply-To: <
References: <
Thread-Index: 
Content-Language: en-US
X-Originating-IP: [
-----BEGIN CERTIFICATE-----
-----END CERTIFICATE-----
-----BEGIN PRIVATE KEY-----
https://crt.sh/?id=
https://crt.sh/?sha256=
SHA-256 fingerprint: 
certificate
revoke
revocation
private key
compromised
Please revoke the certificate
Thank you,

Hello,

Return-Path: <
Received: from  (
\tby  (Postfix) with ESMTPS id 
\tfor <
; Mon, 01 Jan 2026 00:00:00 +0000
Received: from  by 
From: 
To: 
Subject: Re: 
Date: Thu, 01 Jan 2026 00:00:00 +0000
Message-ID: <
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

";

/// The deflate level messages are stored at. zlib-rs's level 1 is a "quick" coder with fixed
/// Huffman tables; from level 2 on it builds a message's own tables, which is most of what a
/// higher level gains. Measured on the scale benchmark's 43.8 MB of mail (with [`DICTIONARY`],
/// one core): level 1 0.493 of the mail at 157 MB/s, 2 0.417 at 74, 4 0.411 at 69, 6 0.410 at
/// 65, 9 0.409 at 51. Level 4: nearly all of the gain, at the speed of level 2. The level is
/// not part of the format (any level inflates the same way), so it can change at any time.
const LEVEL: Compression = Compression::new(4);

/// zlib at [`LEVEL`] with [`DICTIONARY`].
pub(crate) fn compress(raw: &[u8]) -> Vec<u8> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        c.reset();
        if c.set_dictionary(DICTIONARY).is_err() {
            return compress_fresh(raw);
        }
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

/// The bytes of a message stored by [`compress`] (with or without the dictionary), at most
/// `size` of them: the stored size bounds the work, so a damaged row cannot make us inflate
/// without limit. Errors say what is wrong; a wrong `size` shows as a length that differs.
pub(crate) fn decompress(compressed: &[u8], size: u64) -> Result<Vec<u8>, String> {
    let limit = usize::try_from(size)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    let (out, status) = inflate(compressed, limit)?;
    if out.len() as u64 != size {
        return Err(format!(
            "decompresses to {}{} bytes, but its size column says {size}",
            out.len(),
            if out.len() as u64 > size { "+" } else { "" }
        ));
    }
    if status != Status::StreamEnd {
        return Err("cannot decompress: the stream is cut short".into());
    }
    Ok(out)
}

/// The first `n` bytes of a message stored by [`compress`] (all of it if it is shorter), without
/// inflating the rest: what an event body deflated against its message needs. Not checked
/// against the content hash: a damaged message gives other bytes, which the event's own chain
/// hash then shows.
pub(crate) fn decompress_prefix(compressed: &[u8], size: u64, n: usize) -> Result<Vec<u8>, String> {
    let want = usize::try_from(size).unwrap_or(usize::MAX).min(n);
    let (mut out, status) = inflate(compressed, want)?;
    if out.len() < want {
        return Err(match status {
            Status::StreamEnd => format!(
                "decompresses to {} bytes, but its size column says {size}",
                out.len()
            ),
            _ => "cannot decompress: the stream is cut short".into(),
        });
    }
    out.truncate(want);
    Ok(out)
}

/// Inflate until the stream ends or at least `limit` bytes came out (a few more may).
fn inflate(compressed: &[u8], limit: usize) -> Result<(Vec<u8>, Status), String> {
    DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        d.reset(true);
        let mut out = Vec::with_capacity(limit.min(1 << 20));
        let mut dictionary_set = false;
        let status = loop {
            let at = usize::try_from(d.total_in()).unwrap_or(usize::MAX);
            let input = &compressed[at.min(compressed.len())..];
            match d.decompress_vec(input, &mut out, FlushDecompress::Finish) {
                Ok(Status::StreamEnd) => break Status::StreamEnd,
                Ok(status) => {
                    if out.len() >= limit || out.len() < out.capacity() {
                        break status;
                    }
                    out.reserve_exact((out.capacity() * 2).min(limit) - out.len());
                }
                Err(e) if e.needs_dictionary().is_some() && !dictionary_set => {
                    d.set_dictionary(DICTIONARY).map_err(|_| {
                        "cannot decompress: it names a dictionary this version does not know"
                            .to_string()
                    })?;
                    dictionary_set = true;
                }
                Err(e) => return Err(format!("cannot decompress: {e}")),
            }
        };
        Ok((out, status))
    })
}

fn compress_fresh(raw: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), LEVEL);
    let _ = enc.write_all(raw);
    enc.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    /// What the store reads back; the stored size is the message's length.
    fn inflate(z: &[u8]) -> Vec<u8> {
        let mut probe = Vec::new();
        // The length, found without the dictionary-aware reader only to pass it as the size.
        let mut d = Decompress::new(true);
        let mut buf = vec![0u8; 1 << 22];
        let mut at = 0;
        loop {
            let before = d.total_out();
            match d.decompress(&z[at..], &mut buf, FlushDecompress::Finish) {
                Ok(Status::StreamEnd) => {
                    probe.extend_from_slice(&buf[..(d.total_out() - before) as usize]);
                    break;
                }
                Ok(_) => probe.extend_from_slice(&buf[..(d.total_out() - before) as usize]),
                Err(e) if e.needs_dictionary().is_some() => {
                    d.set_dictionary(DICTIONARY).unwrap();
                }
                Err(e) => panic!("{e}"),
            }
            at = d.total_in() as usize;
        }
        let out = decompress(z, probe.len() as u64).unwrap();
        assert_eq!(out, probe);
        out
    }

    #[test]
    fn messages_use_the_dictionary_and_old_rows_still_read() {
        let raw = b"Return-Path: <a@b.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello,\r\nPlease revoke the certificate https://crt.sh/?id=1\r\n";
        let with = compress(raw);
        let without = compress_fresh(raw);
        assert!(
            with.len() < without.len(),
            "{} vs {}",
            with.len(),
            without.len()
        );
        assert_eq!(decompress(&with, raw.len() as u64).unwrap(), raw);
        // A row from before the dictionary: plain zlib.
        assert_eq!(decompress(&without, raw.len() as u64).unwrap(), raw);
        let mut plain = Vec::new();
        flate2::read::ZlibDecoder::new(&without[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, raw);
        // A size that lies either way, a cut, a dictionary nobody knows.
        let n = raw.len() as u64;
        assert!(
            decompress(&with, n - 1)
                .unwrap_err()
                .contains("size column")
        );
        assert!(decompress(&with, n + 1).is_err());
        assert!(decompress(&with[..with.len() - 3], n).is_err());
        let mut other = Compress::new(Compression::fast(), true);
        other.set_dictionary(b"another dictionary").unwrap();
        let mut z = Vec::with_capacity(raw.len() + 64);
        other
            .compress_vec(raw, &mut z, FlushCompress::Finish)
            .unwrap();
        assert!(decompress(&z, n).unwrap_err().contains("dictionary"));
        // A huge size column does not make it allocate that much up front.
        assert!(decompress(&with, u64::MAX).is_err());
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
