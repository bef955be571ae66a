//! Motion analysis cost per frame against the fastest maintained decoders' cheapest output
//! for the same frames, measured side by side in one run. Prints figures, asserts nothing;
//! docs/BENCHMARKS.md has the command and the results.
//!
//! For every fixture (a short sequence of distinct frames, cycled), each round times a batch
//! of each contender in turn, so machine load hits them alike; the figures are the median
//! and the minimum over the rounds, single thread, of the thread's CPU time per frame (what
//! the work costs, even on a shared machine) and of wall-clock time:
//!
//! - **analysis**: `Detector::analyse` (DC decode + background model + hysteresis), the
//!   hub's whole per-frame cost;
//! - **DC decode**: `DcDecoder::decode` alone;
//! - **zune-jpeg luma**: zune-jpeg 0.5 decoding to one grey channel (full IDCT);
//! - **jpeg-decoder 1/8**: jpeg-decoder 0.3 (no rayon) with `scale` to 1/8 (DC-only IDCT,
//!   then colour conversion).
//!
//! `ESPCAM_BENCH_ROUNDS` (default 31) sets the rounds; `ESPCAM_BENCH_PROFILE=<fixture index>`
//! runs only the DC decoder on that fixture, for `perf record` (with
//! `ESPCAM_BENCH_PROFILE_ANALYSIS=1`: the whole analysis).

#[path = "../tests/support/mod.rs"]
mod support;

use std::hint::black_box;
use std::time::Instant;

use espcam_motion::{DcDecoder, DcImage, Detector, MotionConfig};
use zune_jpeg::zune_core::{bytestream::ZCursor, colorspace::ColorSpace, options::DecoderOptions};

/// Median and minimum of per-call times, µs.
fn stats(samples: &mut [f64]) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    (samples[samples.len() / 2], samples[0])
}

/// This thread's CPU time, ns: unlike wall time, it does not grow while other processes
/// have the core (the machine is shared), so its median is the cost of the work itself.
#[allow(unsafe_code)]
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one `timespec` through the valid pointer it is given.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// One batch's time per call, µs.
#[derive(Clone, Copy)]
struct Sample {
    wall: f64,
    cpu: f64,
}

/// Times `batch` calls of `f(i)` (i counting from `*next`).
fn time_batch(batch: usize, next: &mut usize, mut f: impl FnMut(usize)) -> Sample {
    let cpu = thread_cpu_ns();
    let t = Instant::now();
    for _ in 0..batch {
        f(*next);
        *next += 1;
    }
    Sample {
        wall: t.elapsed().as_secs_f64() * 1e6 / batch as f64,
        cpu: (thread_cpu_ns() - cpu) as f64 / 1e3 / batch as f64,
    }
}

/// (CPU median, CPU min, wall median, wall min), µs.
fn summary(samples: &[Sample]) -> (f64, f64, f64, f64) {
    let (c, c_min) = stats(&mut samples.iter().map(|s| s.cpu).collect::<Vec<_>>());
    let (w, w_min) = stats(&mut samples.iter().map(|s| s.wall).collect::<Vec<_>>());
    (c, c_min, w, w_min)
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
    let Some(info) = dec.info() else { return 0 };
    let _ = dec.scale(info.width.div_ceil(8), info.height.div_ceil(8));
    dec.decode().map(|p| p.len()).unwrap_or(0)
}

struct Fixture {
    name: &'static str,
    frames: Vec<Vec<u8>>,
}

fn fixtures() -> Vec<Fixture> {
    let vcam = |w, h| {
        (0..6)
            .map(|p| support::virtual_camera_jpeg(w, h, p * 5))
            .collect()
    };
    // The same scene, a fresh noise draw per frame, as a still camera sends.
    let noisy = |w, h, sigma| {
        (0..4)
            .map(|k| {
                let mut rng = support::Rng::new(100 + k);
                let pic = support::photo_like(w, h, 1).with_noise(sigma, &mut rng);
                support::encode(
                    &pic,
                    support::esp_quality(12),
                    support::Sampling::S422,
                    None,
                )
            })
            .collect()
    };
    vec![
        Fixture {
            name: "VGA virtual camera (4:2:0, RST every MCU)",
            frames: vcam(640, 480),
        },
        Fixture {
            name: "VGA noisy photo-like (4:2:2, σ 2)",
            frames: noisy(640, 480, 2.0),
        },
        Fixture {
            name: "VGA very noisy photo-like (4:2:2, σ 6)",
            frames: noisy(640, 480, 6.0),
        },
        Fixture {
            name: "UXGA virtual camera (4:2:0, RST every MCU)",
            frames: vcam(1600, 1200),
        },
        Fixture {
            name: "UXGA noisy photo-like (4:2:2, σ 2)",
            frames: noisy(1600, 1200, 2.0),
        },
    ]
}

