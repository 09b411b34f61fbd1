//! A message on its way into the store: its bytes, the content hash that keys them, and, once
//! [`NewMessage::compress`] ran, the compressed form the SQLite store keeps.
//!
//! Why a type of its own: hashing and compressing are the costly part of storing a message, and
//! all commits run one at a time on one thread. The pipeline's preparer ([`crate::pipeline`])
//! seals each message on a thread of its own, so the committing thread only writes. The hash is
//! computed here from the bytes and nothing can change either afterwards, so the store can
//! trust the pairing without hashing again.

use std::cell::RefCell;
use std::sync::{Arc, OnceLock};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::chain;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    content_hash: String,
    raw: Vec<u8>,
    /// The compressed form, with the trained dictionary it was made with (its serial), if any.
    compressed: Option<(Vec<u8>, Option<u64>)>,
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

    /// Compress now, on this thread, for a store that keeps messages compressed, with the
    /// dictionary `codec` holds by now (if any).
    pub(crate) fn compress(&mut self, codec: &MessageCodec) {
        if self.compressed.is_none() {
            let trained = codec.trained();
            self.compressed = Some((compress(&self.raw, trained), trained.map(|t| t.serial)));
        }
    }

    /// Whether [`NewMessage::compress`] ran.
    #[cfg(test)]
    pub(crate) fn is_compressed(&self) -> bool {
        self.compressed.is_some()
    }

    /// The compressed bytes with `codec`'s dictionary: made earlier by
    /// [`NewMessage::compress`], or now if that had none or another (messages prepared while
    /// the store trained its dictionary: a few batches, once in a store's life).
    pub(crate) fn compressed(&self, codec: &MessageCodec) -> std::borrow::Cow<'_, [u8]> {
        let trained = codec.trained();
        match &self.compressed {
            Some((c, with)) if *with == trained.map(|t| t.serial) => std::borrow::Cow::Borrowed(c),
            _ => std::borrow::Cow::Owned(compress(&self.raw, trained)),
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

/// A dictionary trained on a store's own mail ([`train`]), as the store keeps it (its
/// `dictionaries` table, schema 6) and names it in every message compressed with it: a zstd
/// frame states the id of the dictionary it needs in its header, as a zlib stream does with
/// [`DICTIONARY`]'s Adler-32, so rows need no column to say how they are stored.
///
/// Why trained, and why zstd: a deflate dictionary is at most 32 KiB of hand-picked vocabulary,
/// the same for every desk. zstd reads a dictionary of any size, and `ZDICT` picks one from the
/// desk's own mail: its relays, its DKIM and spam headers, its reporters' and staff's
/// signatures and templates. Measured on the scale corpus (43.7 MB of mail, a 64 KiB dictionary
/// trained on 1 000 of its messages): 0.209 of the mail at level 5, against 0.411 with deflate
/// level 4 and [`DICTIONARY`], in a quarter of the time, and decoding in a third.
#[derive(Debug)]
pub(crate) struct Trained {
    /// zstd's id of it, as frames name it: its key in the `dictionaries` table.
    id: u32,
    bytes: Vec<u8>,
    /// Unique in this process: which dictionary a thread's coder has loaded.
    serial: u64,
}

impl Trained {
    /// A dictionary as `ZDICT` made it; `None` if it does not state its id (not one of ours).
    pub(crate) fn new(bytes: Vec<u8>) -> Option<Arc<Trained>> {
        static SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let id = zstd::zstd_safe::get_dict_id_from_dict(&bytes)?.get();
        Some(Arc::new(Trained {
            id,
            bytes,
            serial: SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }))
    }

    pub(crate) fn id(&self) -> u32 {
        self.id
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// The dictionary new messages are compressed with, once the store has one: shared by the
/// store (which trains it) and the preparer's threads (which compress), so messages prepared
/// after training use it. Until then messages are deflated as before.
#[derive(Clone, Debug, Default)]
pub struct MessageCodec(Arc<OnceLock<Arc<Trained>>>);

impl MessageCodec {
    pub(crate) fn trained(&self) -> Option<&Trained> {
        self.0.get().map(Arc::as_ref)
    }

    /// Use `t` from now on (the first dictionary set stays).
    pub(crate) fn set(&self, t: Arc<Trained>) {
        let _ = self.0.set(t);
    }
}

/// How much a dictionary is trained on: the store's first [`TRAIN_ON`] messages, each at most
/// [`TRAIN_SAMPLE`] bytes (the start of a message is where what repeats is: headers, greeting,
/// the report's wording; a long attachment only slows training).
pub(crate) const TRAIN_ON: usize = 1000;
const TRAIN_SAMPLE: usize = 16 << 10;

/// The size of a trained dictionary. Measured on the scale corpus (trained on 1 000 messages,
/// level 5): 32 KiB 0.209 of the mail, 64 KiB 0.209, 112 KiB 0.209; at level 3 0.222 each.
/// The store keeps it, so a store that just trained (1 000 messages, about 2.3 MB of mail)
/// pays its size in full: 32 KiB.
const DICTIONARY_SIZE: usize = 32 << 10;

/// The zstd level of messages compressed with a trained dictionary. Measured on the scale
/// corpus (one core, 43.7 MB): level 3 0.222 of the mail in 0.4 s, 5 0.209 in 0.6 s, 9 0.202 in
/// 1.9 s (deflate level 4: 0.411 in 2.3 s). Messages are compressed on the preparer's threads,
/// beside the commits: a bulk load of 100 000 messages took as long at level 9 as at 5 (27.7 s
/// and 27.5), for 1.5 MB less; level 15 saved 0.4 MB more, in 33.9 s. Not part of the format.
const ZSTD_LEVEL: i32 = 9;

/// Train a dictionary on `samples` (messages as stored, the first few of a store). `Err` says
/// why not: too little or too uniform mail, for which zstd finds nothing to learn; then
/// messages stay deflated.
pub(crate) fn train(samples: &[Vec<u8>]) -> Result<Arc<Trained>, String> {
    let samples: Vec<&[u8]> = samples
        .iter()
        .map(|s| &s[..s.len().min(TRAIN_SAMPLE)])
        .collect();
    let total: usize = samples.iter().map(|s| s.len()).sum();
    // zstd wants about ten times the dictionary's size to learn from.
    let size = DICTIONARY_SIZE.min(total / 10);
    let bytes = zstd::dict::from_samples(&samples, size)
        .map_err(|e| format!("zstd could not train a dictionary: {e}"))?;
    Trained::new(bytes).ok_or_else(|| "zstd made a dictionary without an id".to_string())
}

thread_local! {
    /// One zstd coder and decoder per thread, with the dictionary last used loaded (loading
    /// digests it: far more work than compressing a message).
    static ZSTD_COMPRESSOR: RefCell<Option<(u64, zstd::zstd_safe::CCtx<'static>)>> =
        const { RefCell::new(None) };
    static ZSTD_DECOMPRESSOR: RefCell<Option<(u64, zstd::zstd_safe::DCtx<'static>)>> =
        const { RefCell::new(None) };
}

/// The first bytes of every zstd frame; never the start of a zlib stream (its first two bytes
/// would have to be a multiple of 31 as a big-endian number: 0x28b5 is not).
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// Whether a stored message is compressed against a trained dictionary (else it is deflated).
pub(crate) fn is_trained_form(stored: &[u8]) -> bool {
    stored.starts_with(&ZSTD_MAGIC)
}

/// A message's stored form: zstd against `trained` when given, else zlib at [`LEVEL`] with
/// [`DICTIONARY`] (and that too if zstd ever failed: both read back).
pub(crate) fn compress(raw: &[u8], trained: Option<&Trained>) -> Vec<u8> {
    trained
        .and_then(|t| zstd_compress(raw, t))
        .unwrap_or_else(|| deflate(raw))
}

fn zstd_compress(raw: &[u8], t: &Trained) -> Option<Vec<u8>> {
    use zstd::zstd_safe::{CCtx, CParameter};
    ZSTD_COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.as_ref().map(|(serial, _)| *serial) != Some(t.serial) {
            *c = None;
            let mut cx = CCtx::try_create()?;
            cx.set_parameter(CParameter::CompressionLevel(ZSTD_LEVEL))
                .ok()?;
            cx.load_dictionary(&t.bytes).ok()?;
            *c = Some((t.serial, cx));
        }
        let (_, cx) = c.as_mut()?;
        let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(raw.len()));
        match cx.compress2(&mut out, raw) {
            Ok(_) => Some(out),
            Err(_) => {
                // Start afresh next time rather than reuse a coder in an unknown state.
                *c = None;
                None
            }
        }
    })
}

/// The trained dictionaries of a store, by id: how a stored message finds the one it names.
pub(crate) type Dictionaries<'a> = &'a dyn Fn(u32) -> Result<Arc<Trained>, String>;

/// zlib at [`LEVEL`] with [`DICTIONARY`].
fn deflate(raw: &[u8]) -> Vec<u8> {
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
pub(crate) fn decompress(
    compressed: &[u8],
    size: u64,
    dictionaries: Dictionaries<'_>,
) -> Result<Vec<u8>, String> {
    let limit = usize::try_from(size)
        .unwrap_or(usize::MAX)
        .saturating_add(1);
    let (out, status) = expand(compressed, limit, dictionaries)?;
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
pub(crate) fn decompress_prefix(
    compressed: &[u8],
    size: u64,
    n: usize,
    dictionaries: Dictionaries<'_>,
) -> Result<Vec<u8>, String> {
    let want = usize::try_from(size).unwrap_or(usize::MAX).min(n);
    let (mut out, status) = expand(compressed, want, dictionaries)?;
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

/// Decode a stored message, zstd or zlib as its first bytes say, until it ends or at least
/// `limit` bytes came out (a few more may).
fn expand(
    compressed: &[u8],
    limit: usize,
    dictionaries: Dictionaries<'_>,
) -> Result<(Vec<u8>, Status), String> {
    if !compressed.starts_with(&ZSTD_MAGIC) {
        return inflate(compressed, limit);
    }
    let id = zstd::zstd_safe::get_dict_id_from_frame(compressed)
        .ok_or("cannot decompress: a zstd frame that names no dictionary")?
        .get();
    let t = dictionaries(id)
        .map_err(|e| format!("cannot decompress: it needs dictionary {id}, which {e}"))?;
    zstd_expand(compressed, limit, &t)
        .map_err(|e| format!("cannot decompress (zstd, dictionary {id}): {e}"))
}

/// Decode one zstd frame against `t`, streaming, so `limit` bounds the work and the memory
/// whatever the frame claims. `StreamEnd` only when the frame ended with the input.
fn zstd_expand(compressed: &[u8], limit: usize, t: &Trained) -> Result<(Vec<u8>, Status), String> {
    use zstd::zstd_safe::{DCtx, InBuffer, OutBuffer, ResetDirective};
    ZSTD_DECOMPRESSOR.with(|d| {
        let mut d = d.borrow_mut();
        if d.as_ref().map(|(serial, _)| *serial) != Some(t.serial) {
            *d = None;
            let mut dx = DCtx::try_create().ok_or("no memory for a decoder")?;
            dx.load_dictionary(&t.bytes)
                .map_err(|c| zstd::zstd_safe::get_error_name(c).to_string())?;
            *d = Some((t.serial, dx));
        }
        let Some((_, dx)) = d.as_mut() else {
            return Err("no decoder".to_string());
        };
        // A frame left half read (an error, or the limit reached) must not spill into the next.
        dx.reset(ResetDirective::SessionOnly)
            .map_err(|c| zstd::zstd_safe::get_error_name(c).to_string())?;
        let mut out: Vec<u8> = Vec::with_capacity(limit.clamp(64, 1 << 20));
        let mut input = InBuffer::around(compressed);
        loop {
            let at = out.len();
            let left = {
                let mut o = OutBuffer::around_pos(&mut out, at);
                dx.decompress_stream(&mut o, &mut input)
                    .map_err(|c| zstd::zstd_safe::get_error_name(c).to_string())?
            };
            if left == 0 {
                if input.pos() < compressed.len() {
                    return Err(format!(
                        "{} bytes after the end of the frame",
                        compressed.len() - input.pos()
                    ));
                }
                return Ok((out, Status::StreamEnd));
            }
            if out.len() >= limit {
                return Ok((out, Status::Ok));
            }
            if out.len() < out.capacity() && input.pos() == compressed.len() {
                // All read, room left, and the frame not ended: it is cut short.
                return Ok((out, Status::BufError));
            }
            if out.len() == out.capacity() {
                out.reserve_exact((out.capacity() * 2).min(limit) - out.len());
            }
        }
    })
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
pub(crate) mod tests {
    use super::*;
    use std::io::Read;

    /// A store without trained dictionaries.
    const NONE: fn(u32) -> Result<Arc<Trained>, String> = |_| Err("is not stored".into());

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
        let out = decompress(z, probe.len() as u64, &NONE).unwrap();
        assert_eq!(out, probe);
        out
    }

    #[test]
    fn messages_use_the_dictionary_and_old_rows_still_read() {
        let raw = b"Return-Path: <a@b.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello,\r\nPlease revoke the certificate https://crt.sh/?id=1\r\n";
        let with = compress(raw, None);
        let without = compress_fresh(raw);
        assert!(
            with.len() < without.len(),
            "{} vs {}",
            with.len(),
            without.len()
        );
        assert_eq!(decompress(&with, raw.len() as u64, &NONE).unwrap(), raw);
        // A row from before the dictionary: plain zlib.
        assert_eq!(decompress(&without, raw.len() as u64, &NONE).unwrap(), raw);
        let mut plain = Vec::new();
        flate2::read::ZlibDecoder::new(&without[..])
            .read_to_end(&mut plain)
            .unwrap();
        assert_eq!(plain, raw);
        // A size that lies either way, a cut, a dictionary nobody knows.
        let n = raw.len() as u64;
        assert!(
            decompress(&with, n - 1, &NONE)
                .unwrap_err()
                .contains("size column")
        );
        assert!(decompress(&with, n + 1, &NONE).is_err());
        assert!(decompress(&with[..with.len() - 3], n, &NONE).is_err());
        let mut other = Compress::new(Compression::fast(), true);
        other.set_dictionary(b"another dictionary").unwrap();
        let mut z = Vec::with_capacity(raw.len() + 64);
        other
            .compress_vec(raw, &mut z, FlushCompress::Finish)
            .unwrap();
        assert!(decompress(&z, n, &NONE).unwrap_err().contains("dictionary"));
        // A huge size column does not make it allocate that much up front.
        assert!(decompress(&with, u64::MAX, &NONE).is_err());
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
            let z = compress(raw, None);
            assert_eq!(inflate(&z), raw);
        }
    }

    #[test]
    fn the_hash_is_of_the_bytes() {
        let mut m = NewMessage::new(b"hello".to_vec());
        assert_eq!(m.content_hash(), chain::content_hash(b"hello"));
        m.compress(&MessageCodec::default());
        assert_eq!(inflate(&m.compressed(&MessageCodec::default())), b"hello");
    }

    /// Mail of a few kinds, varied enough for zstd to train on.
    pub(crate) fn sample_mail(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                format!(
                    "Return-Path: <reporter{r}@example{d}.test>\r\nReceived: from mx{i}.example{d}.test (mx{i}.example{d}.test [192.0.2.{h}])\r\n\tby mx.example-ca.test (Postfix) with ESMTPS id {i:08X}\r\n\
                     From: Reporter {r} <reporter{r}@example{d}.test>\r\nTo: cpr@example-ca.test\r\nSubject: {subject} {i}\r\n\
                     Date: Mon, 0{day} Jan 2026 10:{m:02}:00 +0000\r\nMessage-ID: <{i}.{r}@example{d}.test>\r\n\r\n\
                     Hello,\r\n\r\n{body}\r\nhttps://crt.sh/?id={crt}\r\n\r\nThank you,\r\nReporter {r}\r\n",
                    r = i % 37,
                    d = i % 11,
                    h = i % 250,
                    day = 1 + i % 9,
                    m = i % 60,
                    crt = 1_000_000 + i * 7919,
                    subject = ["Key compromise", "Please revoke", "Misissued certificate"][i % 3],
                    body = [
                        "The private key of this certificate was published on a paste site.",
                        "We no longer control the domain: please revoke the certificate.",
                        "This certificate has a SAN that was never validated.",
                        "I found this key in a public repository.",
                    ][i % 4],
                )
                .into_bytes()
            })
            .collect()
    }

    #[test]
    fn a_trained_dictionary_compresses_mail_and_every_form_reads_back() {
        let mail = sample_mail(300);
        let t = train(&mail).unwrap();
        let dicts = |id: u32| -> Result<Arc<Trained>, String> {
            if id == t.id() {
                Ok(t.clone())
            } else {
                Err("is not stored".into())
            }
        };
        let raw = &mail[7];
        let z = compress(raw, Some(&t));
        assert!(z.starts_with(&ZSTD_MAGIC));
        let deflated = compress(raw, None);
        assert!(
            z.len() < deflated.len(),
            "{} vs {}",
            z.len(),
            deflated.len()
        );
        let n = raw.len() as u64;
        assert_eq!(decompress(&z, n, &dicts).unwrap(), *raw);
        // Old rows next to new ones: the stream says which it is.
        assert_eq!(decompress(&deflated, n, &dicts).unwrap(), *raw);
        assert_eq!(decompress_prefix(&z, n, 40, &dicts).unwrap(), raw[..40]);
        assert_eq!(decompress_prefix(&z, n, 1 << 20, &dicts).unwrap(), *raw);
        // Without its dictionary, or with a size that lies, or cut short: named.
        assert!(
            decompress(&z, n, &NONE)
                .unwrap_err()
                .contains(&format!("dictionary {}", t.id()))
        );
        assert!(
            decompress(&z, n - 1, &dicts)
                .unwrap_err()
                .contains("size column")
        );
        assert!(decompress(&z, n + 1, &dicts).is_err());
        assert!(decompress(&z[..z.len() - 3], n, &dicts).is_err());
        assert!(decompress(&z, u64::MAX, &dicts).is_err());
        let mut longer = z.clone();
        longer.push(0);
        assert!(decompress(&longer, n, &dicts).is_err());
        // Every damaged byte is an error or other bytes (which the content hash then shows).
        for i in 0..z.len() {
            let mut bad = z.clone();
            bad[i] ^= 0x55;
            if let Ok(out) = decompress(&bad, n, &dicts) {
                assert_ne!(out, *raw, "byte {i} went unnoticed");
            }
        }
        // A large message, streamed to its size, and a codec that gets the dictionary later.
        let big: Vec<u8> = mail.concat();
        let codec = MessageCodec::default();
        let mut m = NewMessage::new(big.clone());
        m.compress(&codec);
        assert!(!m.compressed(&codec).starts_with(&ZSTD_MAGIC));
        // Prepared before the store trained, stored after: compressed again with it.
        codec.set(t.clone());
        assert!(m.compressed(&codec).starts_with(&ZSTD_MAGIC));
        let mut m = NewMessage::new(big.clone());
        m.compress(&codec);
        assert!(matches!(
            m.compressed(&codec),
            std::borrow::Cow::Borrowed(_)
        ));
        let z = m.compressed(&codec);
        assert!(z.starts_with(&ZSTD_MAGIC));
        assert_eq!(decompress(&z, big.len() as u64, &dicts).unwrap(), big);
    }

    #[test]
    fn too_little_mail_trains_nothing() {
        assert!(train(&sample_mail(2)).is_err());
        assert!(train(&[]).is_err());
    }
}
