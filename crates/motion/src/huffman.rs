//! Huffman tables and the bit reader of the DC-only decoder: the hot loop of the crate.
//!
//! Why it exists: to learn the DC coefficients of a baseline JPEG every AC coefficient must
//! still be *found* (Huffman codes have no byte alignment), but its value never matters.
//! So an AC table here does not answer "which symbol?" but "how many bits do the next
//! coefficients take, and how far do they move in the block?": one lookup of the next
//! [`AC_BITS`] bits drops up to three whole coefficients, codes *and* magnitude bits. Only
//! codes longer than the window (rare: the long codes are the improbable ones) take the
//! canonical slow path.
//!
//! The reader works on *destuffed* entropy-coded bytes (`0xFF 0x00` already turned into
//! `0xFF`, restart markers already removed, see `dc.rs`), so a refill is one unaligned 8-byte
//! load with no marker checks. It must never index out of bounds: reads past the end yield
//! zero bits, and the caller checks afterwards whether more bits were used than existed.

use alloc::boxed::Box;
use alloc::vec::Vec;

/// Bits a DC table looks up at once: DC codes are short (at most 9 bits in the standard
/// tables), so 9 bits resolve nearly all of them with a 1 KiB table.
pub(crate) const DC_BITS: u32 = 9;
/// Bits an AC table looks up at once. 11 bits hold two or three short coefficients (the
/// common case at camera qualities), and the 8 KiB table of each of the usual two AC
/// tables still fits the L1 cache.
pub(crate) const AC_BITS: u32 = 11;
const DC_SIZE: usize = 1 << DC_BITS;
const AC_SIZE: usize = 1 << AC_BITS;

/// The advance of the end-of-block symbol: past any position, so one compare ends a block.
const EOB: u32 = 64;

/// Why a `DHT` table was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TableError {
    /// More than 256 symbols, or the counts do not fit in the given bytes.
    Length,
    /// The code lengths over-subscribe the code space (no prefix code has them).
    Oversubscribed,
    /// A DC symbol above 11 (the largest difference of 8-bit samples needs 11 bits).
    DcSymbol(u8),
}

/// Canonical decoding, for codes longer than a lookup table covers: `maxcode[l]` is one
/// past the last code of length `l` (-1 when there is none), `valoffset[l]` maps a code of
/// length `l` to its index in `values`.
#[derive(Clone)]
struct Canonical {
    maxcode: [i32; 17],
    valoffset: [i32; 17],
    values: [u8; 256],
    /// The `DHT` bytes this was built from (16 counts, then the symbols): a frame that
    /// repeats the previous frame's table (every camera does) skips the rebuild.
    source: Vec<u8>,
}

impl Canonical {
    fn empty() -> Self {
        Self {
            maxcode: [-1; 17],
            valoffset: [0; 17],
            values: [0; 256],
            source: Vec::new(),
        }
    }

    fn same_source(&self, counts: &[u8; 16], symbols: &[u8]) -> bool {
        self.source.len() == 16 + symbols.len()
            && self.source[..16] == counts[..]
            && self.source[16..] == *symbols
    }

    /// Builds the canonical code, calling `each(code, length, symbol)` for every code.
    fn build(
        &mut self,
        counts: &[u8; 16],
        symbols: &[u8],
        mut each: impl FnMut(u32, u32, u8),
    ) -> Result<(), TableError> {
        let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
        if total > 256 || symbols.len() != total {
            return Err(TableError::Length);
        }
        self.source.clear();
        self.maxcode = [-1; 17];
        self.values = [0; 256];
        self.values[..total].copy_from_slice(symbols);
        let mut code: u32 = 0;
        let mut index: usize = 0;
        for len in 1..=16u32 {
            let n = u32::from(counts[len as usize - 1]);
            self.valoffset[len as usize] = index as i32 - code as i32;
            for _ in 0..n {
                each(code, len, symbols[index]);
                code += 1;
                index += 1;
            }
            if n > 0 {
                self.maxcode[len as usize] = code as i32;
            }
            // Checked before the next length, so `code < 2^len` for every code passed on.
            if code > 1 << len {
                return Err(TableError::Oversubscribed);
            }
            code <<= 1;
        }
        self.source.extend_from_slice(counts);
        self.source.extend_from_slice(symbols);
        Ok(())
    }

