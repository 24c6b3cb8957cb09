//! The variable-size structure convention of TAPI: the caller allocates `dwTotalSize` bytes;
//! the provider writes the fixed part, appends variable items after it, and reports
//! `dwNeededSize` (everything) and `dwUsedSize` (what was written). An item that does not fit
//! is left out whole (its size and offset 0), never cut, and nothing is written past
//! `dwTotalSize`: the writer only ever sees a slice of exactly that length.

use crate::TspiError;
use tapir_tsp::tapi::layout::{NEEDED_SIZE, USED_SIZE};

/// Writes one structure into the caller's buffer.
#[derive(Debug)]
pub struct VarWriter<'a> {
    buf: &'a mut [u8],
    fixed: usize,
    used: usize,
    needed: usize,
}

impl<'a> VarWriter<'a> {
    /// Starts a structure whose fixed part is `fixed` bytes. `buf` is the whole allocation
    /// (`dwTotalSize` bytes).
    ///
    /// # Errors
    /// [`TspiError::StructureTooSmall`] when `buf` is shorter than the fixed part.
    pub fn new(buf: &'a mut [u8], fixed: usize) -> Result<Self, TspiError> {
        if buf.len() < fixed || fixed < USED_SIZE + 4 {
            return Err(TspiError::StructureTooSmall);
        }
        Ok(Self {
            buf,
            fixed,
            used: fixed,
            needed: fixed,
        })
    }

    /// Zeroes the fixed part after the three size fields, except the byte ranges in `keep`
    /// (`(offset, length)`): members the caller (TAPI) owns.
    pub fn clear_fixed(&mut self, keep: &[(usize, usize)]) {
        for at in USED_SIZE + 4..self.fixed {
            if !keep
                .iter()
                .any(|(off, len)| (*off..off + len).contains(&at))
            {
                self.buf[at] = 0;
            }
        }
    }

    /// Writes a DWORD of the fixed part.
    pub fn put(&mut self, offset: usize, value: u32) {
        self.put_bytes(offset, &value.to_ne_bytes());
    }

    /// Writes a WORD of the fixed part.
    pub fn put_u16(&mut self, offset: usize, value: u16) {
        self.put_bytes(offset, &value.to_ne_bytes());
    }

    fn put_bytes(&mut self, offset: usize, bytes: &[u8]) {
        // Offsets come from tapi::layout and lie inside the fixed part, which `new` checked
        // is inside the buffer; anything else is skipped rather than written out of bounds.
        if offset + bytes.len() <= self.fixed {
            if let Some(dst) = self.buf.get_mut(offset..offset + bytes.len()) {
                dst.copy_from_slice(bytes);
            }
        } else {
            tracing::error!(
                offset,
                "Structure member outside the fixed part; not written."
            );
        }
    }

    /// Appends a variable item and writes its size at `size_at` and offset at `size_at + 4`.
    /// Returns whether it fit. An empty item is recorded as size 0, offset 0.
    pub fn append(&mut self, size_at: usize, data: &[u8]) -> bool {
        self.append_with(size_at, data.len(), |_| data.to_vec())
    }

    /// Appends an item of `len` bytes built by `build`, which is given the offset the item
    /// will have (for items that hold offsets of their own, such as LINEFORWARD arrays).
    pub fn append_with(
        &mut self,
        size_at: usize,
        len: usize,
        build: impl FnOnce(usize) -> Vec<u8>,
    ) -> bool {
        if len == 0 {
            self.put(size_at, 0);
            self.put(size_at + 4, 0);
            return true;
        }
        self.needed += len;
        let at = self.used;
        let fits = at + len <= self.buf.len();
        let data = if fits { build(at) } else { Vec::new() };
        match self.buf.get_mut(at..at + len) {
            Some(dst) if fits && data.len() == len => {
                dst.copy_from_slice(&data);
                self.used += len;
                self.put(size_at, len as u32);
                self.put(size_at + 4, at as u32);
                true
            }
            _ => {
                self.put(size_at, 0);
                self.put(size_at + 4, 0);
                false
            }
        }
    }

    /// Writes dwNeededSize and dwUsedSize; dwTotalSize stays the caller's.
    pub fn finish(mut self) -> (u32, u32) {
        let (needed, used) = (self.needed as u32, self.used as u32);
        // The size fields lie at 4 and 8, inside every fixed part (`new` checked).
        self.put(NEEDED_SIZE, needed);
        self.put(USED_SIZE, used);
        (needed, used)
    }
}

/// The dwTotalSize a structure declares (its first DWORD), if the bytes hold one.
pub fn total_size(bytes: &[u8]) -> Option<u32> {
    let head: [u8; 4] = bytes.get(..4)?.try_into().ok()?;
    Some(u32::from_ne_bytes(head))
}

/// Reads a DWORD at `offset` of a structure, if it is inside.
pub fn get(bytes: &[u8], offset: usize) -> Option<u32> {
    let word: [u8; 4] = bytes.get(offset..offset + 4)?.try_into().ok()?;
    Some(u32::from_ne_bytes(word))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_small_for_the_fixed_part_is_refused() {
        let mut buf = [0u8; 20];
        assert_eq!(
            VarWriter::new(&mut buf, 24).err(),
            Some(TspiError::StructureTooSmall)
        );
    }

    #[test]
    fn items_that_do_not_fit_are_left_out_whole() {
        let mut buf = vec![0xAAu8; 28 + 6];
        let mut w = VarWriter::new(&mut buf, 28).expect("fits");
        w.clear_fixed(&[]);
        assert!(w.append(12, &[1, 2, 3, 4]));
        assert!(!w.append(20, &[5, 6, 7, 8]));
        assert_eq!(w.finish(), (36, 32));
        assert_eq!(get(&buf, 12), Some(4));
        assert_eq!(get(&buf, 16), Some(28));
        assert_eq!(get(&buf, 20), Some(0));
        assert_eq!(get(&buf, 24), Some(0));
        assert_eq!(&buf[28..32], &[1, 2, 3, 4]);
        assert_eq!(
            &buf[32..34],
            &[0xAA, 0xAA],
            "nothing of the second item written"
        );
    }

    #[test]
    fn kept_members_survive_clearing() {
        let mut buf = vec![0xBBu8; 24];
        let mut w = VarWriter::new(&mut buf, 24).expect("fits");
        w.clear_fixed(&[(16, 4)]);
        w.finish();
        assert_eq!(get(&buf, 12), Some(0));
        assert_eq!(get(&buf, 16), Some(0xBBBB_BBBB));
    }
}