fn main() {
    let rounds: usize = std::env::var("ESPCAM_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(31)
        .max(1);
    let fixtures = fixtures();
    if let Some(i) = std::env::var("ESPCAM_BENCH_PROFILE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        profile(&fixtures[i.min(fixtures.len() - 1)]);
        return;
    }
    println!("{rounds} rounds, single thread, µs per frame: thread CPU time median (min)\n");
    let header = "| frames | mean bytes | analysis | DC decode | zune-jpeg luma | jpeg-decoder 1/8 | zune ÷ analysis | jpeg-decoder ÷ analysis |\n|---|---|---|---|---|---|---|---|";
    println!("{header}");
    let mut wall_rows = Vec::new();
    let mut vga_analysis = Vec::new();
    for fx in &fixtures {
        let frames = &fx.frames;
        let n = frames.len();
        let mean_bytes = frames.iter().map(Vec::len).sum::<usize>() / n;
        let mut detector = Detector::new(MotionConfig::default()).expect("default config");
        let mut dec = DcDecoder::default();
        let mut img = DcImage::new();
        let mut t_ms = 0u64;
        // Warm up every contender (tables, buffers, page faults).
        for f in frames {
            detector.analyse(f, t_ms).expect("fixture decodes");
            t_ms += 200;
            dec.decode(f, &mut img).expect("fixture decodes");
            black_box(zune_luma(f));
            black_box(jpeg_decoder_scaled(f));
        }
        let batch = (3_000_000 / mean_bytes).clamp(n, 240);
        let slow_batch = (batch / 4).max(n);
        let (mut an, mut dc, mut zu, mut jd) = (vec![], vec![], vec![], vec![]);
        let mut next = 0;
        for _ in 0..rounds {
            an.push(time_batch(batch, &mut next, |i| {
                t_ms += 200;
                let a = detector.analyse(black_box(&frames[i % n]), t_ms);
                black_box(a.map(|a| a.score).unwrap_or(0.0));
            }));
            dc.push(time_batch(batch, &mut next, |i| {
                black_box(dec.decode(black_box(&frames[i % n]), &mut img).is_ok());
                black_box(img.pixels());
            }));
            zu.push(time_batch(slow_batch, &mut next, |i| {
                black_box(zune_luma(black_box(&frames[i % n])));
            }));
            jd.push(time_batch(slow_batch, &mut next, |i| {
                black_box(jpeg_decoder_scaled(black_box(&frames[i % n])));
            }));
        }
        let [a, d, z, j] = [&an, &dc, &zu, &jd].map(|s| summary(s));
        println!(
            "| {} | {mean_bytes} | {:.0} ({:.0}) | {:.0} ({:.0}) | {:.0} ({:.0}) | {:.0} ({:.0}) | {:.2} | {:.2} |",
            fx.name,
            a.0,
            a.1,
            d.0,
            d.1,
            z.0,
            z.1,
            j.0,
            j.1,
            z.0 / a.0,
            j.0 / a.0
        );
        wall_rows.push(format!(
            "| {} | {mean_bytes} | {:.0} ({:.0}) | {:.0} ({:.0}) | {:.0} ({:.0}) | {:.0} ({:.0}) | {:.2} | {:.2} |",
            fx.name,
            a.2,
            a.3,
            d.2,
            d.3,
            z.2,
            z.3,
            j.2,
            j.3,
            z.3 / a.3,
            j.3 / a.3
        ));
        if fx.name.starts_with("VGA") {
            vga_analysis.push((fx.name, a.0));
        }
    }
    println!("\nwall-clock time median (min); ratios of the minima\n");
    println!("{header}");
    for row in wall_rows {
        println!("{row}");
    }
    println!("\n50 cameras × 5 analysed frames/s = 250 analyses/s (CPU time median):");
    for (name, a) in vga_analysis {
        println!("- {name}: {:.1} % of one core", 250.0 * a / 1e6 * 100.0);
    }
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        println!("\nload average at the end: {}", load.trim());
    }
}

fn profile(fx: &Fixture) {
    if std::env::var_os("ESPCAM_BENCH_PROFILE_ANALYSIS").is_some() {
        let mut d = Detector::new(MotionConfig::default()).expect("default config");
        let n = 100_000_000 / fx.frames.iter().map(Vec::len).sum::<usize>() * fx.frames.len();
        for i in 0..n {
            let a = d.analyse(&fx.frames[i % fx.frames.len()], i as u64 * 200);
            black_box(a.map(|a| a.score).unwrap_or(0.0));
        }
        return;
    }
    let mut dec = DcDecoder::default();
    let mut img = DcImage::new();
    let bytes: usize = fx.frames.iter().map(Vec::len).sum();
    let n = 100_000_000 / bytes * fx.frames.len();
    let mut next = 0;
    let mut each: Vec<f64> = (0..n)
        .map(|_| {
            time_batch(1, &mut next, |i| {
                dec.decode(&fx.frames[i % fx.frames.len()], &mut img)
                    .expect("fixture decodes");
            })
            .wall
        })
        .collect();
    each.sort_by(f64::total_cmp);
    println!(
        "{} ({} bytes mean): {n} decodes, µs min {:.1} p10 {:.1} median {:.1}",
        fx.name,
        bytes / fx.frames.len(),
        each[0],
        each[n / 10],
        each[n / 2]
    );
}
