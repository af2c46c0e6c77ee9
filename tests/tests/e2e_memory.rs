//! No key outlives its call in the gateway's memory. A scripted phone calls
//! through `dialgate demo` to a scripted bridge (`tests/peers/sip_tls_probe.py`);
//! while the call is up, the gateway's whole memory (`/proc/PID/mem`, every
//! readable mapping) holds both legs' master keys — the scanner finds them;
//! after BYE, with the phone's and the bridge's connections closed, none of
//! the four keys (the phone's, the gateway's towards the phone, the
//! gateway's towards the bridge, the bridge's) is anywhere, neither as the
//! base64 text of the SDP nor as raw bytes. Needs root (tests/run) to read
//! another process's memory.

mod common;

use std::io::{Read, Seek, SeekFrom, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine;
use common::{init_kit, repoint_trunk, start_demo, wait_for, Procs, PEERS};
use dialgate::sip::{Event, Framer, Limits, Message};
use dialgate::srtp::{format_inline, MasterKey, Suite};

const PROBE_PORT: u16 = 5103;
const GW: &str = "127.0.0.1:5061";

/// The `inline:` keys of an SDP text, as (base64, raw bytes).
fn keys_in(text: &str) -> Vec<(String, Vec<u8>)> {
    text.lines()
        .filter_map(|l| l.split("inline:").nth(1))
        .map(|k| {
            k.split(['|', ' ', '\r'])
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .map(|b64| {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(&b64)
                .expect("base64 key");
            (b64, raw)
        })
        .collect()
}

/// Which of `needles` occur anywhere in the readable memory of `pid`.
fn found_in_memory(pid: u32, needles: &[Vec<u8>]) -> Vec<usize> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("maps");
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).expect("/proc/PID/mem (root)");
    let mut found = vec![false; needles.len()];
    let longest = needles.iter().map(Vec::len).max().unwrap_or(0);
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else {
            continue;
        };
        if !perms.starts_with('r') || line.contains("[vvar]") || line.contains("[vsyscall]") {
            continue;
        }
        let (lo, hi) = range.split_once('-').unwrap();
        let (lo, hi) = (
            u64::from_str_radix(lo, 16).unwrap(),
            u64::from_str_radix(hi, 16).unwrap(),
        );
        // Chunks of 1 MiB overlapping by the longest needle.
        let mut at = lo;
        let mut buf = vec![0u8; 1 << 20];
        while at < hi {
            let n = ((hi - at) as usize).min(buf.len());
            if mem.seek(SeekFrom::Start(at)).is_err() {
                break;
            }
            let Ok(got) = mem.read(&mut buf[..n]) else {
                break;
            };
            if got == 0 {
                break;
            }
            for (i, needle) in needles.iter().enumerate() {
                if let Some(pos) = buf[..got]
                    .windows(needle.len())
                    .position(|w| w == &needle[..])
                {
                    if !found[i] && std::env::var_os("DIALGATE_MEM_DEBUG").is_some() {
                        let from = pos.saturating_sub(300);
                        let to = (pos + 300).min(got);
                        eprintln!(
                            "needle {i} in {line} at +{pos}: {:?}",
                            String::from_utf8_lossy(&buf[from..to])
                        );
                    }
                    found[i] = true;
                }
            }
            if got < longest {
                break;
            }
            at += (got - longest.saturating_sub(1)).max(1) as u64;
        }
    }
    (0..needles.len()).filter(|i| found[*i]).collect()
}

fn read_final(s: &mut common::PhoneTls, framer: &mut Framer, cseq: u32) -> Message {
    let mut buf = vec![0u8; 16384];
    loop {
        while let Ok(Some(ev)) = framer.poll_event() {
            if let Event::Message(m) = ev {
                if m.status().is_some_and(|c| c.as_u16() >= 200) && m.cseq().seq == cseq {
                    return m;
                }
            }
        }
        let k = s.read(&mut buf).expect("read from the gateway");
        assert!(k > 0, "the gateway closed the connection");
        framer.handle_data(&buf[..k]);
    }
}

