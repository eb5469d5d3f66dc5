//! Fuzz driver for warden's parsers, on stable Rust: the corpus is run first, then random
//! mutations of it for a bounded time. A panic (or an input slower than the limit) is saved to
//! `fuzz/artifacts/` and fails the run.
//!
//!     fuzz_pickle [--seconds N] [--iterations N] [--seed N] [CORPUS_DIR_OR_FILE...]

pub mod mutate;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mutate::{Rng, mutate};

/// Inputs larger than this are not generated.
const MAX_LEN: usize = 1 << 20;
/// Corpus files larger than this are cut.
const MAX_SEED: usize = 4 << 20;
const SLOW: Duration = Duration::from_secs(5);

fn load(p: &Path, out: &mut Vec<Vec<u8>>) {
    if p.is_dir() {
        if let Ok(rd) = std::fs::read_dir(p) {
            let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
            entries.sort();
            for e in entries {
                load(&e, out);
            }
        }
    } else if let Ok(mut b) = std::fs::read(p) {
        b.truncate(MAX_SEED);
        out.push(b);
    }
}

fn save(name: &str, data: &[u8]) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts");
    let _ = std::fs::create_dir_all(&dir);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    let p = dir.join(format!("{name}-{h:016x}.bin"));
    let _ = std::fs::write(&p, data);
    p
}

/// Runs `target` on the corpus and then on mutations; exits 1 on a panic or a hang.
pub fn main(name: &str, seeds: &[&[u8]], target: fn(&[u8])) {
    let mut seconds = 10u64;
    let mut iterations = u64::MAX;
    let mut seed = 0x5eed_u64;
    let mut corpus: Vec<Vec<u8>> = seeds.iter().map(|s| s.to_vec()).collect();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--seconds" => {
                seconds = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--seconds N")
            }
            "--iterations" => {
                iterations = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .expect("--iterations N")
            }
            "--seed" => seed = args.next().and_then(|v| v.parse().ok()).expect("--seed N"),
            p => load(Path::new(p), &mut corpus),
        }
    }
    std::panic::set_hook(Box::new(|info| eprintln!("{info}")));
    let run = |data: &[u8]| -> bool {
        let t = Instant::now();
        let ok = std::panic::catch_unwind(|| target(data)).is_ok();
        if !ok {
            let p = save(name, data);
            eprintln!(
                "{name}: PANIC on an input of {} bytes, saved to {}",
                data.len(),
                p.display()
            );
            return false;
        }
        if t.elapsed() > SLOW {
            let p = save(name, data);
            eprintln!(
                "{name}: an input of {} bytes took {:?}, saved to {}",
                data.len(),
                t.elapsed(),
                p.display()
            );
            return false;
        }
        true
    };
    for c in &corpus {
        if !run(c) {
            std::process::exit(1);
        }
    }
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut rng = Rng(seed | 1);
    let mut n = 0u64;
    while n < iterations && Instant::now() < deadline {
        let a = rng.below(corpus.len());
        let b = rng.below(corpus.len());
        let mut data = corpus[a].clone();
        if data.len() > 64 << 10 && rng.below(2) == 0 {
            data.truncate(64 << 10);
        }
        mutate(&mut rng, &mut data, &corpus[b], MAX_LEN);
        if !run(&data) {
            std::process::exit(1);
        }
        n += 1;
    }
    println!(
        "{name}: {} corpus inputs and {n} mutations, no panic",
        corpus.len()
    );
}
