//! Verifying a received trail: complete (no sequence number missing),
//! in order, unaltered (every `prev` is its predecessor's hash), vouched
//! for (signed checkpoints, the newest at the end), duplicates tolerated.

use std::collections::HashMap;

use dialgate_signed::{parse_hex32, sha256, verify_detached, PublicKey, AUDIT_CHECKPOINT};

use crate::chain::checkpoint_statement;
use crate::record::parse;
use crate::GENESIS;

/// What a verified trail held.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Distinct records verified.
    pub verified: u64,
    /// Exact copies of records already seen (redelivery after an outage).
    pub duplicates: u64,
    /// Signed checkpoints among them.
    pub checkpoints: u64,
    /// First and last sequence numbers.
    pub first: u64,
    /// See `first`.
    pub last: u64,
}

/// The first thing wrong with a trail.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TrailError {
    /// Not one of our records.
    #[error("line {line}: not a dialgate audit record ({reason})")]
    Unparsable {
        /// 1-based line number in the file.
        line: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// Sequence numbers skipped: records deleted (or never received).
    #[error("records {from}..={to} are missing (deleted, or not yet received)")]
    Missing {
        /// First missing sequence number.
        from: u64,
        /// Last missing sequence number.
        to: u64,
    },
    /// A record whose successor does not chain to it, or a second copy
    /// that differs from the first.
    #[error("record {seq} was altered ({why})")]
    Altered {
        /// The altered record's sequence number.
        seq: u64,
        /// How it shows.
        why: &'static str,
    },
    /// A record older than its predecessor that was never seen before.
    #[error("record {seq} is out of order (after record {after})")]
    Reordered {
        /// Its sequence number.
        seq: u64,
        /// The record before it in the file.
        after: u64,
    },
    /// A checkpoint that does not verify with the kit's key.
    #[error("checkpoint record {seq} is forged ({why})")]
    Forged {
        /// Its sequence number.
        seq: u64,
        /// Why it does not verify.
        why: &'static str,
    },
    /// Records after the newest checkpoint: nothing vouches that the trail
    /// was not cut or altered there.
    #[error("records {from}..={to} follow the last checkpoint: not vouched for (the trail may have been cut; a later checkpoint covers them)")]
    NotCovered {
        /// First uncovered sequence number.
        from: u64,
        /// Last one.
        to: u64,
    },
    /// Nothing to verify.
    #[error("no records")]
    Empty,
}