    /// Decodes the code at the top of `top16` (the next 16 bits): code length and symbol,
    /// or `None` for a bit pattern that is no code of this table.
    fn decode(&self, top16: u32) -> Option<(u32, u8)> {
        let top = top16 as i32;
        for len in 1..=16u32 {
            let code = top >> (16 - len);
            if code < self.maxcode[len as usize] {
                let i = self.valoffset[len as usize] + code;
                return usize::try_from(i)
                    .ok()
                    .and_then(|i| self.values.get(i))
                    .map(|&s| (len, s));
            }
        }
        None
    }
}

/// Fills the lookup entries of `code` (of `len <= bits` bits) in a `bits`-bit table.
fn fill<T: Copy>(lut: &mut [T], bits: u32, code: u32, len: u32, entry: T) {
    if len <= bits {
        let shift = bits - len;
        let first = (code << shift) as usize;
        if let Some(slots) = lut.get_mut(first..first + (1 << shift)) {
            slots.fill(entry);
        }
    }
}

/// A DC table: decodes the size of the difference that follows.
#[derive(Clone)]
pub(crate) struct DcTable {
    /// Indexed by the next [`DC_BITS`] bits: `code length | size << 8`; 0 = longer code
    /// (or no code): slow path.
    lut: [u16; DC_SIZE],
    canon: Canonical,
}

impl DcTable {
    pub(crate) fn empty() -> Self {
        Self {
            lut: [0; DC_SIZE],
            canon: Canonical::empty(),
        }
    }

    /// Builds the table from a `DHT` segment's `counts` (codes of each length 1..=16) and
    /// `symbols`; a no-op when they equal the ones it was last built from.
    pub(crate) fn build(&mut self, counts: &[u8; 16], symbols: &[u8]) -> Result<(), TableError> {
        if self.canon.same_source(counts, symbols) {
            return Ok(());
        }
        if let Some(&s) = symbols.iter().find(|&&s| s > 11) {
            return Err(TableError::DcSymbol(s));
        }
        let lut = &mut self.lut;
        lut.fill(0);
        self.canon.build(counts, symbols, |code, len, sym| {
            fill(lut, DC_BITS, code, len, (len | u32::from(sym) << 8) as u16);
        })
    }
}

/// An AC table that *skips* coefficients: one lookup drops up to three whole coefficients
/// (codes and magnitude bits) and tells how far they move in the block.
#[derive(Clone)]
pub(crate) struct AcTable {
    /// Indexed by the next [`AC_BITS`] bits; 0 = the first code is longer (or no code):
    /// slow path. Otherwise, packed:
    ///
    /// | bits  | field | meaning |
    /// |-------|-------|---------|
    /// | 0–4   | `all` | bits of every coefficient whose code lies in the window |
    /// | 5–11  | `adv` | their total advance (`run + 1` each; end of block adds [`EOB`]) |
    /// | 12–17 | `pre` | the advance of all but the last of them |
    /// | 18–22 | `one` | bits of the first coefficient alone |
    /// | 23–29 | `adv1`| its advance |
    ///
    /// Taking them all is right only if the block does not end before the last one, i.e.
    /// `k + pre < 64`; otherwise the decoder takes the first alone.
    lut: Box<[u32; AC_SIZE]>,
    canon: Canonical,
}

impl AcTable {
    pub(crate) fn empty() -> Self {
        Self {
            lut: Box::new([0; AC_SIZE]),
            canon: Canonical::empty(),
        }
    }

