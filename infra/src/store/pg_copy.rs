//! PostgreSQL's binary `COPY` format, read: the fastest way to take many
//! rows out of PostgreSQL (no per-row protocol message, no text parsing).
//! The stream arrives in chunks that split tuples anywhere; [`Tuples`]
//! buffers them and hands out whole tuples.
//!
//! Format (PostgreSQL docs, "COPY", binary format): an 11-byte signature,
//! a 32-bit flags field and a 32-bit header-extension length (plus that
//! extension); then per tuple a 16-bit field count (-1 ends the data) and
//! per field a 32-bit length (-1 for NULL) and that many bytes, all
//! integers in network order.

use bytes::{Buf, BytesMut};

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

#[derive(Debug, thiserror::Error)]
#[error("malformed COPY data: {0}")]
pub struct Malformed(pub &'static str);

/// Whole tuples out of a binary COPY stream.
#[derive(Default)]
pub struct Tuples {
    buffer: BytesMut,
    header_read: bool,
    ended: bool,
}

impl Tuples {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buffer.extend_from_slice(chunk);
    }

    /// Whether the trailer has been read.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The next whole tuple, or `None` until more data arrives (or after
    /// the trailer).
    pub fn next(&mut self) -> Result<Option<Tuple>, Malformed> {
        if self.ended {
            return Ok(None);
        }
        if !self.header_read {
            if self.buffer.len() < SIGNATURE.len() + 8 {
                return Ok(None);
            }
            if &self.buffer[..SIGNATURE.len()] != SIGNATURE {
                return Err(Malformed("no binary COPY signature"));
            }
            let at = SIGNATURE.len() + 4;
            let extension = u32::from_be_bytes([
                self.buffer[at],
                self.buffer[at + 1],
                self.buffer[at + 2],
                self.buffer[at + 3],
            ]) as usize;
            let header = SIGNATURE.len() + 8 + extension;
            if self.buffer.len() < header {
                return Ok(None);
            }
            self.buffer.advance(header);
            self.header_read = true;
        }
        // Measure the tuple first; hand it out only when it is all here.
        let Some(fields) = fields_of(&self.buffer)? else {
            return Ok(None);
        };
        let Some((fields, length)) = fields else {
            self.ended = true;
            return Ok(None);
        };
        Ok(Some(Tuple {
            bytes: self.buffer.split_to(length).freeze(),
            fields,
        }))
    }
}

/// One row of a COPY stream.
pub struct Tuple {
    bytes: bytes::Bytes,
    fields: Vec<Option<std::ops::Range<usize>>>,
}

impl Tuple {
    /// Field `i`'s bytes; `None` for NULL or past the last field.
    pub fn field(&self, i: usize) -> Option<&[u8]> {
        let range = self.fields.get(i)?.clone()?;
        self.bytes.get(range)
    }

    pub fn int8(&self, i: usize) -> Result<i64, Malformed> {
        let raw = self.field(i).ok_or(Malformed("NULL int8"))?;
        Ok(i64::from_be_bytes(
            raw.try_into()
                .map_err(|_| Malformed("int8 of another size"))?,
        ))
    }

    pub fn int4(&self, i: usize) -> Result<i32, Malformed> {
        let raw = self.field(i).ok_or(Malformed("NULL int4"))?;
        Ok(i32::from_be_bytes(
            raw.try_into()
                .map_err(|_| Malformed("int4 of another size"))?,
        ))
    }

    pub fn text(&self, i: usize) -> Result<String, Malformed> {
        let raw = self.field(i).ok_or(Malformed("NULL text"))?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| Malformed("text that is not UTF-8"))
    }

    pub fn bytes(&self, i: usize) -> Result<&[u8], Malformed> {
        self.field(i).ok_or(Malformed("NULL bytes"))
    }
}

/// A tuple's field ranges (`None`: NULL) and its length in bytes.
type Fields = (Vec<Option<std::ops::Range<usize>>>, usize);

/// The fields of the tuple at the start of `buffer`: `None` if it is not
/// all there yet, `Some(None)` for the trailer.
fn fields_of(buffer: &[u8]) -> Result<Option<Option<Fields>>, Malformed> {
    if buffer.len() < 2 {
        return Ok(None);
    }
    let count = i16::from_be_bytes([buffer[0], buffer[1]]);
    if count == -1 {
        return Ok(Some(None));
    }
    if count < 0 {
        return Err(Malformed("negative field count"));
    }
    let mut fields = Vec::with_capacity(count as usize);
    let mut at = 2;
    for _ in 0..count {
        let Some(raw) = buffer.get(at..at + 4) else {
            return Ok(None);
        };
        let len = i32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]);
        at += 4;
        if len == -1 {
            fields.push(None);
        } else if len < 0 {
            return Err(Malformed("negative field length"));
        } else {
            fields.push(Some(at..at + len as usize));
            at += len as usize;
        }
    }
    Ok((buffer.len() >= at).then_some(Some((fields, at))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(out: &mut Vec<u8>, value: Option<&[u8]>) {
        match value {
            None => out.extend_from_slice(&(-1i32).to_be_bytes()),
            Some(v) => {
                out.extend_from_slice(&(v.len() as i32).to_be_bytes());
                out.extend_from_slice(v);
            }
        }
    }

    #[test]
    fn tuples_come_whole_however_the_stream_is_cut() {
        let mut stream = SIGNATURE.to_vec();
        stream.extend_from_slice(&0u32.to_be_bytes());
        stream.extend_from_slice(&0u32.to_be_bytes());
        for n in 0..3i64 {
            stream.extend_from_slice(&3i16.to_be_bytes());
            field(&mut stream, Some(&n.to_be_bytes()));
            field(&mut stream, None);
            field(&mut stream, Some(format!("row {n}").as_bytes()));
        }
        stream.extend_from_slice(&(-1i16).to_be_bytes());
        for cut in [1, 3, 7, 1000] {
            let mut tuples = Tuples::default();
            let mut seen = Vec::new();
            for chunk in stream.chunks(cut) {
                tuples.push(chunk);
                while let Some(t) = tuples.next().unwrap_or_else(|e| panic!("{e}")) {
                    assert_eq!(t.field(1), None);
                    seen.push((t.int8(0).unwrap_or(-1), t.text(2).unwrap_or_default()));
                }
            }
            assert!(tuples.ended(), "cut {cut}");
            assert_eq!(
                seen,
                [
                    (0, "row 0".to_owned()),
                    (1, "row 1".into()),
                    (2, "row 2".into())
                ]
            );
        }
    }

    #[test]
    fn a_stream_without_the_signature_is_refused() {
        let mut tuples = Tuples::default();
        tuples.push(b"PGCOPY\nXXXXXXXXXXXXXXXXXXXX");
        assert!(tuples.next().is_err());
    }
}