#[test]
fn no_key_of_either_leg_is_left_in_the_gateways_memory_after_bye() {
    let (work, kit, log) = common::work_dir("e2e-memory");
    init_kit(&kit);
    repoint_trunk(&kit, &format!("127.0.0.1:{PROBE_PORT}"), None, None);
    let mut procs = Procs(Vec::new());
    let probe_log = work.join("probe.log");
    procs.0.push(
        Command::new("python3")
            .arg(format!("{PEERS}/sip_tls_probe.py"))
            .args(["--port", &PROBE_PORT.to_string(), "--reply", "200"])
            .args(["--answer-suite", "AES_CM_128_HMAC_SHA1_80"])
            .args(["--count", "1", "--timeout", "60", "--cert"])
            .arg(kit.join("bridge/cert.pem"))
            .arg("--key")
            .arg(kit.join("bridge/key.pem"))
            .arg("--log")
            .arg(&probe_log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    start_demo(&mut procs, &kit, &log);
    let gateway = procs.0.last().unwrap().id();
    assert!(wait_for(&probe_log, "# listening", Duration::from_secs(10)));

    // The phone: INVITE with a key of its own, 200 with the gateway's.
    let (mut s, local) = common::phone_tls(&kit, GW, "alice").unwrap();
    let phone_key = MasterKey::generate(Suite::AesCm128HmacSha1_80).unwrap();
    let sdp = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio 41000 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n\
         a=crypto:1 AES_CM_128_HMAC_SHA1_80 {}\r\na=sendrecv\r\n",
        &*format_inline(&phone_key)
    );
    let head = |method: &str, cseq: u32, to_tag: &str| {
        format!(
            "{method} sip:echo@127.0.0.1:5061;transport=tls SIP/2.0\r\n\
             Via: SIP/2.0/TLS {local};branch=z9hG4bK-mem-{method}\r\nMax-Forwards: 70\r\n\
             From: <sip:alice@127.0.0.1>;tag=mem1\r\nTo: <sip:echo@127.0.0.1>{to_tag}\r\n\
             Call-ID: memory-1@test\r\nCSeq: {cseq} {method}\r\n\
             Contact: <sip:alice@{local};transport=tls>\r\n"
        )
    };
    let invite = format!(
        "{}Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}",
        head("INVITE", 1, ""),
        sdp.len()
    );
    s.write_all(invite.as_bytes()).unwrap();
    let mut framer = Framer::client(Limits::default());
    let ok = read_final(&mut s, &mut framer, 1);
    assert_eq!(ok.status().map(|c| c.as_u16()), Some(200));
    let answer = String::from_utf8_lossy(ok.body()).to_string();
    let probe = std::fs::read_to_string(&probe_log).unwrap();
    let mut keys = keys_in(&sdp);
    keys.extend(keys_in(&answer));
    keys.extend(keys_in(&probe)); // the gateway's offer and the bridge's answer
    assert_eq!(keys.len(), 4, "four keys: {keys:?}\n{probe}");
    let needles: Vec<Vec<u8>> = keys
        .iter()
        .flat_map(|(b64, raw)| [b64.as_bytes().to_vec(), raw.clone()])
        .collect();

    // During the call the scanner sees the keys (it can find what is there).
    let during = found_in_memory(gateway, &needles);
    assert!(
        !during.is_empty(),
        "the scanner found no key while the call was up"
    );

    // BYE; the phone hangs up and closes, the bridge's connection closes.
    let tag = format!(";tag={}", ok.to().tag().unwrap_or_default());
    s.write_all(format!("{}Content-Length: 0\r\n\r\n", head("ACK", 1, &tag)).as_bytes())
        .unwrap();
    s.write_all(format!("{}Content-Length: 0\r\n\r\n", head("BYE", 2, &tag)).as_bytes())
        .unwrap();
    let bye = read_final(&mut s, &mut framer, 2);
    assert_eq!(bye.status().map(|c| c.as_u16()), Some(200));
    drop(s);
    drop(framer);
    assert!(wait_for(&probe_log, "# exiting", Duration::from_secs(10)));
    assert!(wait_for(
        &log,
        "media stopped, keys zeroized",
        Duration::from_secs(5)
    ));
    std::thread::sleep(Duration::from_millis(3000));

    let after = found_in_memory(gateway, &needles);
    let names = [
        "phone (b64)",
        "phone (raw)",
        "gateway to phone (b64)",
        "gateway to phone (raw)",
        "gateway to bridge (b64)",
        "gateway to bridge (raw)",
        "bridge (b64)",
        "bridge (raw)",
    ];
    let left: Vec<&str> = after.iter().map(|i| names[*i]).collect();
    assert!(
        left.is_empty(),
        "keys left in the gateway's memory after BYE: {left:?} (during the call: {:?})",
        during.iter().map(|i| names[*i]).collect::<Vec<_>>()
    );
    drop(procs);
    std::fs::remove_dir_all(&work).ok();
}
