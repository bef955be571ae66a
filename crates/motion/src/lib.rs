//! Motion detection on JPEG frames, without decoding them.
#![no_std]
#![warn(missing_docs)]

extern crate alloc;

pub mod dc;
mod huffman;

pub use dc::{DcDecoder, DcImage, DecodeError, DecoderLimits, Unsupported, decode_dc};
