use warden::scan::allow::Loader;
use warden::scan::pickle::{Options, scan};

fn target(data: &[u8]) {
    for loader in [Loader::Pickle, Loader::Torch, Loader::Numpy] {
        let _ = scan(data, &Options::new(loader));
    }
    let _ = scan(
        data,
        &Options {
            probe: true,
            max_pickles: Some(5),
            ..Options::new(Loader::Torch)
        },
    );
}

fn main() {
    warden_fuzz::main(
        "pickle",
        &[
            b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01X\x01\x00\x00\x00aK\x01s.",
            b"\x80\x04\x95\x0b\x00\x00\x00\x00\x00\x00\x00\x8c\x02os\x94\x8c\x06system\x94\x93.",
            b"cos\nsystem\n(S'id'\ntR.",
            b"(lp0\nI1\naF2.5\naV\\u00e9\nag0\na.",
        ],
        target,
    );
}
