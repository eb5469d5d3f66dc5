use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::policy::Policy;

fn policy(extra: &str) -> (tempfile::TempDir, Policy) {
    let d = tempfile::tempdir().unwrap();
    for p in ["models/base", "app", "bin"] {
        std::fs::create_dir_all(d.path().join(p)).unwrap();
    }
    std::fs::write(d.path().join("models/base/w.safetensors"), b"w").unwrap();
    std::fs::write(d.path().join("app/main.py"), b"print()").unwrap();
    let text = format!(
        "[service]\nname = \"s\"\ncommand = [\"x\"]\nuser = \"svc\"\nlisten = [\"127.0.0.1:7860\", \"[::1]:7860\"]\n\
         [[tier]]\npath = \"models/base\"\n[[tier]]\npath = \"bin\"\nmode = \"0550\"\n{extra}\n"
    );
    let p = Policy::from_str(&text, &d.path().canonicalize().unwrap().join("warden.toml")).unwrap();
    (d, p)
}

fn find<'a>(p: &'a Plan, path: &Path) -> Vec<&'a Rule> {
    p.rules.iter().filter(|r| r.path == path).collect()
}

#[test]
fn private_dirs_and_tiers_get_their_own_rules() {
    let (_d, pol) = policy("");
    let p = plan(&pol, None, &BTreeMap::new()).unwrap();
    let root = &pol.root;
    assert_eq!(find(&p, root)[0].access, Access::List);
    assert_eq!(find(&p, &root.join("app"))[0].access, Access::ReadExec);
    assert_eq!(find(&p, &root.join("models"))[0].access, Access::List);
    assert_eq!(find(&p, &root.join("models/base"))[0].access, Access::Read);
    assert_eq!(find(&p, &root.join("bin"))[0].access, Access::ReadExec);
    assert_eq!(find(&p, &pol.tmp_dir)[0].access, Access::ReadWrite);
    assert_eq!(find(&p, &pol.state_dir)[0].access, Access::ReadWrite);
    // The logs are warden's: no rule at all.
    assert!(find(&p, &pol.logs_dir).is_empty());
    assert_eq!(p.bind_ports, vec![7860]);
    // Secrets in /etc are never opened.
    assert!(find(&p, Path::new("/etc/shadow")).is_empty());
    assert!(
        find(&p, Path::new("/etc"))
            .iter()
            .all(|r| r.access == Access::List)
    );
    assert!(!find(&p, Path::new("/etc/passwd")).is_empty());
}

#[test]
fn off_has_no_rules_and_extra_paths_resolve() {
    let (_d, pol) = policy("[sandbox]\nlandlock = \"off\"\n");
    let p = plan(&pol, None, &BTreeMap::new()).unwrap();
    assert!(p.rules.is_empty());
    let (_d, pol) = policy("[sandbox]\nread = [\"/opt/x\"]\nwrite = [\"/dev/shm\", \"cache\"]\n");
    let p = plan(&pol, None, &BTreeMap::new()).unwrap();
    assert_eq!(find(&p, Path::new("/opt/x"))[0].access, Access::ReadExec);
    assert_eq!(find(&p, Path::new("/dev/shm"))[0].access, Access::ReadWrite);
    assert_eq!(
        find(&p, &pol.root.join("cache"))[0].access,
        Access::ReadWrite
    );
}

#[test]
fn venv_is_found_above_the_program_and_its_interpreter() {
    let (d, pol) = policy("");
    let venv = d.path().join("venv");
    std::fs::create_dir_all(venv.join("bin")).unwrap();
    std::fs::write(venv.join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
    std::fs::write(venv.join("bin/python"), b"").unwrap();
    let script = d.path().join("tool");
    std::fs::write(
        &script,
        format!("#!{}/bin/python\nprint()\n", venv.display()),
    )
    .unwrap();
    let p = plan(&pol, Some(&script), &BTreeMap::new()).unwrap();
    assert!(
        p.rules
            .iter()
            .any(|r| r.path == venv && r.access == Access::ReadExec),
        "{:?}",
        p.rules
    );
    let p = plan(
        &pol,
        Some(Path::new("/opt/elsewhere/bin/app")),
        &BTreeMap::new(),
    )
    .unwrap();
    assert!(find(&p, Path::new("/opt/elsewhere/bin"))[0].required);
}

#[test]
fn bad_extra_paths_are_refused_with_their_place() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join("models")).unwrap();
    let text = "[service]\nname = \"s\"\ncommand = [\"x\"]\nuser = \"svc\"\n[[tier]]\npath = \"models\"\n\
                [sandbox]\nread = [\"/\", \"/etc\"]\nwrite = [\"/usr\", \"models/x\", \"..\"]\n";
    let e = Policy::from_str(text, &d.path().join("warden.toml")).unwrap_err();
    let msgs: Vec<String> = e.diagnostics().iter().map(ToString::to_string).collect();
    assert_eq!(msgs.len(), 5, "{msgs:#?}");
    assert!(msgs[0].contains(":8:9: sandbox.read[0]"), "{}", msgs[0]);
    assert!(msgs[1].contains("sandbox.read[1]") && msgs[1].contains("shadow"));
    assert!(msgs[2].contains("sandbox.write[0]") && msgs[2].contains("system"));
    assert!(msgs[3].contains("read-only tier"));
    // `..` is the temp dir holding the deployment: a system directory, or one containing it.
    assert!(
        msgs[4].contains("sandbox.write[2]")
            && (msgs[4].contains("contains the deployment") || msgs[4].contains("system")),
        "{}",
        msgs[4]
    );
}

