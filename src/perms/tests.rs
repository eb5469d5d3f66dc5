use std::path::{Path, PathBuf};

use super::plan::{self, Concern, Observed, Privilege};
use super::zone::{Zones, normalize};
use super::{Account, Principal, can_traverse};
use crate::policy::Policy;
use crate::sys::fs::{Kind, Meta};

const ACCOUNT_UID: u32 = 990;
const ACCOUNT_GID: u32 = 980;
const ADMINS_GID: u32 = 50;

/// A deployment with the policy's tier directories, and its zones.
fn zones(extra: &str) -> (tempfile::TempDir, Zones) {
    let d = tempfile::tempdir().unwrap();
    for dir in ["models/lora", "data"] {
        std::fs::create_dir_all(d.path().join(dir)).unwrap();
    }
    let text = format!(
        "[service]\nname = \"svc\"\ncommand = [\"app\"]\nuser = \"aiuser\"\ngroup = \"aiusers\"\n\
         \n[[tier]]\npath = \"models\"\n\n[[tier]]\npath = \"models/lora\"\ngroup = \"admins\"\n\
         mode = \"0444\"\ndir-mode = \"0555\"\n{extra}"
    );
    let root = d.path().canonicalize().unwrap();
    let policy = Policy::from_str(&text, &root.join("warden.toml")).unwrap();
    let z = Zones::new(
        &policy,
        &account(),
        &|is_group, name| match (is_group, name) {
            (false, "root") => Some(0),
            (true, "admins") => Some(ADMINS_GID),
            _ => None,
        },
    )
    .unwrap();
    (d, z)
}

fn account() -> Account {
    Account {
        user: Principal::new("aiuser", Some(ACCOUNT_UID)),
        group: Principal::new("aiusers", Some(ACCOUNT_GID)),
        gids: vec![ACCOUNT_GID],
    }
}

fn root() -> Privilege {
    Privilege {
        root: true,
        euid: 0,
        egid: 0,
        groups: vec![0],
    }
}

fn user(uid: u32, groups: &[u32]) -> Privilege {
    Privilege {
        root: false,
        euid: uid,
        egid: groups[0],
        groups: groups.to_vec(),
    }
}

fn meta(kind: Kind, uid: u32, gid: u32, mode: u32) -> Meta {
    Meta {
        kind,
        uid,
        gid,
        mode,
        nlink: if kind == Kind::Dir { 2 } else { 1 },
    }
}

fn obs(z: &Zones, rel: &str, m: Meta) -> Observed {
    Observed {
        path: z.root.join(rel),
        meta: m,
    }
}

#[test]
fn read_only_tier_becomes_root_and_the_service_group() {
    let (_d, z) = zones("");
    let entries = [
        obs(&z, "models", meta(Kind::Dir, 1000, 1000, 0o755)),
        obs(
            &z,
            "models/a.safetensors",
            meta(Kind::File, 1000, 1000, 0o644),
        ),
        obs(&z, "models/lora/w.bin", meta(Kind::File, 1000, 1000, 0o664)),
        obs(&z, "app.py", meta(Kind::File, 1000, 1000, 0o644)),
    ];
    let (changes, concerns) = plan::plan(&z, &entries, &root());
    assert!(concerns.is_empty());
    let got: Vec<_> = changes
        .iter()
        .map(|c| {
            let t = &c.planned.target;
            (
                c.path.strip_prefix(&z.root).unwrap().to_owned(),
                t.uid,
                t.gid,
                t.mode,
                c.needs_root,
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                PathBuf::from("models"),
                Some(0),
                Some(ACCOUNT_GID),
                0o550,
                false
            ),
            (
                PathBuf::from("models/a.safetensors"),
                Some(0),
                Some(ACCOUNT_GID),
                0o440,
                false
            ),
            // The more specific tier wins, with its own group and modes.
            (
                PathBuf::from("models/lora/w.bin"),
                Some(0),
                Some(ADMINS_GID),
                0o444,
                false
            ),
        ]
    );
}

