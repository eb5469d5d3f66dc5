//! The log pipeline's speed: the redactor against the same rules applied as separate regex
//! replace passes (how log shippers apply them), and the whole path from a pipe to the file.
//!
//! `cargo bench --bench logs`; results and the machine are recorded in BENCHMARKS.md. The
//! redaction figures are per CPU-second of the benchmark thread (`CLOCK_THREAD_CPUTIME_ID`), so
//! other load on the machine does not lower them; each 256 KiB batch is copied into a reused
//! buffer before it is timed, as the capture's `read()` does. The pipe-to-file figure is
//! wall-clock time, child process and kernel included.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use regex::bytes::Regex;
use warden::logs::corpus;
use warden::logs::redact::{Redactor, Sets, State};

/// CPU time this thread has used, to the nanosecond.
fn cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Whole-line batches of about `size` bytes, as the capture hands them to the redactor.
fn batches(text: &[u8], size: usize) -> Vec<&[u8]> {
    let mut v = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let end = (at + size).min(text.len());
        let end = memchr::memrchr(b'\n', &text[at..end]).map_or(text.len(), |i| at + i + 1);
        v.push(&text[at..end]);
        at = end;
    }
    v
}

/// The CPU time of `iters` runs of `f` over every batch. Each batch is first copied into a
/// reused buffer, untimed, as the capture's `read()` from the pipe does, so `f` finds it in
/// the cache the way the redactor does in service.
fn timed(iters: u64, parts: &[&[u8]], mut f: impl FnMut(&[u8]) -> usize) -> Duration {
    let mut buf = Vec::with_capacity(512 << 10);
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        for p in parts {
            buf.clear();
            buf.extend_from_slice(p);
            let t = cpu();
            std::hint::black_box(f(&buf));
            total += cpu() - t;
        }
    }
    total
}

/// The same rules, one `replace_all` pass each.
fn baseline() -> Vec<Regex> {
    [
        r"[1-9]\d{5}(18|19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])\d{3}[\dXx]",
        r"((\+|00)86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}",
        r"[A-Za-z0-9._%+-]+(@|%40)[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
        r"\d([ -]?\d){12,18}",
        r"(hf_|api_org_)[A-Za-z]{34}",
        r"sk-[A-Za-z0-9_-]{20,}",
        r"(A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}",
        r"gh[pousr]_[A-Za-z0-9]{36}|github_pat_\w{82}",
        r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*",
        r"(?i)(bearer|basic)[ \t]+[A-Za-z0-9._~+/-]{8,}=*",
        r"://[^/\s:@]+:[^/\s@]+@",
        r"(?s)-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----",
        r#"(?i)(api[_-]?key|secret|token|passw(or)?d|pwd)["']?\s*[:=]\s*["']?[^\s"',;&]{6,}"#,
        r#"\?[^\s"]+|(prompt|output): '(?:[^'\\]|\\.)*'|prompt="(?:[^"\\]|\\.)*"|"(prompt|negative_prompt|messages|content|text|input)"\s*:\s*"(?:[^"\\]|\\.)*""#,
    ]
    .iter()
    .map(|p| Regex::new(p).unwrap())
    .collect()
}

/// The 14 passes over `text`, one after the other.
fn multipass(res: &[Regex], text: &[u8]) -> usize {
    let mut cur = Cow::Borrowed(text);
    for re in res {
        if let Cow::Owned(o) = re.replace_all(&cur, &b"[REDACTED]"[..]) {
            cur = Cow::Owned(o);
        }
    }
    cur.len()
}

fn redaction(c: &mut Criterion) {
    let text = corpus::mixed_log(7, 64 << 20);
    let parts = batches(&text, 256 << 10);
    let default_sets = Sets::from_policy(&[
        warden::policy::schema::RedactSet::Prompts,
        warden::policy::schema::RedactSet::Secrets,
        warden::policy::schema::RedactSet::Pii,
    ]);
    let mut g = c.benchmark_group("redact");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Bytes(text.len() as u64));
    let mut out = Vec::with_capacity(512 << 10);
    let runs = [
        ("warden", Redactor::new(default_sets, &[]).unwrap()),
        (
            "warden-portable",
            Redactor::new(default_sets, &[])
                .unwrap()
                .with_portable_vectors(),
        ),
        ("warden-with-ip", Redactor::new(Sets::ALL, &[]).unwrap()),
    ];
    for (name, red) in &runs {
        g.bench_function(*name, |b| {
            b.iter_custom(|iters| {
                let mut st = State::default();
                timed(iters, &parts, |p| {
                    out.clear();
                    red.redact(&mut st, p, &mut out);
                    out.len()
                })
            });
        });
    }
    // The same text straight from a 64 MiB array, which is not in any cache: how much main
    // memory's speed takes off.
    let red = &runs[0].1;
    g.bench_function("warden-from-memory", |b| {
        b.iter_custom(|iters| {
            let t = cpu();
            for _ in 0..iters {
                let mut st = State::default();
                for p in &parts {
                    out.clear();
                    red.redact(&mut st, p, &mut out);
                    std::hint::black_box(out.len());
                }
            }
            cpu() - t
        });
    });
    // The baseline is slow: a quarter of the text is enough.
    let small = &text[..text.len() / 4];
    let small = &small[..memchr::memrchr(b'\n', small).map_or(0, |i| i + 1)];
    let small_parts = batches(small, 256 << 10);
    let res = baseline();
    g.throughput(Throughput::Bytes(small.len() as u64));
    // Each pass over a whole batch: regular expressions at their fastest.
    g.bench_function("regex-multipass", |b| {
        b.iter_custom(|iters| timed(iters, &small_parts, |p| multipass(&res, p)));
    });
    // How a log shipper applies them: the 14 passes on each line (each event) in turn.
    g.bench_function("regex-multipass-per-line", |b| {
        b.iter_custom(|iters| {
            timed(iters, &small_parts, |p| {
                p.split_inclusive(|b| *b == b'\n')
                    .map(|line| multipass(&res, line))
                    .sum()
            })
        });
    });
    g.finish();
}

fn pipeline(c: &mut Criterion) {
    let text = corpus::mixed_log(11, 256 << 20);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input.log");
    std::fs::write(&input, &text).unwrap();
    let mut g = c.benchmark_group("pipeline");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Bytes(text.len() as u64));
    g.bench_function("pipe-to-file", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for i in 0..iters {
                let logs = dir.path().join(format!("logs{i}"));
                std::fs::create_dir_all(&logs).unwrap();
                let cfg = warden::logs::Config::for_dir(&logs, "bench");
                let t = Instant::now();
                let cap = warden::logs::capture::Capture::start(&cfg, false).unwrap();
                let (out, err) = cap.stdio().unwrap();
                let mut child = std::process::Command::new("cat")
                    .arg(&input)
                    .stdout(out)
                    .stderr(err)
                    .spawn()
                    .unwrap();
                child.wait().unwrap();
                drop(cap);
                total += t.elapsed();
                std::fs::remove_dir_all(&logs).unwrap();
            }
            total
        });
    });
    g.finish();
}

criterion_group!(benches, redaction, pipeline);
criterion_main!(benches);