/// Verifies `lines` (one record each, as rsyslog's `%rawmsg%` stores
/// them; blank lines skipped) with the kits' checkpoint keys. `through`:
/// the newest sequence number the kit reports having written (its status),
/// which also catches a trail cut exactly after a checkpoint.
pub fn verify<'a>(
    lines: impl IntoIterator<Item = &'a str>,
    keys: &[(String, PublicKey)],
    through: Option<u64>,
) -> Result<Report, TrailError> {
    let mut seen: HashMap<u64, [u8; 32]> = HashMap::new();
    let mut last: Option<(u64, [u8; 32])> = None;
    let mut last_checkpoint = 0u64;
    let mut report = Report::default();
    for (i, line) in lines.into_iter().enumerate() {
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            continue;
        }
        let bad = |reason| TrailError::Unparsable {
            line: i + 1,
            reason,
        };
        let p = parse(line).map_err(bad)?;
        let seq: u64 = p
            .get("seq")
            .and_then(|s| s.parse().ok())
            .filter(|s| *s > 0)
            .ok_or(bad("no seq"))?;
        let prev = p.get("prev").and_then(parse_hex32).ok_or(bad("no prev"))?;
        let hash = sha256(line.as_bytes());
        if let Some(h) = seen.get(&seq) {
            if *h == hash {
                report.duplicates += 1;
                continue;
            }
            return Err(TrailError::Altered {
                seq,
                why: "a second copy differs from the first",
            });
        }
        match last {
            None => {
                if seq != 1 {
                    return Err(TrailError::Missing {
                        from: 1,
                        to: seq - 1,
                    });
                }
                if prev != GENESIS {
                    return Err(TrailError::Altered {
                        seq,
                        why: "the first record does not start the chain",
                    });
                }
                report.first = seq;
            }
            Some((ls, lh)) => {
                if seq < ls {
                    return Err(TrailError::Reordered { seq, after: ls });
                }
                if seq > ls + 1 {
                    return Err(TrailError::Missing {
                        from: ls + 1,
                        to: seq - 1,
                    });
                }
                if prev != lh {
                    return Err(TrailError::Altered {
                        seq: ls,
                        why: "its successor's hash of it does not match",
                    });
                }
            }
        }
        if p.msgid == "checkpoint" {
            let forged = |why| TrailError::Forged { seq, why };
            let key = keys
                .iter()
                .find(|(kit, _)| *kit == p.hostname)
                .map(|(_, k)| k)
                .ok_or(forged("no checkpoint key for this kit"))?;
            if p.get("key") != Some(key.id().to_hex().as_str()) {
                return Err(forged("signed by another key"));
            }
            let floor: u64 = p
                .get("floor")
                .and_then(|f| f.parse().ok())
                .ok_or(forged("no floor"))?;
            let statement = checkpoint_statement(&p.hostname, seq, &prev, floor);
            let sig = p.get("sig").ok_or(forged("no signature"))?;
            if !verify_detached(&AUDIT_CHECKPOINT, &statement, sig, key) {
                return Err(forged("bad signature"));
            }
            last_checkpoint = seq;
            report.checkpoints += 1;
        }
        seen.insert(seq, hash);
        last = Some((seq, hash));
        report.verified += 1;
        report.last = seq;
    }
    let (ls, _) = last.ok_or(TrailError::Empty)?;
    if ls > last_checkpoint {
        return Err(TrailError::NotCovered {
            from: last_checkpoint + 1,
            to: ls,
        });
    }
    if let Some(t) = through {
        if t > ls {
            return Err(TrailError::Missing {
                from: ls + 1,
                to: t,
            });
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use dialgate_signed::SigningKey;

    use super::*;
    use crate::{Chain, Event, Header, Severity};

    const H: Header<'static> = Header {
        timestamp: "2026-12-03T10:00:00.000000Z",
        hostname: "kit-1",
        procid: 42,
    };

    fn event(n: u64) -> Event {
        Event {
            severity: Severity::Info,
            msgid: "admitted".into(),
            params: vec![("call".into(), n.to_string())],
            message: format!("call {n} admitted"),
        }
    }

    /// 10 records, a checkpoint (11), 5 more, a checkpoint (17).
    fn trail(key: &SigningKey) -> Vec<String> {
        let mut c = Chain::genesis();
        let mut out = Vec::new();
        for n in 0..10 {
            out.push(c.append(&H, &event(n)).line);
        }
        out.push(c.checkpoint(&H, key, 1_796_000_000).unwrap().line);
        for n in 10..15 {
            out.push(c.append(&H, &event(n)).line);
        }
        out.push(c.checkpoint(&H, key, 1_796_000_010).unwrap().line);
        out
    }

    fn run(lines: &[String], key: &SigningKey) -> Result<Report, TrailError> {
        let keys = vec![("kit-1".to_string(), key.public_key().clone())];
        verify(lines.iter().map(String::as_str), &keys, None)
    }

    #[test]
    fn a_complete_trail_verifies_and_duplicates_are_counted() {
        let key = SigningKey::generate().unwrap();
        let mut t = trail(&key);
        let r = run(&t, &key).unwrap();
        assert_eq!((r.verified, r.checkpoints, r.first, r.last), (17, 2, 1, 17));
        // Redelivery after an outage: records 12..14 arrive twice.
        let again: Vec<String> = t[11..14].to_vec();
        t.splice(14..14, again);
        assert_eq!(run(&t, &key).unwrap().duplicates, 3);
    }

    #[test]
    fn removal_alteration_cutting_reordering_and_forgery_name_the_first_bad_record() {
        let key = SigningKey::generate().unwrap();
        let t = trail(&key);

        let mut removed = t.clone();
        removed.remove(4);
        assert_eq!(
            run(&removed, &key),
            Err(TrailError::Missing { from: 5, to: 5 })
        );

        let mut altered = t.clone();
        altered[6] = altered[6].replace("call 6 admitted", "call 6 refused");
        assert!(matches!(
            run(&altered, &key),
            Err(TrailError::Altered { seq: 7, .. })
        ));

        // Altering the record just before a checkpoint is caught by it.
        let mut altered = t.clone();
        altered[15] = altered[15].replace("call=\"14\"", "call=\"99\"");
        assert!(matches!(
            run(&altered, &key),
            Err(TrailError::Altered { seq: 16, .. })
        ));

        let cut = &t[..14];
        assert_eq!(
            run(cut, &key),
            Err(TrailError::NotCovered { from: 12, to: 14 })
        );

        // Cut exactly after a checkpoint: only the kit's reported sequence shows it.
        let cut = &t[..11];
        assert!(run(cut, &key).is_ok());
        let keys = vec![("kit-1".to_string(), key.public_key().clone())];
        assert_eq!(
            verify(cut.iter().map(String::as_str), &keys, Some(17)),
            Err(TrailError::Missing { from: 12, to: 17 })
        );

        let mut swapped = t.clone();
        swapped.swap(2, 3);
        assert_eq!(
            run(&swapped, &key),
            Err(TrailError::Missing { from: 3, to: 3 })
        );

        // A forger rebuilds the chain after altering record 3, but cannot sign.
        let forger = SigningKey::generate().unwrap();
        let mut c = Chain::genesis();
        let mut forged = Vec::new();
        for n in 0..10 {
            forged.push(c.append(&H, &event(if n == 2 { 77 } else { n })).line);
        }
        forged.push(c.checkpoint(&H, &forger, 1).unwrap().line);
        assert!(matches!(
            run(&forged, &key),
            Err(TrailError::Forged { seq: 11, .. })
        ));
        // The forger's key id, but a signature copied from a real checkpoint.
        let mut copied = forged.clone();
        let real = crate::parse(&t[10]).unwrap();
        let fake = crate::parse(&copied[10]).unwrap();
        copied[10] = copied[10]
            .replace(fake.get("key").unwrap(), real.get("key").unwrap())
            .replace(fake.get("sig").unwrap(), real.get("sig").unwrap());
        assert!(matches!(
            run(&copied, &key),
            Err(TrailError::Forged {
                seq: 11,
                why: "bad signature"
            })
        ));

        assert_eq!(run(&[], &key), Err(TrailError::Empty));
        assert!(matches!(
            run(&["hello".to_string()], &key),
            Err(TrailError::Unparsable { line: 1, .. })
        ));
    }

    #[test]
    fn a_chain_resumes_after_its_newest_record() {
        let key = SigningKey::generate().unwrap();
        let t = trail(&key);
        let mut c = Chain::resume(&t[16]).unwrap();
        assert_eq!(c.next_seq(), 18);
        let mut more = t.clone();
        more.push(c.append(&H, &event(99)).line);
        more.push(c.checkpoint(&H, &key, 2).unwrap().line);
        assert_eq!(run(&more, &key).unwrap().last, 19);
    }
}