    /// Builds the table (see [`DcTable::build`]).
    pub(crate) fn build(&mut self, counts: &[u8; 16], symbols: &[u8]) -> Result<(), TableError> {
        if self.canon.same_source(counts, symbols) {
            return Ok(());
        }
        // First a one-code table over the same window (`length | symbol << 8`), then every
        // window decoded greedily with it.
        let mut single = alloc::vec![0u16; AC_SIZE];
        self.canon.build(counts, symbols, |code, len, sym| {
            fill(
                &mut single,
                AC_BITS,
                code,
                len,
                (len | u32::from(sym) << 8) as u16,
            );
        })?;
        let mask = (1u32 << AC_BITS) - 1;
        for (i, slot) in self.lut.iter_mut().enumerate() {
            let (mut pos, mut all, mut adv, mut pre) = (0u32, 0u32, 0u32, 0u32);
            let mut first = None;
            while pos < AC_BITS && adv < 64 {
                let s = u32::from(single[((i as u32) << pos & mask) as usize]);
                let (len, sym) = (s & 0xFF, s >> 8);
                if s == 0 || len > AC_BITS - pos {
                    break;
                }
                let step = if sym == 0 { EOB } else { (sym >> 4) + 1 };
                let bits = len + (sym & 15);
                first.get_or_insert((bits, step));
                pre = adv;
                all += bits;
                adv += step;
                pos += bits;
                if sym == 0 {
                    break;
                }
            }
            *slot = match first {
                Some((one, adv1)) => all | adv << 5 | pre << 12 | one << 18 | adv1 << 23,
                None => 0,
            };
        }
        Ok(())
    }
}

/// A bad Huffman code in the entropy-coded data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadCode;

/// MSB-first bit reader over destuffed bytes.
#[derive(Clone, Copy)]
pub(crate) struct Bits<'a> {
    data: &'a [u8],
    /// Last position an 8-byte load may start at: loads past it read the zero padding.
    last: usize,
    /// Next byte to load.
    pos: usize,
    /// Unconsumed bits, left-aligned; the low `64 - n` bits are zero.
    buf: u64,
    /// Number of valid bits in `buf`.
    n: u32,
}

impl<'a> Bits<'a> {
    /// A reader starting at byte `start` of `data`, which must end with 8 zero bytes
    /// (reads past the end yield those).
    pub(crate) fn new(data: &'a [u8], start: usize) -> Self {
        Self {
            data,
            last: data.len().saturating_sub(8),
            pos: start,
            buf: 0,
            n: 0,
        }
    }

    /// Bits consumed since byte 0 of `data`.
    pub(crate) fn consumed_bits(&self) -> usize {
        self.pos * 8 - self.n as usize
    }

    /// Tops the buffer up to at least 56 valid bits, branch-free (F. Giesen's "variant 4"):
    /// the bytes that overlap bits already held are identical, so OR-ing them is harmless.
    #[inline(always)]
    fn refill(&mut self) {
        // Past the end, load the trailing zero bytes instead (clamped, not branched: only
        // corrupt or truncated data gets there, and the caller's bit count catches it).
        // Selecting a pointer (not an `Option<u64>`) keeps the loaded word in a register.
        const ZEROS: [u8; 8] = [0; 8];
        let p = self.pos.min(self.last);
        let chunk = self
            .data
            .get(p..)
            .and_then(<[u8]>::first_chunk::<8>)
            .unwrap_or(&ZEROS);
        let word = u64::from_be_bytes(*chunk);
        self.buf |= word >> self.n;
        self.pos += (63 - self.n as usize) >> 3;
        self.n |= 56;
    }

    #[inline(always)]
    fn consume(&mut self, bits: u32) {
        self.buf <<= bits;
        self.n -= bits;
    }

