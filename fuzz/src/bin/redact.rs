use std::sync::LazyLock;

use warden::logs::corpus;
use warden::logs::redact::{Redactor, Sets, State};

static WIDE: LazyLock<Redactor> = LazyLock::new(|| Redactor::new(Sets::ALL, &[]).unwrap());
static NARROW: LazyLock<Redactor> = LazyLock::new(|| {
    Redactor::new(Sets::ALL, &[])
        .unwrap()
        .with_portable_vectors()
});

/// Redacts `data` as whole lines and as pieces of a line cut at the cap, with the widest vectors
/// and with the portable ones: no panic, and the same text both ways.
fn target(data: &[u8]) {
    let (mut a, mut b) = (Vec::new(), Vec::new());
    WIDE.redact(&mut State::default(), data, &mut a);
    NARROW.redact(&mut State::default(), data, &mut b);
    assert!(a == b, "the AVX2 and portable paths differ");
    let (mut sa, mut sb) = (State::default(), State::default());
    let pieces: Vec<&[u8]> = data
        .split(|&b| b == b'\n')
        .flat_map(|l| l.chunks(97))
        .collect();
    for (i, piece) in pieces.iter().enumerate() {
        let (cut, continued) = (i + 1 < pieces.len(), i > 0);
        a.clear();
        b.clear();
        WIDE.redact_piece(&mut sa, piece, cut, continued, &mut a);
        NARROW.redact_piece(&mut sb, piece, cut, continued, &mut b);
        assert!(a == b, "the AVX2 and portable paths differ on a piece");
    }
}

fn main() {
    let lines = corpus::labelled(1, 200, 2);
    let seeds: Vec<Vec<u8>> = lines
        .chunks(20)
        .map(|c| {
            c.iter()
                .flat_map(|l| l.text.bytes().chain(std::iter::once(b'\n')))
                .collect()
        })
        .collect();
    let seeds: Vec<&[u8]> = seeds.iter().map(Vec::as_slice).collect();
    warden_fuzz::main("redact", &seeds, target);
}
