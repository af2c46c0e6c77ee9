//! Test fixtures: a kit folder with a configuration and a pinned policy
//! key, and signed policies for it. The key is generated at run time.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use dialgate_proto::config::Config;
use dialgate_proto::policy::{
    sign, verify_and_decide, PolicyBody, PolicyTrunk, SigningKey, State, Verified,
};

/// The kit id of [`kit_config`].
pub const KIT_ID: &str = "kit-board";

/// A kit configuration: phone side on 10.199.0.1:5261, media
/// 42000-42009, one trunk `bridge` at 10.199.0.2:5061 with the
/// Record-Route hop 10.199.0.2:5062, signed policy; optionally
/// `policy.trunk_media_address` and a bridge listener on port 5062.
pub fn kit_config(trunk_media: Option<&str>, bridge_listener: bool) -> String {
    let mut c = String::from(
        "[phone]\nlisten = \"10.199.0.1:5261\"\ncertificate = \"c.pem\"\nkey = \"k.pem\"\n\
         token_ca = \"ca.pem\"\nmedia_address = \"10.199.0.1\"\n\
         [media]\nport_min = 42000\nport_max = 42009\n\
         [[trunk]]\nname = \"bridge\"\nconnect = \"10.199.0.2:5061\"\nhost = \"bridge.test\"\n\
         pin_sha256 = \"0000000000000000000000000000000000000000000000000000000000000000\"\n\
         media_address = \"10.199.0.1\"\nroutes = [\"10.199.0.2:5062\"]\n\
         [policy]\nkey = \"policy-key.pub.pem\"\nkit_id = \"kit-board\"\n\
         bundle = \"policy.bundle\"\nstate = \"state/policy.state\"\n",
    );
    if let Some(a) = trunk_media {
        c.push_str(&format!("trunk_media_address = \"{a}\"\n"));
    }
    if bridge_listener {
        c.push_str(
            "[bridge_listener]\nlisten = \"10.199.0.1:5062\"\ncertificate = \"c.pem\"\nkey = \"k.pem\"\n",
        );
    }
    c
}

/// A policy of `version` for [`KIT_ID`], valid from a minute ago for an
/// hour, with `trunks` as (name, connect, routes).
pub fn policy_body(version: u64, trunks: &[(&str, &str, &[&str])]) -> PolicyBody {
    let now = crate::copy::now_unix();
    PolicyBody {
        version,
        issued_at: now - 60,
        expires_at: now + 3600,
        kits: vec![KIT_ID.into()],
        trunks: trunks
            .iter()
            .map(|(name, connect, routes)| PolicyTrunk {
                name: (*name).into(),
                connect: (*connect).into(),
                host: "meet.example".into(),
                ca_pem: None,
                pin_sha256: Some("44".repeat(32)),
                tls: "1.3".into(),
                suites: vec!["AES_CM_128_HMAC_SHA1_80".into()],
                webex: false,
                routes: routes.iter().map(|r| (*r).to_string()).collect(),
            })
            .collect(),
        ..PolicyBody::default()
    }
}

/// A kit folder (removed on drop) and its policy signing key.
pub struct Kit {
    /// The folder.
    pub dir: PathBuf,
    /// The policy key (its public half is pinned by the configuration).
    pub key: SigningKey,
}

impl Kit {
    pub fn new() -> Kit {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "dialgate-board-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(dir.join("state")).unwrap();
        let key = SigningKey::generate().unwrap();
        std::fs::write(dir.join("policy-key.pub.pem"), key.public_key().to_pem()).unwrap();
        Kit { dir, key }
    }

    /// Writes `text` as the kit's `dialgate.toml` and parses it.
    pub fn config(&self, text: &str) -> Config {
        let path = self.dir.join("dialgate.toml");
        std::fs::write(&path, text).unwrap();
        crate::allow::load_config(&path).unwrap()
    }

    pub fn bundle(&self, body: &PolicyBody) -> Vec<u8> {
        sign(body, &self.key).unwrap()
    }

    /// `body`, signed and verified as a kit would.
    pub fn verified(&self, body: &PolicyBody) -> Verified {
        let trust = dialgate_proto::policy::Trust {
            pinned_key: self.key.public_key().clone(),
            kit_id: KIT_ID.into(),
            grace: dialgate_proto::policy::GracePeriod::NONE,
        };
        verify_and_decide(
            &self.bundle(body),
            &trust,
            &State::new(),
            crate::copy::now_unix(),
        )
        .unwrap()
    }
}

impl Drop for Kit {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
