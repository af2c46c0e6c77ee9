//! SRTP cost per packet, dialgate vs libsrtp2, measured the same way: a
//! 172-byte RTP packet (12-byte header, 160-byte G.711 payload), batches of
//! 256 packets each in its own 256-byte slot; protect time includes copying
//! the template into the slot and writing the sequence number, unprotect
//! time is the unprotect alone. Warm-up batches are not timed. libsrtp2 is
//! driven through `srtp_tool bench` (tests/libsrtp/srtp_tool.c), twice:
//! Debian's build (NSS) and Debian's source built with `--enable-openssl`
//! (tests/run), which is how most deployments build it and the target's
//! reference.

use std::process::Command;
use std::time::Instant;

use dialgate::srtp::{MasterKey, Protector, Suite, Unprotector};
use dialgate_tests::libsrtp::{TOOL, TOOL_OPENSSL};

const PKT_LEN: usize = 172;
const BATCH: usize = 256;
const SLOT: usize = 256;

/// (protect ns, unprotect ns) per packet.
fn ours(suite: Suite, iterations: usize) -> Result<(f64, f64), String> {
    let keysalt: Vec<u8> = (0..suite.key_len() + suite.salt_len())
        .map(|i| (0x11 * (i % 15) + i) as u8)
        .collect();
    let key = MasterKey::new(suite, &keysalt).map_err(|e| e.to_string())?;
    let mut tx = Protector::new(&key).map_err(|e| e.to_string())?;
    let mut rx = Unprotector::new(&key).map_err(|e| e.to_string())?;
    let mut tmpl = [0u8; PKT_LEN];
    tmpl[0] = 0x80;
    tmpl[8..12].copy_from_slice(&0xdead_beefu32.to_be_bytes());
    for (i, b) in tmpl.iter_mut().enumerate().skip(12) {
        *b = i as u8;
    }
    let mut slots = vec![0u8; BATCH * SLOT];
    let mut lens = [0usize; BATCH];
    let mut seq: u16 = 0;
    let warmup = (iterations / 10).max(10_000);
    let total = warmup + iterations;
    let (mut done, mut measured) = (0usize, 0usize);
    let (mut t_prot, mut t_unprot) = (0f64, 0f64);
    while done < total {
        let nb = (total - done).min(BATCH);
        let t0 = Instant::now();
        for (i, slot) in slots.chunks_exact_mut(SLOT).take(nb).enumerate() {
            slot[..PKT_LEN].copy_from_slice(&tmpl);
            slot[2..4].copy_from_slice(&seq.to_be_bytes());
            seq = seq.wrapping_add(1);
            lens[i] = tx
                .protect_rtp(slot, PKT_LEN)
                .map_err(|e| e.to_string())?
                .len();
        }
        let t1 = Instant::now();
        for (i, slot) in slots.chunks_exact_mut(SLOT).take(nb).enumerate() {
            let n = rx.unprotect_rtp(slot, lens[i]).map_err(|e| e.to_string())?;
            if n != PKT_LEN {
                return Err("unprotect returned the wrong length".into());
            }
        }
        let t2 = Instant::now();
        if done >= warmup {
            t_prot += (t1 - t0).as_nanos() as f64;
            t_unprot += (t2 - t1).as_nanos() as f64;
            measured += nb;
        }
        done += nb;
    }
    Ok((t_prot / measured as f64, t_unprot / measured as f64))
}

fn libsrtp(tool: &str, suite: Suite, iterations: usize) -> Result<(f64, f64), String> {
    let out = Command::new(tool)
        .args(["bench", suite.name(), &iterations.to_string()])
        .output()
        .map_err(|e| format!("running {tool}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "srtp_tool bench failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |op: &str| -> Result<f64, String> {
        text.lines()
            .find_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() == 4 && f[2] == op)
                    .then(|| f[3].parse().ok())
                    .flatten()
            })
            .ok_or_else(|| format!("srtp_tool printed no {op} figure: {text}"))
    };
    Ok((field("protect")?, field("unprotect")?))
}