    /// Decodes one block: returns its DC difference, having skipped its AC coefficients.
    #[cfg(test)]
    fn block(&mut self, dc: &DcTable, ac: &AcTable) -> Result<i32, BadCode> {
        let diff = self.dc_diff(dc)?;
        self.ac_skip(ac)?;
        Ok(diff)
    }

    /// Decodes a DC difference with `table`.
    #[inline(always)]
    pub(crate) fn dc_diff(&mut self, table: &DcTable) -> Result<i32, BadCode> {
        self.refill();
        let e = u32::from(table.lut[(self.buf >> (64 - DC_BITS)) as usize]);
        let (len, size) = if e != 0 {
            (e & 0xFF, e >> 8)
        } else {
            let (len, sym) = table.canon.slow(self.buf)?;
            (len, u32::from(sym))
        };
        self.consume(len);
        if size == 0 {
            return Ok(0);
        }
        // size <= 11 (checked when the table was built) and len <= 16: within the 56 bits.
        let v = (self.buf >> (64 - size)) as i32;
        self.consume(size);
        Ok(if v < 1 << (size - 1) {
            v - (1 << size) + 1
        } else {
            v
        })
    }

    /// Skips a DC difference with `table` (a chroma block: its value is never needed).
    #[inline(always)]
    pub(crate) fn dc_skip(&mut self, table: &DcTable) -> Result<(), BadCode> {
        self.refill();
        let e = u32::from(table.lut[(self.buf >> (64 - DC_BITS)) as usize]);
        let bits = if e != 0 {
            (e & 0xFF) + (e >> 8)
        } else {
            let (len, sym) = table.canon.slow(self.buf)?;
            len + u32::from(sym)
        };
        self.consume(bits);
        Ok(())
    }

    /// Skips the 63 AC coefficients of one block with `table`.
    #[inline(always)]
    pub(crate) fn ac_skip(&mut self, table: &AcTable) -> Result<(), BadCode> {
        let mut k: u32 = 1;
        // Two lookups per refill: a refill leaves at least 56 bits and a lookup drops at
        // most AC_BITS + 15 = 26, so the second still reads real bits. (The refill is on the
        // critical path of the loop: halving them is most of this loop's speed.)
        loop {
            self.refill();
            k = self.ac_step(table, k)?;
            if k >= 64 {
                return Ok(());
            }
            k = self.ac_step(table, k)?;
            if k >= 64 {
                return Ok(());
            }
        }
    }

    /// One lookup at block position `k` (< 64); needs at least 26 bits held. Returns the
    /// next position.
    #[inline(always)]
    fn ac_step(&mut self, table: &AcTable, k: u32) -> Result<u32, BadCode> {
        let e = table.lut[(self.buf >> (64 - AC_BITS)) as usize];
        if e != 0 {
            if k + (e >> 12 & 63) < 64 {
                self.consume(e & 31);
                Ok(k + (e >> 5 & 127))
            } else {
                self.consume(e >> 18 & 31);
                Ok(k + (e >> 23 & 127))
            }
        } else {
            // A code longer than the window: up to 16 + 15 bits.
            self.refill();
            let (len, sym) = table.canon.slow(self.buf)?;
            self.consume(len + u32::from(sym & 15));
            Ok(k + if sym == 0 {
                EOB
            } else {
                u32::from(sym >> 4) + 1
            })
        }
    }
}

impl Canonical {
    /// The slow path: the code at the top of `buf` through canonical decoding.
    #[cold]
    #[inline(never)]
    fn slow(&self, buf: u64) -> Result<(u32, u8), BadCode> {
        self.decode((buf >> 48) as u32).ok_or(BadCode)
    }
}

