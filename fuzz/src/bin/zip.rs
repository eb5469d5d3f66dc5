use warden::scan::{Limits, scan_bytes, zip};

fn target(data: &[u8]) {
    if let Ok(ar) = zip::read(data) {
        for e in &ar.entries {
            let _ = zip::content(data, e, 1 << 20);
        }
    }
    // The whole scanner over the same bytes: zip members, nested archives, every format.
    let limits = Limits {
        max_depth: 3,
        max_member: 4 << 20,
        max_total: 16 << 20,
    };
    let _ = scan_bytes(data, &limits);
}

fn main() {
    warden_fuzz::main(
        "zip",
        &[
            b"PK\x03\x04\x14\x00\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00\x05\x00\x00\x00a.pklN.PK\x01\x02\x14\x03\x14\x00\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x02\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00a.pklPK\x05\x06\x00\x00\x00\x00\x01\x00\x01\x003\x00\x00\x00%\x00\x00\x00\x00\x00",
        ],
        target,
    );
}
