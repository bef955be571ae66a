//! Huffman tables and the bit reader of the DC-only decoder: the hot loop of the crate.
//!
//! Why it exists: to learn the DC coefficients of a baseline JPEG every AC coefficient must
//! still be *found* (Huffman codes have no byte alignment), but its value never matters.
//! So an AC table here does not answer "which symbol?" but "how many bits does this whole
//! coefficient take, and how far does it move in the block?": one lookup of the next
//! [`LUT_BITS`] bits drops the code *and* its magnitude bits at once. Only codes longer than
//! [`LUT_BITS`] (rare: the long codes are the improbable ones) take the canonical slow path.
//!
//! The reader works on *destuffed* entropy-coded bytes (`0xFF 0x00` already turned into
//! `0xFF`, restart markers already removed, see `dc.rs`), so a refill is one unaligned 8-byte
//! load with no marker checks. It must never index out of bounds: reads past the end yield
//! zero bits, and the caller checks afterwards whether more bits were used than existed.

/// Bits looked up at once. 9 bits cover the codes of the standard tables that carry most of
/// the probability mass, while the eight tables a frame may define (1 KiB of lookup each)
/// stay in the L1 cache.
pub(crate) const LUT_BITS: u32 = 9;
const LUT_SIZE: usize = 1 << LUT_BITS;

/// A table of one class, ready for decoding.
#[derive(Clone)]
pub(crate) struct Table {
    /// Indexed by the next [`LUT_BITS`] bits of the stream; 0 = the code is longer (or
    /// invalid): use the slow path.
    ///
    /// - DC class: `code length | size << 8`, where `size` is the number of magnitude bits
    ///   that follow (the DC symbol itself).
    /// - AC class: `code length + size | advance << 8`: the bits of the whole coefficient,
    ///   and how many positions it moves in the block (`run + 1`; [`EOB`] for end of block).
    lut: [u16; LUT_SIZE],
    /// Canonical decoding for codes longer than [`LUT_BITS`]: `maxcode[l]` is one past the
    /// last code of length `l` (-1 when there is none), `valoffset[l]` maps a code of length
    /// `l` to its index in `values`.
    maxcode: [i32; 17],
    valoffset: [i32; 17],
    values: [u8; 256],
}

/// The advance of the end-of-block symbol: past any position, so one compare ends a block.
pub(crate) const EOB: u16 = 64;

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

impl Table {
    /// An empty table (decodes nothing: every lookup takes the slow path and fails).
    pub(crate) const fn empty() -> Self {
        Self {
            lut: [0; LUT_SIZE],
            maxcode: [-1; 17],
            valoffset: [0; 17],
            values: [0; 256],
        }
    }

    /// Builds the table from `counts` (codes of each length 1..=16) and `symbols`, as a
    /// `DHT` segment carries them. `ac` selects the class.
    pub(crate) fn build(
        &mut self,
        ac: bool,
        counts: &[u8; 16],
        symbols: &[u8],
    ) -> Result<(), TableError> {
        let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
        if total > 256 || symbols.len() != total {
            return Err(TableError::Length);
        }
        if !ac && let Some(&s) = symbols.iter().find(|&&s| s > 11) {
            return Err(TableError::DcSymbol(s));
        }
        self.lut = [0; LUT_SIZE];
        self.maxcode = [-1; 17];
        self.values = [0; 256];
        self.values[..total].copy_from_slice(symbols);
        let mut code: u32 = 0;
        let mut index: usize = 0;
        for len in 1..=16u32 {
            let n = u32::from(counts[len as usize - 1]);
            self.valoffset[len as usize] = index as i32 - code as i32;
            for _ in 0..n {
                let sym = symbols[index];
                if len <= LUT_BITS {
                    let entry = if ac {
                        let size = u32::from(sym & 15);
                        let advance = if sym == 0 {
                            u32::from(EOB)
                        } else {
                            u32::from(sym >> 4) + 1
                        };
                        (len + size) | advance << 8
                    } else {
                        len | u32::from(sym) << 8
                    };
                    let shift = LUT_BITS - len;
                    let first = (code << shift) as usize;
                    // `code < 2^len` is checked below before the next length, so the range
                    // stays inside the table.
                    if let Some(slots) = self.lut.get_mut(first..first + (1 << shift)) {
                        slots.fill(entry as u16);
                    }
                }
                code += 1;
                index += 1;
            }
            if n > 0 {
                self.maxcode[len as usize] = code as i32;
            }
            if code > 1 << len {
                return Err(TableError::Oversubscribed);
            }
            code <<= 1;
        }
        Ok(())
    }

