//! The log pipeline's speed: the redactor against the same rules applied as separate regex
//! replace passes (how log shippers apply them), and the whole path from a pipe to the file.
//!
//! `cargo bench --bench logs`; results and the machine are recorded in BENCHMARKS.md. The
//! redaction figures are per CPU-second of the benchmark thread (from the kernel's scheduler
//! statistics), so other load on the machine does not lower them; the pipe-to-file figure is
//! wall-clock time, child process and kernel included.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use regex::bytes::Regex;
use warden::logs::corpus;
use warden::logs::redact::{Redactor, Sets, State};

/// CPU time this thread has used.
fn cpu() -> Duration {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    Duration::from_nanos(
        s.split_whitespace()
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    )
}

/// Runs `f` `iters` times and returns the CPU time it took.
fn cpu_time(iters: u64, mut f: impl FnMut() -> usize) -> Duration {
    let t = cpu();
    for _ in 0..iters {
        std::hint::black_box(f());
    }
    cpu() - t
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

fn redaction(c: &mut Criterion) {
    let text = corpus::mixed_log(7, 64 << 20);
    let parts = batches(&text, 256 << 10);
    let red = Redactor::new(
        Sets::from_policy(&[
            warden::policy::schema::RedactSet::Prompts,
            warden::policy::schema::RedactSet::Secrets,
            warden::policy::schema::RedactSet::Pii,
        ]),
        &[],
    )
    .unwrap();
    let mut g = c.benchmark_group("redact");
    g.sample_size(10).measurement_time(Duration::from_secs(8));
    g.throughput(Throughput::Bytes(text.len() as u64));
    let mut out = Vec::with_capacity(512 << 10);
    g.bench_function("warden", |b| {
        b.iter_custom(|iters| {
            cpu_time(iters, || {
                let mut st = State::default();
                let mut n = 0;
                for p in &parts {
                    out.clear();
                    red.redact(&mut st, p, &mut out);
                    n += out.len();
                }
                n
            })
        });
    });
    let all = Redactor::new(Sets::ALL, &[]).unwrap();
    g.bench_function("warden-with-ip", |b| {
        b.iter_custom(|iters| {
            cpu_time(iters, || {
                let mut st = State::default();
                let mut n = 0;
                for p in &parts {
                    out.clear();
                    all.redact(&mut st, p, &mut out);
                    n += out.len();
                }
                n
            })
        });
    });
    // The baseline is slow: a quarter of the text is enough.
    let small = &text[..text.len() / 4];
    let small = &small[..memchr::memrchr(b'\n', small).map_or(0, |i| i + 1)];
    let small_parts = batches(small, 256 << 10);
    let res = baseline();
    g.throughput(Throughput::Bytes(small.len() as u64));
    g.bench_function("regex-multipass", |b| {
        b.iter_custom(|iters| {
            cpu_time(iters, || {
                let mut n = 0;
                for p in &small_parts {
                    let mut cur = std::borrow::Cow::Borrowed(*p);
                    for re in &res {
                        if let std::borrow::Cow::Owned(o) = re.replace_all(&cur, &b"[REDACTED]"[..])
                        {
                            cur = std::borrow::Cow::Owned(o);
                        }
                    }
                    n += cur.len();
                }
                n
            })
        });
    });
    // How a log shipper applies them: the 14 passes on each line (each event) in turn.
    let lines: Vec<&[u8]> = small.split_inclusive(|b| *b == b'\n').collect();
    g.bench_function("regex-multipass-per-line", |b| {
        b.iter_custom(|iters| {
            cpu_time(iters, || {
                let mut n = 0;
                for line in &lines {
                    let mut cur = std::borrow::Cow::Borrowed(*line);
                    for re in &res {
                        if let std::borrow::Cow::Owned(o) = re.replace_all(&cur, &b"[REDACTED]"[..])
                        {
                            cur = std::borrow::Cow::Owned(o);
                        }
                    }
                    n += cur.len();
                }
                n
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
