use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::PathBuf;

use super::*;

/// An in-memory account database that records what would be run.
#[derive(Default)]
struct Fake {
    users: BTreeMap<String, UserInfo>,
    groups: BTreeMap<String, u32>,
    members: BTreeMap<String, Vec<u32>>,
    applied: RefCell<Vec<Action>>,
}

impl Accounts for Fake {
    fn user(&self, name: &str) -> Result<Option<UserInfo>, AccountError> {
        Ok(self.users.get(name).cloned())
    }
    fn group(&self, name: &str) -> Result<Option<u32>, AccountError> {
        Ok(self.groups.get(name).copied())
    }
    fn groups_of(&self, user: &str, gid: u32) -> Result<Vec<u32>, AccountError> {
        let mut v = self.members.get(user).cloned().unwrap_or_default();
        v.push(gid);
        Ok(v)
    }
    fn apply(&self, action: &Action) -> Result<(), AccountError> {
        self.applied.borrow_mut().push(action.clone());
        Ok(())
    }
}

fn spec(groups: &[&str]) -> Spec {
    Spec {
        user: "aiuser".into(),
        group: "aiusers".into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        home: PathBuf::from("/srv/app/state"),
        shell: PathBuf::from("/usr/sbin/nologin"),
    }
}

fn fake() -> Fake {
    let mut f = Fake::default();
    f.groups.insert("video".into(), 44);
    f.groups.insert("render".into(), 105);
    f
}

#[test]
fn creates_group_then_account() {
    let db = fake();
    let p = plan(&spec(&["video"]), &db).unwrap();
    assert_eq!(
        p.actions,
        vec![
            Action::CreateGroup {
                group: "aiusers".into()
            },
            Action::CreateUser {
                user: "aiuser".into(),
                group: "aiusers".into(),
                groups: vec!["video".into()],
                home: "/srv/app/state".into(),
                shell: "/usr/sbin/nologin".into(),
            }
        ]
    );
    assert_eq!(
        p.actions[1].argv().join(" "),
        "useradd --system --no-create-home --shell /usr/sbin/nologin --gid aiusers \
         --home-dir /srv/app/state --groups video aiuser"
    );
    assert_eq!(p.uid, None);
    assert_eq!(p.gids, vec![44]);
    apply(&p, &db).unwrap();
    assert_eq!(db.applied.borrow().len(), 2);
}

#[test]
fn existing_account_is_left_alone() {
    let mut db = fake();
    db.groups.insert("aiusers".into(), 990);
    db.users.insert(
        "aiuser".into(),
        UserInfo {
            uid: 990,
            gid: 990,
            shell: "/usr/sbin/nologin".into(),
        },
    );
    db.members.insert("aiuser".into(), vec![44]);
    let p = plan(&spec(&["video"]), &db).unwrap();
    assert!(p.actions.is_empty(), "{:?}", p.actions);
    assert!(p.warnings.is_empty());
    assert_eq!((p.uid, p.gid), (Some(990), Some(990)));
    assert_eq!(p.gids, vec![44, 990]);
}

#[test]
fn adds_missing_groups_and_fixes_a_login_shell() {
    let mut db = fake();
    db.groups.insert("aiusers".into(), 990);
    db.users.insert(
        "aiuser".into(),
        UserInfo {
            uid: 990,
            gid: 990,
            shell: "/bin/bash".into(),
        },
    );
    db.members.insert("aiuser".into(), vec![44]);
    let p = plan(&spec(&["video", "render"]), &db).unwrap();
    assert_eq!(
        p.actions,
        vec![
            Action::AddGroups {
                user: "aiuser".into(),
                groups: vec!["render".into()]
            },
            Action::SetShell {
                user: "aiuser".into(),
                shell: "/usr/sbin/nologin".into()
            }
        ]
    );
    assert_eq!(p.actions[0].argv().join(" "), "usermod -a -G render aiuser");
}

#[test]
fn a_regular_account_is_only_warned_about() {
    let mut db = fake();
    db.groups.insert("aiusers".into(), 1000);
    db.users.insert(
        "aiuser".into(),
        UserInfo {
            uid: 1000,
            gid: 1000,
            shell: "/bin/bash".into(),
        },
    );
    let p = plan(&spec(&[]), &db).unwrap();
    assert!(p.actions.is_empty());
    assert_eq!(p.warnings.len(), 2, "{:?}", p.warnings);
    assert!(p.warnings[1].contains("login shell"));
}

#[test]
fn primary_group_is_corrected() {
    let mut db = fake();
    db.groups.insert("aiusers".into(), 990);
    db.users.insert(
        "aiuser".into(),
        UserInfo {
            uid: 990,
            gid: 44,
            shell: "/bin/false".into(),
        },
    );
    let p = plan(&spec(&[]), &db).unwrap();
    assert_eq!(
        p.actions,
        vec![Action::SetPrimaryGroup {
            user: "aiuser".into(),
            group: "aiusers".into()
        }]
    );
}

#[test]
fn a_missing_supplementary_group_is_named() {
    let db = fake();
    let err = plan(&spec(&["video", "gpu"]), &db).unwrap_err();
    assert!(matches!(&err, AccountError::MissingGroup { name } if name == "gpu"));
    assert!(err.to_string().contains("group gpu"));
}

#[test]
fn login_shells() {
    assert!(is_login_shell(Path::new("/bin/bash")));
    assert!(is_login_shell(Path::new("")));
    assert!(!is_login_shell(Path::new("/usr/sbin/nologin")));
    assert!(!is_login_shell(Path::new("/bin/false")));
}