    /// The slow path: a code longer than [`LUT_BITS`] at the top of `buf`. Returns the code
    /// length and the symbol, or `None` for a bit pattern that is no code of this table.
    #[cold]
    #[inline(never)]
    fn decode_long(&self, buf: u64) -> Option<(u32, u8)> {
        let top = (buf >> 48) as i32;
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

/// A bad Huffman code in the entropy-coded data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadCode;

/// MSB-first bit reader over destuffed bytes.
pub(crate) struct Bits<'a> {
    data: &'a [u8],
    /// Next byte to load.
    pos: usize,
    /// Unconsumed bits, left-aligned; the low `64 - n` bits are zero.
    buf: u64,
    /// Number of valid bits in `buf`.
    n: u32,
}

impl<'a> Bits<'a> {
    /// A reader starting at byte `start` of `data`.
    pub(crate) fn new(data: &'a [u8], start: usize) -> Self {
        Self {
            data,
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
        let word = self
            .data
            .get(self.pos..self.pos + 8)
            .and_then(|s| <[u8; 8]>::try_from(s).ok())
            .map_or(0, u64::from_be_bytes);
        self.buf |= word >> self.n;
        self.pos += (63 - self.n as usize) >> 3;
        self.n |= 56;
    }

    #[inline(always)]
    fn consume(&mut self, bits: u32) {
        self.buf <<= bits;
        self.n -= bits;
    }

    /// Decodes a DC difference with `table`.
    #[inline(always)]
    pub(crate) fn dc_diff(&mut self, table: &Table) -> Result<i32, BadCode> {
        self.refill();
        let e = u32::from(table.lut[(self.buf >> (64 - LUT_BITS)) as usize]);
        let (len, size) = if e != 0 {
            (e & 0xFF, e >> 8)
        } else {
            let (len, sym) = table.decode_long(self.buf).ok_or(BadCode)?;
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
    pub(crate) fn dc_skip(&mut self, table: &Table) -> Result<(), BadCode> {
        self.refill();
        let e = u32::from(table.lut[(self.buf >> (64 - LUT_BITS)) as usize]);
        let bits = if e != 0 {
            (e & 0xFF) + (e >> 8)
        } else {
            let (len, sym) = table.decode_long(self.buf).ok_or(BadCode)?;
            len + u32::from(sym)
        };
        self.consume(bits);
        Ok(())
    }

    /// Skips the 63 AC coefficients of one block with `table`.
    #[inline(always)]
    pub(crate) fn ac_skip(&mut self, table: &Table) -> Result<(), BadCode> {
        let mut k: u32 = 1;
        while k < 64 {
            // After a refill at least 56 bits are held, and one coefficient takes at most
            // 16 + 15 bits: one refill per coefficient always suffices.
            self.refill();
            let e = u32::from(table.lut[(self.buf >> (64 - LUT_BITS)) as usize]);
            if e != 0 {
                self.consume(e & 0xFF);
                k += e >> 8;
            } else {
                let (len, sym) = table.decode_long(self.buf).ok_or(BadCode)?;
                self.consume(len + u32::from(sym & 15));
                k += if sym == 0 {
                    u32::from(EOB)
                } else {
                    u32::from(sym >> 4) + 1
                };
            }
        }
        Ok(())
    }
}

/// The example tables of the JPEG standard (ITU T.81 Annex K.3), which Motion-JPEG streams
/// leave out of their frames: `(counts, symbols)` for DC luma, DC chroma, AC luma, AC chroma.
pub(crate) mod standard {
    pub(crate) const DC_LUMA_COUNTS: [u8; 16] = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0];
    pub(crate) const DC_CHROMA_COUNTS: [u8; 16] = [0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0];
    pub(crate) const DC_SYMBOLS: [u8; 12] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
    pub(crate) const AC_LUMA_COUNTS: [u8; 16] =
        [0, 2, 1, 3, 3, 2, 4, 3, 5, 5, 4, 4, 0, 0, 1, 0x7d];
    pub(crate) const AC_LUMA_SYMBOLS: [u8; 162] = [
        0x01, 0x02, 0x03, 0x00, 0x04, 0x11, 0x05, 0x12, 0x21, 0x31, 0x41, 0x06, 0x13, 0x51,
        0x61, 0x07, 0x22, 0x71, 0x14, 0x32, 0x81, 0x91, 0xa1, 0x08, 0x23, 0x42, 0xb1, 0xc1,
        0x15, 0x52, 0xd1, 0xf0, 0x24, 0x33, 0x62, 0x72, 0x82, 0x09, 0x0a, 0x16, 0x17, 0x18,
        0x19, 0x1a, 0x25, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x34, 0x35, 0x36, 0x37, 0x38, 0x39,
        0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56, 0x57,
        0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74, 0x75,
        0x76, 0x77, 0x78, 0x79, 0x7a, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8a, 0x92,
        0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
        0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba, 0xc2, 0xc3,
        0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6, 0xd7, 0xd8,
        0xd9, 0xda, 0xe1, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf1, 0xf2,
        0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
    ];
    pub(crate) const AC_CHROMA_COUNTS: [u8; 16] =
        [0, 2, 1, 2, 4, 4, 3, 4, 7, 5, 4, 4, 0, 1, 2, 0x77];
    pub(crate) const AC_CHROMA_SYMBOLS: [u8; 162] = [
        0x00, 0x01, 0x02, 0x03, 0x11, 0x04, 0x05, 0x21, 0x31, 0x06, 0x12, 0x41, 0x51, 0x07,
        0x61, 0x71, 0x13, 0x22, 0x32, 0x81, 0x08, 0x14, 0x42, 0x91, 0xa1, 0xb1, 0xc1, 0x09,
        0x23, 0x33, 0x52, 0xf0, 0x15, 0x62, 0x72, 0xd1, 0x0a, 0x16, 0x24, 0x34, 0xe1, 0x25,
        0xf1, 0x17, 0x18, 0x19, 0x1a, 0x26, 0x27, 0x28, 0x29, 0x2a, 0x35, 0x36, 0x37, 0x38,
        0x39, 0x3a, 0x43, 0x44, 0x45, 0x46, 0x47, 0x48, 0x49, 0x4a, 0x53, 0x54, 0x55, 0x56,
        0x57, 0x58, 0x59, 0x5a, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x73, 0x74,
        0x75, 0x76, 0x77, 0x78, 0x79, 0x7a, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89,
        0x8a, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9a, 0xa2, 0xa3, 0xa4, 0xa5,
        0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xb2, 0xb3, 0xb4, 0xb5, 0xb6, 0xb7, 0xb8, 0xb9, 0xba,
        0xc2, 0xc3, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xca, 0xd2, 0xd3, 0xd4, 0xd5, 0xd6,
        0xd7, 0xd8, 0xd9, 0xda, 0xe2, 0xe3, 0xe4, 0xe5, 0xe6, 0xe7, 0xe8, 0xe9, 0xea, 0xf2,
        0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa,
    ];
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(ac: bool, counts: &[u8; 16], symbols: &[u8]) -> Table {
        let mut t = Table::empty();
        t.build(ac, counts, symbols).unwrap();
        t
    }

    #[test]
    fn standard_tables_are_complete_prefix_codes() {
        for (ac, counts, symbols) in [
            (false, &standard::DC_LUMA_COUNTS, &standard::DC_SYMBOLS[..]),
            (false, &standard::DC_CHROMA_COUNTS, &standard::DC_SYMBOLS[..]),
            (true, &standard::AC_LUMA_COUNTS, &standard::AC_LUMA_SYMBOLS[..]),
            (true, &standard::AC_CHROMA_COUNTS, &standard::AC_CHROMA_SYMBOLS[..]),
        ] {
            let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
            assert_eq!(total, symbols.len());
            table(ac, counts, symbols);
        }
    }

    #[test]
    fn refuses_oversubscribed_and_bad_dc_symbols() {
        let mut t = Table::empty();
        // Three codes of length 1 cannot exist.
        let mut counts = [0u8; 16];
        counts[0] = 3;
        assert_eq!(
            t.build(true, &counts, &[1, 2, 3]),
            Err(TableError::Oversubscribed)
        );
        counts[0] = 1;
        assert_eq!(t.build(false, &counts, &[12]), Err(TableError::DcSymbol(12)));
        assert_eq!(t.build(false, &counts, &[]), Err(TableError::Length));
    }

    #[test]
    fn decodes_dc_differences_and_skips_ac() {
        // DC luma: symbol 3 has code 100 (length 3); +5 = 101, -5 = 010.
        let dc = table(false, &standard::DC_LUMA_COUNTS, &standard::DC_SYMBOLS);
        let ac = table(true, &standard::AC_LUMA_COUNTS, &standard::AC_LUMA_SYMBOLS);
        // 100 101 | 100 010 | then AC: 0x01 (code 00) + 1 bit, EOB (1010) → padding 1s.
        // bits: 100101 100010 00 1 1010 1111...
        let bits = "1001011000100011010";
        let mut bytes = alloc_bytes(bits);
        bytes.extend_from_slice(&[0; 8]);
        let mut r = Bits::new(&bytes, 0);
        assert_eq!(r.dc_diff(&dc), Ok(5));
        assert_eq!(r.dc_diff(&dc), Ok(-5));
        r.ac_skip(&ac).unwrap();
        assert_eq!(r.consumed_bits(), bits.len());
    }

    #[test]
    fn long_codes_take_the_slow_path() {
        // AC luma 0xfa (run 15, size 10) has a 16-bit code: 1111111111111110.
        let ac = table(true, &standard::AC_LUMA_COUNTS, &standard::AC_LUMA_SYMBOLS);
        // 0xfa then ten magnitude bits, then 0x01+1 bit up to k... then EOB.
        // k: 1 + 16 = 17, then EOB.
        let bits = "1111111111111110".to_string() + "0000000000" + "1010";
        let mut bytes = alloc_bytes(&bits);
        bytes.extend_from_slice(&[0; 8]);
        let mut r = Bits::new(&bytes, 0);
        r.ac_skip(&ac).unwrap();
        assert_eq!(r.consumed_bits(), bits.len());
        // All ones is no code.
        let bytes = [0xFF; 16];
        let mut r = Bits::new(&bytes, 0);
        assert_eq!(r.ac_skip(&ac), Err(BadCode));
    }

    fn alloc_bytes(bits: &str) -> alloc::vec::Vec<u8> {
        let mut out = alloc::vec::Vec::new();
        let padded = alloc::format!("{bits:1<width$}", width = bits.len().div_ceil(8) * 8);
        for chunk in padded.as_bytes().chunks(8) {
            let s = core::str::from_utf8(chunk).unwrap();
            out.push(u8::from_str_radix(s, 2).unwrap());
        }
        out
    }
}