/// The example tables of the JPEG standard (ITU T.81 Annex K.3), which Motion-JPEG streams
/// leave out of their frames: `(counts, symbols)` for DC luma, DC chroma, AC luma, AC chroma.
pub(crate) mod standard {
    pub(crate) const DC_LUMA_COUNTS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
    pub(crate) const DC_CHROMA_COUNTS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
    pub(crate) const DC_SYMBOLS: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
    pub(crate) const AC_LUMA_COUNTS: [u8; 16] = [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d];
    pub(crate) const AC_LUMA_SYMBOLS: [u8; 162] = [
        0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51, 0x61,
        0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1, 0x15, 0x52,
        0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18, 0x19, 0x1a, 0x25,
        0x26, 0x27, 0x28, 0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44, 0x45,
        0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63, 0x64,
        0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x83,
        0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99,
        0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6,
        0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3,
        0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8,
        0xe9, 0xea, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
    ];
    pub(crate) const AC_CHROMA_COUNTS: [u8; 16] =
        [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
    pub(crate) const AC_CHROMA_SYMBOLS: [u8; 162] = [
        0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07, 0x61,
        0x71, 0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09, 0x23, 0x33,
        0x52, 0xf0, 0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25, 0xf1, 0x17, 0x18,
        0x19, 0x1a, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x43, 0x44,
        0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57, 0x58, 0x59, 0x5a, 0x63,
        0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75, 0x76, 0x77, 0x78, 0x79, 0x7a,
        0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97,
        0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4,
        0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca,
        0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8, 0xd9, 0xda, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7,
        0xe8, 0xe9, 0xea, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    fn dc_table(counts: &[u8; 16], symbols: &[u8]) -> DcTable {
        let mut t = DcTable::empty();
        t.build(counts, symbols).unwrap();
        t
    }

    fn ac_table(counts: &[u8; 16], symbols: &[u8]) -> AcTable {
        let mut t = AcTable::empty();
        t.build(counts, symbols).unwrap();
        t
    }

    #[test]
    fn standard_tables_are_complete_prefix_codes() {
        for (counts, symbols) in [
            (&standard::DC_LUMA_COUNTS, &standard::DC_SYMBOLS[..]),
            (&standard::DC_CHROMA_COUNTS, &standard::DC_SYMBOLS[..]),
        ] {
            let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
            assert_eq!(total, symbols.len());
            dc_table(counts, symbols);
        }
        for (counts, symbols) in [
            (&standard::AC_LUMA_COUNTS, &standard::AC_LUMA_SYMBOLS[..]),
            (
                &standard::AC_CHROMA_COUNTS,
                &standard::AC_CHROMA_SYMBOLS[..],
            ),
        ] {
            let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
            assert_eq!(total, symbols.len());
            ac_table(counts, symbols);
        }
    }

    #[test]
    fn refuses_oversubscribed_and_bad_dc_symbols() {
        // Three codes of length 1 cannot exist.
        let mut counts = [0u8; 16];
        counts[0] = 3;
        assert_eq!(
            AcTable::empty().build(&counts, &[1, 2, 3]),
            Err(TableError::Oversubscribed)
        );
        counts[0] = 1;
        let mut dc = DcTable::empty();
        assert_eq!(dc.build(&counts, &[12]), Err(TableError::DcSymbol(12)));
        assert_eq!(dc.build(&counts, &[]), Err(TableError::Length));
    }

    #[test]
    fn decodes_dc_differences_and_skips_ac() {
        // DC luma: symbol 3 has code 100 (length 3); +5 = 101, -5 = 010.
        let dc = dc_table(&standard::DC_LUMA_COUNTS, &standard::DC_SYMBOLS);
        let ac = ac_table(&standard::AC_LUMA_COUNTS, &standard::AC_LUMA_SYMBOLS);
        // Block 1: DC 100 101, AC EOB 1010. Block 2: DC 100 010, AC 0x01 (code 00) with one
        // magnitude bit, then EOB; padding 1s.
        let bits = alloc::format!("{}{}{}{}{}", "100101", "1010", "100010", "001", "1010");
        let mut bytes = to_bytes(&bits);
        bytes.extend_from_slice(&[0; 8]);
        let mut r = Bits::new(&bytes, 0);
        assert_eq!(r.block(&dc, &ac), Ok(5));
        assert_eq!(r.block(&dc, &ac), Ok(-5));
        assert_eq!(r.consumed_bits(), bits.len());
    }

    #[test]
    fn long_codes_take_the_slow_path() {
        // AC luma 0xfa (run 15, size 10) has a 16-bit code: 1111111111111110; k: 1 + 16 =
        // 17, then EOB.
        let ac = ac_table(&standard::AC_LUMA_COUNTS, &standard::AC_LUMA_SYMBOLS);
        let bits = alloc::format!("{}{}{}", "1111111111111110", "0000000000", "1010");
        let mut bytes = to_bytes(&bits);
        bytes.extend_from_slice(&[0; 8]);
        let mut r = Bits::new(&bytes, 0);
        r.ac_skip(&ac).unwrap();
        assert_eq!(r.consumed_bits(), bits.len());
        // All ones is no code.
        let bytes = [0xFF; 16];
        let mut r = Bits::new(&bytes, 0);
        assert_eq!(r.ac_skip(&ac), Err(BadCode));
    }

    /// The code of every symbol of a table, as bit strings.
    fn codes(counts: &[u8; 16], symbols: &[u8]) -> alloc::vec::Vec<(u8, String)> {
        let mut out = alloc::vec::Vec::new();
        let (mut code, mut i) = (0u32, 0);
        for len in 1..=16 {
            for _ in 0..counts[len - 1] {
                out.push((symbols[i], alloc::format!("{code:0len$b}")));
                code += 1;
                i += 1;
            }
            code <<= 1;
        }
        out
    }

    #[test]
    fn skipping_many_coefficients_at_once_stops_exactly_at_each_block_end() {
        // Random blocks written with the standard luma AC code: many short coefficients
        // (which the lookup combines), long ones, zero runs, and blocks that end at
        // position 63 without an end-of-block code (where a combined lookup must not run
        // into the next block). After each block the reader must be exactly at its end.
        let counts = &standard::AC_LUMA_COUNTS;
        let table = ac_table(counts, &standard::AC_LUMA_SYMBOLS);
        let code: alloc::collections::BTreeMap<u8, String> =
            codes(counts, &standard::AC_LUMA_SYMBOLS)
                .into_iter()
                .collect();
        let mut seed = 0x1234_5678_9abc_def0u64;
        let mut rand = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let mut stream = String::new();
        let mut ends = alloc::vec::Vec::new();
        for _ in 0..3000 {
            let mut k = 1u64;
            let dense = rand(3) == 0;
            while k < 64 {
                if !dense && rand(6) == 0 {
                    stream += &code[&0x00];
                    break;
                }
                let run = if dense { 0 } else { rand(4).min(63 - k) } as u8;
                let size = if rand(8) == 0 {
                    1 + rand(10)
                } else {
                    1 + rand(2)
                } as u8;
                let sym = run << 4 | size;
                stream += &code[&sym];
                for _ in 0..size {
                    stream.push(if rand(2) == 0 { '0' } else { '1' });
                }
                k += u64::from(run) + 1;
            }
            ends.push(stream.len());
        }
        let mut bytes = to_bytes(&stream);
        bytes.extend_from_slice(&[0; 8]);
        let mut r = Bits::new(&bytes, 0);
        for (b, &end) in ends.iter().enumerate() {
            r.ac_skip(&table).unwrap();
            assert_eq!(r.consumed_bits(), end, "block {b}");
        }
    }

    /// MSB-first bytes of a bit string, padded with 1s as JPEG pads.
    fn to_bytes(bits: &str) -> alloc::vec::Vec<u8> {
        let mut out = alloc::vec![0xFFu8; bits.len().div_ceil(8)];
        for (i, c) in bits.bytes().enumerate() {
            if c == b'0' {
                out[i / 8] &= !(0x80 >> (i % 8));
            }
        }
        out
    }
}