#[test]
fn nothing_changes_when_already_right() {
    let (_d, z) = zones("");
    let entries = [
        obs(&z, "models", meta(Kind::Dir, 0, ACCOUNT_GID, 0o550)),
        obs(&z, "models/a", meta(Kind::File, 0, ACCOUNT_GID, 0o440)),
        obs(&z, "tmp", meta(Kind::Dir, ACCOUNT_UID, ACCOUNT_GID, 0o700)),
        obs(
            &z,
            "tmp/run.sh",
            meta(Kind::File, ACCOUNT_UID, ACCOUNT_GID, 0o700),
        ),
        obs(
            &z,
            "logs/x.log",
            meta(Kind::File, ACCOUNT_UID, ACCOUNT_GID, 0o640),
        ),
    ];
    let (changes, concerns) = plan::plan(&z, &entries, &root());
    assert!(changes.is_empty(), "{changes:?}");
    assert!(concerns.is_empty());
}

#[test]
fn private_places_belong_to_the_account() {
    let (_d, z) = zones("");
    let entries = [
        obs(&z, "tmp/a", meta(Kind::File, 0, 0, 0o644)),
        obs(&z, "tmp/tool", meta(Kind::File, 0, 0, 0o755)),
        obs(&z, "tmp/sub", meta(Kind::Dir, 0, 0, 0o777)),
        obs(&z, "state/pid", meta(Kind::File, 0, 0, 0o4755)),
        obs(&z, "logs", meta(Kind::Dir, 0, 0, 0o755)),
        obs(&z, "logs/old", meta(Kind::Dir, 0, 0, 0o700)),
        obs(&z, "logs/app.log", meta(Kind::File, 0, 0, 0o666)),
    ];
    let (changes, _) = plan::plan(&z, &entries, &root());
    let modes: Vec<u32> = changes.iter().map(|c| c.planned.target.mode).collect();
    // The owner-exec bit is kept in tmp and state; setuid is never kept.
    assert_eq!(modes, [0o600, 0o700, 0o700, 0o700, 0o750, 0o750, 0o640]);
    assert!(
        changes
            .iter()
            .all(|c| c.planned.target.uid == Some(ACCOUNT_UID)
                && c.planned.target.gid == Some(ACCOUNT_GID))
    );
}

#[test]
fn read_write_tier_and_a_private_dir_inside_it() {
    let (_d, z) = zones(
        "\n[[tier]]\npath = \"data\"\naccess = \"read-write\"\n\n[logs]\ndir = \"data/logs\"\n",
    );
    let entries = [
        obs(&z, "data/cache.db", meta(Kind::File, 0, 0, 0o644)),
        obs(&z, "data/logs/a.log", meta(Kind::File, 0, 0, 0o644)),
    ];
    let (changes, _) = plan::plan(&z, &entries, &root());
    let t: Vec<_> = changes
        .iter()
        .map(|c| (c.planned.target.uid, c.planned.target.mode))
        .collect();
    assert_eq!(t, [(Some(ACCOUNT_UID), 0o640), (Some(ACCOUNT_UID), 0o640)]);
    assert_eq!(
        z.zone_for(&z.root.join("data/logs/a.log"))
            .map(|i| z.zones[i].kind),
        Some(super::zone::ZoneKind::Logs)
    );
    // data/logs is walked from data, as a nested zone.
    let nested = z.nested();
    assert_eq!(nested.len(), 2, "{nested:?}");
    assert!(nested.contains_key(&z.root.join("data")));
    assert!(nested.contains_key(&z.root.join("models")));
}

#[test]
fn links_and_special_files_are_reported_not_changed() {
    let (_d, z) = zones("");
    let mut hard = meta(Kind::File, 1000, 1000, 0o644);
    hard.nlink = 3;
    let entries = [
        obs(&z, "models/link", meta(Kind::Symlink, 1000, 1000, 0o777)),
        obs(&z, "models/fifo", meta(Kind::Special, 1000, 1000, 0o666)),
        obs(&z, "models/hard", hard),
        obs(&z, "tmp/hard", hard),
    ];
    let (changes, concerns) = plan::plan(&z, &entries, &root());
    let changed: Vec<_> = changes.iter().map(|c| c.path.clone()).collect();
    assert_eq!(changed, [z.root.join("models/hard")]);
    let rel = |p: &Path| p.strip_prefix(&z.root).unwrap().to_owned();
    let concerns: Vec<_> = concerns.iter().map(|(p, c)| (rel(p), *c)).collect();
    assert_eq!(
        concerns,
        [
            (PathBuf::from("models/fifo"), Concern::Special),
            (
                PathBuf::from("models/hard"),
                Concern::HardLinked { nlink: 3 }
            ),
            (
                PathBuf::from("tmp/hard"),
                Concern::HardLinkedSkipped { nlink: 3 }
            ),
        ]
    );
}

