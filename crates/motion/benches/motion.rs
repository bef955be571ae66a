//! Motion analysis cost per frame against the fastest maintained decoders' cheapest
//! output for the same frame, measured side by side in one run (prints figures, asserts
//! nothing). See docs/BENCHMARKS.md for the command and the figures.

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::Instant;

use espcam_motion::{DcDecoder, DcImage};
use zune_jpeg::zune_core::{bytestream::ZCursor, colorspace::ColorSpace, options::DecoderOptions};

/// Median of `rounds` batches, each timing `batch` calls, in µs per call.
fn median_us(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn time_batch(batch: usize, mut f: impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..batch {
        f();
    }
    t.elapsed().as_secs_f64() * 1e6 / batch as f64
}

fn zune_luma(jpeg: &[u8]) -> usize {
    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::Luma);
    let mut dec = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(jpeg), options);
    dec.decode().map(|p| p.len()).unwrap_or(0)
}

fn jpeg_decoder_scaled(jpeg: &[u8]) -> usize {
    let mut dec = jpeg_decoder::Decoder::new(jpeg);
    if dec.read_info().is_err() {
        return 0;
    }
    let info = dec.info().expect("decoded header");
    let _ = dec.scale(info.width.div_ceil(8), info.height.div_ceil(8));
    dec.decode().map(|p| p.len()).unwrap_or(0)
}

fn main() {
    let rounds: usize = std::env::var("ESPCAM_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(41);
    let fixtures = [
        (
            "VGA virtual camera (4:2:0, RST/MCU)",
            support::virtual_camera_jpeg(640, 480, 7),
        ),
        (
            "VGA noisy photo-like (4:2:2)",
            support::noisy_jpeg(640, 480, 1),
        ),
        (
            "UXGA virtual camera (4:2:0, RST/MCU)",
            support::virtual_camera_jpeg(1600, 1200, 7),
        ),
        (
            "UXGA noisy photo-like (4:2:2)",
            support::noisy_jpeg(1600, 1200, 2),
        ),
    ];
    // Profiling aid: `ESPCAM_BENCH_PROFILE=<fixture index>` only runs the DC decoder on that
    // fixture (for `perf stat` / `perf record`).
    if let Some(i) = std::env::var("ESPCAM_BENCH_PROFILE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        let jpeg = &fixtures[i].1;
        let mut dec = DcDecoder::default();
        let mut img = DcImage::new();
        let n = 100_000_000 / jpeg.len();
        let mut each: Vec<f64> = (0..n)
            .map(|_| {
                time_batch(1, || {
                    dec.decode(black_box(jpeg), &mut img)
                        .expect("fixture decodes")
                })
            })
            .collect();
        each.sort_by(f64::total_cmp);
        println!(
            "{} ({} bytes): {n} decodes, µs min {:.1} p10 {:.1} median {:.1}",
            fixtures[i].0,
            jpeg.len(),
            each[0],
            each[n / 10],
            each[n / 2]
        );
        return;
    }
    println!("median of {rounds} rounds, single thread, µs per frame\n");
    println!(
        "| frame | bytes | DC decode | zune-jpeg luma | jpeg-decoder 1/8 | zune ÷ ours | jpeg-decoder ÷ ours |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, jpeg) in &fixtures {
        let mut dec = DcDecoder::default();
        let mut img = DcImage::new();
        dec.decode(jpeg, &mut img).expect("fixture decodes");
        let batch = (2_000_000 / jpeg.len()).clamp(4, 200);
        let (mut ours, mut zune, mut jd) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            ours.push(time_batch(batch, || {
                dec.decode(black_box(jpeg), &mut img)
                    .expect("fixture decodes");
                black_box(img.pixels());
            }));
            zune.push(time_batch(batch.div_ceil(4), || {
                black_box(zune_luma(black_box(jpeg)));
            }));
            jd.push(time_batch(batch.div_ceil(4), || {
                black_box(jpeg_decoder_scaled(black_box(jpeg)));
            }));
        }
        let (o, z, j) = (
            median_us(&mut ours),
            median_us(&mut zune),
            median_us(&mut jd),
        );
        println!(
            "| {name} | {} | {o:.1} | {z:.1} | {j:.1} | {:.2} | {:.2} |",
            jpeg.len(),
            z / o,
            j / o
        );
    }
}