#[test]
fn gaps_name_the_abi_each_restriction_needs() {
    let g = gaps(Some(3), None);
    let names: Vec<&str> = g.iter().map(|g| g.feature.as_str()).collect();
    assert_eq!(
        names,
        [
            "tcp-bind",
            "device-ioctl",
            "signal-scope",
            "abstract-unix-scope"
        ]
    );
    assert!(g[0].reason.contains("needs ABI 4, the kernel has 3"));
    assert_eq!(gaps(None, Some("no landlock")).len(), Feature::ALL.len());
    assert!(gaps(Some(7), None).is_empty());
}

#[test]
fn the_report_pipe_carries_a_status_then_eof_or_an_error() {
    use crate::supervise::spawn::parse_report;
    let st = Status {
        landlock: Level::Full,
        kernel_abi: Some(7),
        requested_abi: TESTED_ABI,
        enforced: Feature::ALL.to_vec(),
        not_enforced: Vec::new(),
        rules: 3,
        bind_ports: vec![7860],
        skipped: Vec::new(),
        limits: Limits::default(),
    };
    let line = format!("STATUS {}\n", serde_json::to_string(&st).unwrap());
    assert_eq!(parse_report("").unwrap(), None);
    assert_eq!(parse_report(&line).unwrap(), Some(st.clone()));
    let e = parse_report(&format!("{line}ERROR cannot execute x: ENOENT\nmore")).unwrap_err();
    assert_eq!(e, "cannot execute x: ENOENT\nmore");
    assert_eq!(parse_report("ERROR no").unwrap_err(), "no");
    assert!(parse_report("STATUS {bad\n").is_err());
    let shown = st.to_string();
    assert!(
        shown.starts_with("landlock ABI 7, fully enforced: 3 rules, filesystem"),
        "{shown}"
    );
    assert!(shown.contains("tcp-bind (7860)"), "{shown}");
}

#[test]
fn shm_is_on_by_default_and_can_be_turned_off() {
    let (_d, pol) = policy("");
    let p = plan(&pol, None, &BTreeMap::new()).unwrap();
    assert_eq!(find(&p, Path::new("/dev/shm"))[0].access, Access::ReadWrite);
    let (_d, pol) = policy("[sandbox]\nshm = false\n");
    let p = plan(&pol, None, &BTreeMap::new()).unwrap();
    assert!(find(&p, Path::new("/dev/shm")).is_empty());
}

#[test]
fn device_presets_are_optional_rules() {
    let (_d, pol) = policy("[sandbox]\ndevices = [\"nvidia\", \"dri\"]\n");
    let p = plan(&pol, None, &BTreeMap::new()).unwrap();
    assert_eq!(p.devices, ["nvidia", "dri"]);
    let nvidia: Vec<&Rule> = p
        .rules
        .iter()
        .filter(|r| r.why.contains("nvidia"))
        .collect();
    // On a host without a GPU the device rules are still planned (and skipped when applied).
    assert!(
        nvidia
            .iter()
            .any(|r| r.path.to_string_lossy().starts_with("/dev/nvidia"))
    );
    assert!(
        nvidia
            .iter()
            .any(|r| r.path == Path::new("/proc/driver/nvidia"))
    );
    assert!(
        nvidia
            .iter()
            .any(|r| r.path == Path::new("/proc/self/task"))
    );
    assert!(nvidia.iter().all(|r| !r.required));
    let dri = find(&p, Path::new("/dev/dri"));
    assert_eq!(dri[0].access, Access::Device);
    assert!(!dri[0].required);
}