#[test]
fn rootless_applies_modes_of_its_own_files_only() {
    let (_d, z) = zones("");
    let me = user(1000, &[1000, ACCOUNT_GID]);
    let mine = meta(Kind::File, 1000, 1000, 0o644);
    let theirs = meta(Kind::File, 1001, 1000, 0o644);
    let (changes, _) = plan::plan(
        &z,
        &[obs(&z, "models/a", mine), obs(&z, "models/b", theirs)],
        &me,
    );
    assert!(changes.iter().all(|c| c.needs_root));
    assert_eq!(
        plan::permitted(&mine, &changes[0].planned, &me),
        (false, true)
    );
    assert_eq!(
        plan::permitted(&theirs, &changes[1].planned, &me),
        (false, false)
    );

    // Giving one's own file to one of one's groups needs no privilege.
    let mut rw = z.clone();
    rw.zones[0].owner = Principal::new("me", Some(1000));
    let (changes, _) = plan::plan(&rw, &[obs(&rw, "models/a", mine)], &me);
    assert_eq!(
        plan::permitted(&mine, &changes[0].planned, &me),
        (true, true)
    );
    assert!(!changes[0].needs_root);

    // An account that does not exist yet: only root can give it files.
    let mut missing = z.clone();
    for zone in &mut missing.zones {
        zone.group = Principal::new("aiusers", None);
    }
    let (changes, _) = plan::plan(&missing, &[obs(&missing, "models/a", mine)], &me);
    assert!(changes[0].needs_root);
    let (changes, _) = plan::plan(&missing, &[obs(&missing, "models/a", mine)], &root());
    assert!(!changes[0].needs_root);
}

#[test]
fn top_level_zones_and_unknown_owners() {
    let (d, z) = zones("");
    let top: Vec<_> = z
        .top_level()
        .into_iter()
        .map(|i| z.zones[i].label.clone())
        .collect();
    assert_eq!(top, ["models", "logs", "tmp", "state"]);
    let text = "[service]\nname = \"s\"\ncommand = [\"a\"]\nuser = \"aiuser\"\n\n[[tier]]\n\
                path = \"models\"\nowner = \"nosuchadmin\"\n";
    let root = d.path().canonicalize().unwrap();
    let policy = Policy::from_str(text, &root.join("warden.toml")).unwrap();
    let err = Zones::new(&policy, &account(), &|_, _| None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the owner of tier models is nosuchadmin, which does not exist: create it, or change the policy"
    );
}

#[test]
fn traversal_by_the_account() {
    let a = account();
    assert!(can_traverse(&meta(Kind::Dir, 0, 0, 0o755), &a));
    assert!(!can_traverse(&meta(Kind::Dir, 0, 0, 0o750), &a));
    assert!(can_traverse(&meta(Kind::Dir, 0, ACCOUNT_GID, 0o750), &a));
    assert!(!can_traverse(&meta(Kind::Dir, ACCOUNT_UID, 0, 0o077), &a));
    assert!(can_traverse(&meta(Kind::Dir, 1000, 1000, 0o711), &a));
}

#[test]
fn lexical_normalization() {
    let base = Path::new("/srv/app/models");
    assert_eq!(
        normalize(base, Path::new("../../etc/x")),
        Path::new("/srv/etc/x")
    );
    assert_eq!(
        normalize(base, Path::new("/etc/passwd")),
        Path::new("/etc/passwd")
    );
    assert_eq!(
        normalize(base, Path::new("./a/../b")),
        Path::new("/srv/app/models/b")
    );
    assert_eq!(normalize(base, Path::new("../../../../..")), Path::new("/"));
}
