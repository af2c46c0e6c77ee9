//! The firewall batch against a real kernel: applied in a fresh network
//! namespace (root: `tests/run` runs as root), then read back with nft(8),
//! which `tests/run` installs.

#[cfg(target_os = "linux")]
#[test]
fn the_ruleset_loads_into_a_real_kernel_in_a_network_namespace() {
    use dialgate_board::{firewall, nft, sys};
    use std::process::Command;
    // SAFETY-free check of privileges: unshare(1) needs root.
    let uid = Command::new("id").arg("-u").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "a network namespace needs root: run `bash tests/run` as root"
    );
    // Run ourselves in a new network namespace: the child does the work.
    if std::env::var_os("DIALGATE_NFT_CHILD").is_none() {
        let me = std::env::current_exe().unwrap();
        let out = Command::new("unshare")
            .arg("--net")
            .arg(me)
            .args([
                "--exact",
                "the_ruleset_loads_into_a_real_kernel_in_a_network_namespace",
                "--nocapture",
            ])
            .env("DIALGATE_NFT_CHILD", "1")
            .output()
            .expect("unshare runs");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("RULESET-LOADED"), "{text}");
        return;
    }
    let r = firewall::build(&firewall::Inputs {
        phones: "eth0".into(),
        uplink: "eth1".into(),
        sip_port: 5061,
        media: (30000, 30009),
        bridge_listener: Some(5062),
        outbound: vec![
            "192.0.2.10:5061".parse().unwrap(),
            "[2001:db8::1]:443".parse().unwrap(),
        ],
        outbound_ports: vec![5071],
        udp_outbound: vec!["192.0.2.30:3478".parse().unwrap()],
        dhcp_client: true,
        dhcp_server: true,
    });
    let (batch, acked) = nft::batch(&r, 1);
    sys::nft_apply(&batch, 1, acked).expect("kernel accepts the batch");
    println!("RULESET-LOADED");
    {
        let out = Command::new("nft")
            .args(["list", "ruleset"])
            .output()
            .expect("nft(8) runs (tests/run installs nftables)");
        let listed = String::from_utf8_lossy(&out.stdout);
        println!("{listed}");
        assert!(listed.contains("policy drop"), "{listed}");
        assert!(listed.contains("tcp dport 5061 accept"), "{listed}");
        assert!(listed.contains("udp dport 30000-30009 accept"), "{listed}");
        assert!(
            listed.contains("ip daddr 192.0.2.30 udp dport 3478 accept"),
            "{listed}"
        );
        assert!(
            listed.contains("iifname \"eth1\" udp sport 67 udp dport 68 accept"),
            "{listed}"
        );
        // A trunk by name: its port at any address, on the uplink only.
        assert!(
            listed.contains("oifname \"eth1\" tcp dport 5071 accept"),
            "{listed}"
        );
        // The phone side's DHCP server: its exchange on the phone side.
        assert!(
            listed.contains("iifname \"eth0\" udp sport 68 udp dport 67 accept"),
            "{listed}"
        );
        assert!(
            listed.contains("oifname \"eth0\" udp sport 67 udp dport 68 accept"),
            "{listed}"
        );
        assert!(
            listed.contains("ct state established,related accept"),
            "{listed}"
        );
    }
}
