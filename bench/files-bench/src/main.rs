//! `files-bench jpeg OUT` writes a 1000×1000 JPEG with some texture;
//! `files-bench ceiling FILE THREADS SECONDS` prints how many times per
//! second `THREADS` threads make Sen's thumbnails of FILE with the same
//! renderer the job uses (decode, two sizes, JPEG encode): the ceiling the
//! job throughput is compared against.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("jpeg") => {
            let img = image::RgbImage::from_fn(1000, 1000, |x, y| {
                image::Rgb([
                    (x * 7 % 256) as u8,
                    (y * 3 % 256) as u8,
                    ((x ^ y) % 256) as u8,
                ])
            });
            img.save_with_format(&args[2], image::ImageFormat::Jpeg)
                .expect("write jpeg");
        }
        Some("ceiling") => {
            let bytes = std::fs::read(&args[2]).expect("read jpeg");
            let threads: usize = args[3].parse().expect("threads");
            let secs: u64 = args[4].parse().expect("seconds");
            let deadline = Instant::now() + Duration::from_secs(secs);
            let started = Instant::now();
            let done: usize = std::thread::scope(|s| {
                let hs: Vec<_> = (0..threads)
                    .map(|_| {
                        s.spawn(|| {
                            let mut n = 0;
                            while Instant::now() < deadline {
                                sen_files::thumbnails::render(
                                    &bytes,
                                    40_000_000,
                                    &[128, 512],
                                    sen_files::thumbnails::Format::Jpeg,
                                )
                                .expect("render");
                                n += 1;
                            }
                            n
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).sum()
            });
            println!("{:.1}", done as f64 / started.elapsed().as_secs_f64());
        }
        _ => {
            eprintln!("usage: files-bench jpeg OUT | ceiling FILE THREADS SECONDS");
            std::process::exit(2);
        }
    }
}
