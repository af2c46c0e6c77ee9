//! `dialgatectl publish` end to end: the real binary writes the trees,
//! the kit's verifier (`dialgate_signed::repo::Client`) reads them back as
//! a kit would, from the files a web server would serve.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use dialgate_hq::hq::Hq;
use dialgate_hq::publish::pinned_keys;
use dialgate_proto::policy::{
    verify_and_decide, GracePeriod, PolicyKey, State as PolicyState, Trust,
};
use dialgate_signed::repo::{Client, RepoError, Role, State, TargetName, TIMESTAMP_FILE};

/// A fresh folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let p = std::env::temp_dir().join(format!("dialgate-{tag}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn dialgatectl(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_dialgatectl"))
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "dialgatectl {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn dialgatectl_fails(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_dialgatectl"))
        .args(args)
        .output()
        .unwrap();
    assert!(!out.status.success(), "dialgatectl {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A kit polling its tree on disk, as the shell will over HTTPS.
struct Kit {
    root: PathBuf,
    client: Client,
    policy_key: PolicyKey,
    id: String,
}

impl Kit {
    /// Pins what `dialgatectl pki kit` put in the kit's folder.
    fn new(hq: &Path, repo: &Path, id: &str) -> Kit {
        let keys = pinned_keys(&Hq::new(&hq.join("kits").join(id))).unwrap();
        let pem = fs::read(hq.join("policy-key.pub.pem")).unwrap();
        Kit {
            root: repo.join(id),
            client: Client::new(id, keys, State::new(now() - 60)).unwrap(),
            policy_key: PolicyKey::from_pem(&pem).unwrap(),
            id: id.to_string(),
        }
    }

    fn read(&self, name: &str) -> Vec<u8> {
        fs::read(self.root.join(name)).unwrap()
    }

    /// One poll: timestamp, snapshot if new, the policy; returns the
    /// policy's version as the policy verifier reads it.
    fn poll(&mut self) -> Result<u64, RepoError> {
        let ts = self.read(TIMESTAMP_FILE);
        self.client.verify_timestamp(&ts, now())?;
        if let Some((file, _)) = self.client.snapshot_wanted() {
            let snap = self.read(&file);
            self.client.verify_snapshot(&snap)?;
        }
        let (file, _) = self.client.target(TargetName::Policy).unwrap();
        let bytes = self.read(&file);
        let target = self.client.verify_target(TargetName::Policy, &bytes)?;
        let trust = Trust {
            pinned_key: self.policy_key.clone(),
            kit_id: self.id.clone(),
            grace: GracePeriod::NONE,
        };
        let policy = verify_and_decide(target.bytes(), &trust, &PolicyState::new(), now()).unwrap();
        Ok(policy.version())
    }
}

fn setup(d: &TempDir) -> (PathBuf, PathBuf) {
    let hq = d.0.join("hq");
    let repo = hq.join("repo");
    let hq_s = hq.to_str().unwrap();
    dialgatectl(&["pki", "init", "--dir", hq_s]);
    for kit in ["kit-a", "kit-b"] {
        dialgatectl(&[
            "pki",
            "kit",
            "--dir",
            hq_s,
            "--kit",
            kit,
            "--address",
            "127.0.0.1",
        ]);
    }
    let key = |b: u8| format!("{b:02x}").repeat(32);
    fs::write(
        hq.join("registry.toml"),
        format!(
            "[[token]]\nname = \"alice\"\nkey_sha256 = \"{}\"\naliases = []\nunattested = true\n\
             [[token]]\nname = \"mallory\"\nkey_sha256 = \"{}\"\naliases = []\nunattested = true\n",
            key(0xa1),
            key(0xb2)
        ),
    )
    .unwrap();
    fs::write(hq.join("directory.toml"), "").unwrap();
    (hq, repo)
}

#[test]
fn publish_twice_and_verify_as_the_kits_do() {
    let d = TempDir::new("publish");
    let (hq, repo) = setup(&d);
    let (hq_s, repo_s) = (hq.to_str().unwrap(), repo.to_str().unwrap());

    let out = dialgatectl(&["publish", "--dir", hq_s, "--out", repo_s]);
    assert!(
        out.contains("kit kit-a: timestamp v1, snapshot v1 (new)"),
        "{out}"
    );
    assert!(out.contains("kit kit-b: timestamp v1"), "{out}");
    let mut a = Kit::new(&hq, &repo, "kit-a");
    let mut b = Kit::new(&hq, &repo, "kit-b");
    let a1 = a.poll().unwrap();
    let b1 = b.poll().unwrap();
    assert_ne!(a1, b1, "one policy version per build");
    assert_eq!(a.client.state().timestamp.version, 1);
    assert!(a.client.trusted_time() >= now() - 5);
    assert!(hq.join("timestamp-key.pk8").exists() && hq.join("snapshot-key.pub.pem").exists());
    for (file, mode) in [
        ("timestamp-key.pk8", 0o600),
        ("snapshot-key.pub.pem", 0o644),
    ] {
        let m = fs::metadata(hq.join(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(m, mode, "{file}");
    }
    let served = repo.join("kit-a").join(TIMESTAMP_FILE);
    assert_eq!(
        fs::metadata(served).unwrap().permissions().mode() & 0o777,
        0o644
    );
    assert_eq!(
        fs::read(hq.join("timestamp-key.pub.pem")).unwrap(),
        fs::read(hq.join("kits/kit-b/timestamp-key.pub.pem")).unwrap()
    );

    // Nothing changed: only the timestamp is re-signed.
    let out = dialgatectl(&["publish", "--dir", hq_s, "--out", repo_s, "--kit", "kit-a"]);
    assert!(
        out.contains("kit kit-a: timestamp v2, snapshot v1:"),
        "{out}"
    );
    a.poll().unwrap();
    assert!(a.client.snapshot_wanted().is_none());
    assert_eq!(a.client.state().timestamp.version, 2);

    // A revocation: the policy is rebuilt, every version rises.
    dialgatectl(&["token", "revoke", "--dir", hq_s, "mallory"]);
    let firmware = d.0.join("firmware.bundle");
    fs::write(
        &firmware,
        b"not really firmware, the repository does not look inside",
    )
    .unwrap();
    let out = dialgatectl(&[
        "publish",
        "--dir",
        hq_s,
        "--out",
        repo_s,
        "--kit",
        "kit-a",
        "--firmware",
        firmware.to_str().unwrap(),
    ]);
    assert!(
        out.contains("kit kit-a: timestamp v3, snapshot v2 (new)"),
        "{out}"
    );
    let a2 = a.poll().unwrap();
    assert!(a2 > a1);
    let st = *a.client.state();
    assert_eq!((st.timestamp.version, st.snapshot.version), (3, 2));
    assert_eq!(st.target(TargetName::Policy).version, 2);
    assert_eq!(st.target(TargetName::Firmware).version, 1);
    let (file, meta) = a.client.target(TargetName::Firmware).unwrap();
    assert!(a
        .client
        .verify_target(TargetName::Firmware, &a.read(&file))
        .is_ok());
    assert_eq!(meta.length, fs::metadata(&firmware).unwrap().len());

    // Kit b's view is its own: untouched by kit a's publishes, and kit
    // a's documents are not kit b's.
    assert_eq!(b.poll().unwrap(), b1);
    assert_eq!(b.client.state().timestamp.version, 1);
    let foreign = a.read(TIMESTAMP_FILE);
    assert!(matches!(
        b.client.verify_timestamp(&foreign, now()),
        Err(RepoError::WrongKit { .. })
    ));

    // The state persists across a restart of the kit.
    let saved = a.client.state().encode();
    a.client = Client::new(
        "kit-a",
        pinned_keys(&Hq::new(&hq)).unwrap(),
        State::decode(&saved).unwrap(),
    )
    .unwrap();
    assert_eq!(a.poll().unwrap(), a2);

    // The previous publication's files are kept for kits in between; the
    // one before is gone.
    assert!(a.root.join("snapshot-1.signed").exists());
    dialgatectl(&["publish", "--dir", hq_s, "--out", repo_s, "--kit", "kit-a"]);
    dialgatectl(&["token", "revoke", "--dir", hq_s, "alice"]);
    dialgatectl(&["publish", "--dir", hq_s, "--out", repo_s, "--kit", "kit-a"]);
    assert!(!a.root.join("snapshot-1.signed").exists());
    assert!(a.root.join("snapshot-2.signed").exists() && a.root.join("snapshot-3.signed").exists());
    assert!(a.poll().unwrap() > a2);
}

#[test]
fn a_tampered_tree_is_refused_by_the_kit_and_by_publish() {
    let d = TempDir::new("publish-tamper");
    let (hq, repo) = setup(&d);
    let (hq_s, repo_s) = (hq.to_str().unwrap(), repo.to_str().unwrap());
    dialgatectl(&["publish", "--dir", hq_s, "--out", repo_s, "--kit", "kit-a"]);
    let mut a = Kit::new(&hq, &repo, "kit-a");
    a.poll().unwrap();
    assert!(!repo.join("kit-b").exists(), "--kit publishes one kit");

    // The web server's copy of the policy altered (same length).
    let (file, _) = a.client.target(TargetName::Policy).unwrap();
    let path = a.root.join(&file);
    let mut bytes = fs::read(&path).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x20;
    fs::write(&path, &bytes).unwrap();
    assert_eq!(
        a.poll().unwrap_err(),
        RepoError::HashMismatch {
            role: Role::Target(TargetName::Policy)
        }
    );
    // Or grown without end.
    bytes[i] ^= 0x20;
    bytes.extend_from_slice(&[b' '; 4096]);
    fs::write(&path, &bytes).unwrap();
    assert!(matches!(a.poll().unwrap_err(), RepoError::TooLarge { .. }));

    // A timestamp altered on the server: the kit refuses it, and publish
    // refuses to continue from it.
    let ts = a.root.join(TIMESTAMP_FILE);
    let text = fs::read_to_string(&ts)
        .unwrap()
        .replace("version 1", "version 9");
    fs::write(&ts, text).unwrap();
    assert!(matches!(
        a.poll().unwrap_err(),
        RepoError::BadSignature {
            role: Role::Timestamp
        }
    ));
    let err = dialgatectl_fails(&["publish", "--dir", hq_s, "--out", repo_s, "--kit", "kit-a"]);
    assert!(err.contains("not this HQ's publication"), "{err}");

    // A policy for another kit is not published for this one.
    let other = d.0.join("b.bundle");
    dialgatectl(&[
        "policy",
        "build",
        "--dir",
        hq_s,
        "--kit",
        "kit-b",
        "--out",
        other.to_str().unwrap(),
    ]);
    let err = dialgatectl_fails(&[
        "publish",
        "--dir",
        hq_s,
        "--out",
        repo_s,
        "--kit",
        "kit-b",
        "--policy",
        other
            .to_str()
            .unwrap()
            .replace("b.bundle", "missing")
            .as_str(),
    ]);
    assert!(err.contains("missing"), "{err}");
    fs::remove_dir_all(&a.root).unwrap();
    let err = dialgatectl_fails(&[
        "publish",
        "--dir",
        hq_s,
        "--out",
        repo_s,
        "--kit",
        "kit-a",
        "--policy",
        other.to_str().unwrap(),
    ]);
    assert!(err.contains("would refuse it"), "{err}");
    let out = dialgatectl(&[
        "publish",
        "--dir",
        hq_s,
        "--out",
        repo_s,
        "--kit",
        "kit-b",
        "--policy",
        other.to_str().unwrap(),
    ]);
    assert!(out.contains("kit kit-b: timestamp v1"), "{out}");
    // An older policy over a newer one: the kit would refuse it.
    let old = d.0.join("old.bundle");
    let old_s = old.to_str().unwrap();
    dialgatectl(&[
        "policy",
        "build",
        "--dir",
        hq_s,
        "--kit",
        "kit-b",
        "--version",
        "1",
        "--out",
        old_s,
    ]);
    let err = dialgatectl_fails(&[
        "publish", "--dir", hq_s, "--out", repo_s, "--kit", "kit-b", "--policy", old_s,
    ]);
    assert!(err.contains("rollback"), "{err}");
    // The same bundle again is no change.
    let out = dialgatectl(&[
        "publish",
        "--dir",
        hq_s,
        "--out",
        repo_s,
        "--kit",
        "kit-b",
        "--policy",
        other.to_str().unwrap(),
    ]);
    assert!(out.contains("timestamp v2, snapshot v1:"), "{out}");
}

#[test]
fn a_clock_stepped_back_does_not_sign_the_past() {
    use dialgate_hq::publish::{publish, PublishOptions};
    let d = TempDir::new("publish-clock");
    let (hq, repo) = setup(&d);
    let t = now();
    let opts = |at| PublishOptions {
        kit: Some("kit-a".into()),
        ..PublishOptions::new(&repo, at)
    };
    let first = publish(&Hq::new(&hq), &opts(t)).unwrap();
    assert_eq!(first[0].timestamp_version, 1);
    let mut a = Kit::new(&hq, &repo, "kit-a");
    a.poll().unwrap();
    assert_eq!(a.client.trusted_time(), t);
    // This host's clock an hour behind: the timestamp keeps the newest
    // signing time, so the kit still takes it (rather than seeing it
    // expire 45 minutes before the time it already trusts).
    publish(&Hq::new(&hq), &opts(t - 3600)).unwrap();
    a.poll().unwrap();
    assert_eq!(a.client.state().timestamp.version, 2);
    assert_eq!(a.client.trusted_time(), t);
}

/// nginx's ETag is the file's mtime in seconds and its size: three
/// publications within one second must still give three ETags, or a
/// polling kit is told "304 Not Modified" about the newer ones.
#[test]
fn timestamps_published_within_a_second_have_distinct_mtimes() {
    use dialgate_hq::publish::{publish, PublishOptions};
    let d = TempDir::new("publish-mtime");
    let (hq, repo) = setup(&d);
    let ts = repo.join("kit-a").join(TIMESTAMP_FILE);
    let mtime = || {
        fs::metadata(&ts)
            .unwrap()
            .modified()
            .unwrap()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let opts = PublishOptions {
        kit: Some("kit-a".into()),
        ..PublishOptions::new(&repo, now())
    };
    let mut seen = Vec::new();
    for _ in 0..3 {
        publish(&Hq::new(&hq), &opts).unwrap();
        seen.push((mtime(), fs::metadata(&ts).unwrap().len()));
    }
    assert!(seen[0].0 < seen[1].0 && seen[1].0 < seen[2].0, "{seen:?}");
}

#[test]
fn a_publish_that_fails_half_way_is_redone_in_full() {
    use dialgate_hq::publish::{publish, PublishOptions};
    let d = TempDir::new("publish-retry");
    let (hq, repo) = setup(&d);
    let opts = PublishOptions {
        kit: Some("kit-a".into()),
        ..PublishOptions::new(&repo, now())
    };
    let first = publish(&Hq::new(&hq), &opts).unwrap();
    let v1 = first[0].policy_version.unwrap();
    dialgatectl(&["token", "revoke", "--dir", hq.to_str().unwrap(), "mallory"]);
    // The next snapshot's name is taken (a full disk, a server's lock...).
    let blocker = repo.join("kit-a/snapshot-2.signed");
    fs::create_dir_all(blocker.join("x")).unwrap();
    assert!(publish(&Hq::new(&hq), &opts).is_err());
    fs::remove_dir_all(&blocker).unwrap();
    // The revocation is not lost: the policy is rebuilt and published.
    let again = publish(&Hq::new(&hq), &opts).unwrap();
    assert!(again[0].policy_version.unwrap() > v1, "{again:?}");
    assert_eq!(again[0].snapshot.version, 2);
    let mut a = Kit::new(&hq, &repo, "kit-a");
    assert_eq!(a.poll().unwrap(), again[0].policy_version.unwrap());
}

#[test]
fn a_policy_half_way_to_its_expiry_is_re_signed() {
    use dialgate_hq::publish::{publish, PublishOptions};
    let d = TempDir::new("publish-refresh");
    let (hq, repo) = setup(&d);
    let t = now();
    let opts = |at| PublishOptions {
        kit: Some("kit-a".into()),
        ..PublishOptions::new(&repo, at)
    };
    let v1 = publish(&Hq::new(&hq), &opts(t)).unwrap()[0].policy_version;
    // Two weeks on: more than half of the 30 days are left, nothing to do.
    let two_weeks = publish(&Hq::new(&hq), &opts(t + 14 * 86_400)).unwrap();
    assert_eq!(two_weeks[0].policy_version, None);
    assert!(!two_weeks[0].snapshot_changed);
    // Sixteen days on: re-signed, one version up.
    let later = publish(&Hq::new(&hq), &opts(t + 16 * 86_400)).unwrap();
    assert!(later[0].policy_version > v1, "{later:?}");
    assert!(later[0].snapshot_changed);
    let mut a = Kit::new(&hq, &repo, "kit-a");
    assert_eq!(Some(a.poll().unwrap()), later[0].policy_version);
}