pub fn run(opts: &[String]) -> Result<(), String> {
    let iterations: usize = super::opt(opts, "--iterations")
        .map(|s| s.parse().map_err(|_| format!("bad --iterations {s}")))
        .transpose()?
        .unwrap_or(1_000_000);
    println!("SRTP cost per 172-byte RTP packet (ns), {iterations} packets per figure, same machine, same run");
    println!("libsrtp2 NSS: Debian's libsrtp2-1; libsrtp2 OpenSSL: Debian's source package built with --enable-openssl (tests/run)");
    if TOOL_OPENSSL.is_none() {
        println!("(no libsrtp2 OpenSSL build: run tests/run, then rebuild the bench)");
    }
    println!(
        "{:<25} {:>9} {:>8} {:>7} {:>8} {:>7}   {:>9} {:>8} {:>7} {:>8} {:>7}",
        "suite",
        "protect",
        "NSS",
        "ratio",
        "OpenSSL",
        "ratio",
        "unprotect",
        "NSS",
        "ratio",
        "OpenSSL",
        "ratio"
    );
    let (mut worst_nss, mut worst_ossl): (f64, f64) = (0.0, 0.0);
    for suite in [
        Suite::AesCm128HmacSha1_80,
        Suite::AesCm128HmacSha1_32,
        Suite::AesCm256HmacSha1_80,
        Suite::AeadAes128Gcm,
        Suite::AeadAes256Gcm,
    ] {
        let (op, ou) = ours(suite, iterations)?;
        let (np, nu) = libsrtp(TOOL, suite, iterations)?;
        let ossl = TOOL_OPENSSL
            .map(|t| libsrtp(t, suite, iterations))
            .transpose()?;
        worst_nss = worst_nss.max(op / np).max(ou / nu);
        if let Some((sp, su)) = ossl {
            worst_ossl = worst_ossl.max(op / sp).max(ou / su);
        }
        let fig = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        let ratio =
            |a: f64, b: Option<f64>| b.map_or("-".to_string(), |b| format!("{:.2}x", a / b));
        println!(
            "{:<25} {:>9.1} {:>8.1} {:>6.2}x {:>8} {:>7}   {:>9.1} {:>8.1} {:>6.2}x {:>8} {:>7}",
            suite.name(),
            op,
            np,
            op / np,
            fig(ossl.map(|o| o.0)),
            ratio(op, ossl.map(|o| o.0)),
            ou,
            nu,
            ou / nu,
            fig(ossl.map(|o| o.1)),
            ratio(ou, ossl.map(|o| o.1)),
        );
    }
    println!("worst ratio dialgate/libsrtp2 (NSS): {worst_nss:.2}x");
    if TOOL_OPENSSL.is_some() {
        println!("worst ratio dialgate/libsrtp2 (OpenSSL): {worst_ossl:.2}x (target <= 1.20x)");
    }
    hmac_cost(iterations);
    Ok(())
}

/// What reusing the HMAC context could save at most: the SRTP code's tag
/// (a context copied from the keyed one per packet, updated, finished and
/// wiped: aws-lc-rs's only safe API) beside the SHA-1 work alone (a digest
/// of the 176 octets the tag covers, and one of the 20-octet inner hash,
/// which is what HMAC with precomputed pads hashes besides).
fn hmac_cost(iterations: usize) {
    use aws_lc_rs::{digest, hmac};
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, &[0x5a; 20]);
    let mut msg = [0u8; PKT_LEN + 4];
    let time = |f: &mut dyn FnMut(&mut [u8]) -> u8, msg: &mut [u8]| {
        let mut acc = 0u8;
        let t0 = Instant::now();
        for i in 0..iterations {
            msg[2] = i as u8;
            acc ^= f(msg);
        }
        std::hint::black_box(acc);
        t0.elapsed().as_nanos() as f64 / iterations as f64
    };
    let tag = time(
        &mut |m| {
            let mut ctx = hmac::Context::with_key(&key);
            ctx.update(m);
            ctx.sign().as_ref()[0]
        },
        &mut msg,
    );
    let inner = time(
        &mut |m| digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, m).as_ref()[0],
        &mut msg,
    );
    let outer = time(
        &mut |m| digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &m[..20]).as_ref()[0],
        &mut msg,
    );
    println!(
        "HMAC-SHA1 tag of {} octets: {tag:.1} ns per packet (context per packet); SHA-1 work alone {:.1} ns ({inner:.1} + {outer:.1}); at most {:.1} ns to save by reusing a context",
        PKT_LEN + 4,
        inner + outer,
        (tag - inner - outer).max(0.0)
    );
}
