//! Media the gateway generates itself, as RTP payloads: the "secure" tone
//! a caller hears at connect, and RFC 4733 telephone-events that send a
//! meeting PIN to the bridge. Sans-IO: callers ask for the frame due at a
//! packet index and protect/send it like any other packet.

/// The G.711 law of a leg.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum G711 {
    /// PCMU, payload type 0.
    MuLaw,
    /// PCMA, payload type 8.
    ALaw,
}

impl G711 {
    /// The static payload type (RFC 3551).
    pub fn payload_type(self) -> u8 {
        match self {
            G711::MuLaw => 0,
            G711::ALaw => 8,
        }
    }

    /// Encodes one 16-bit linear sample (ITU-T G.711).
    pub fn encode(self, sample: i16) -> u8 {
        match self {
            G711::MuLaw => mulaw(sample),
            G711::ALaw => alaw(sample),
        }
    }
}

fn segment(mut v: i32) -> i32 {
    let mut seg = 0;
    while v > 0x3f && seg < 7 {
        v >>= 1;
        seg += 1;
    }
    seg
}

fn mulaw(sample: i16) -> u8 {
    const BIAS: i32 = 0x84;
    const CLIP: i32 = 32635;
    let s = i32::from(sample);
    let sign = if s < 0 { 0x80 } else { 0 };
    let mag = s.abs().min(CLIP) + BIAS;
    let exp = segment(mag >> 2);
    let exp = exp.clamp(0, 7);
    let mantissa = (mag >> (exp + 3)) & 0x0f;
    !((sign | (exp << 4) | mantissa) as u8)
}

fn alaw(sample: i16) -> u8 {
    let s = i32::from(sample) >> 3; // 13-bit
    let (sign, mag) = if s >= 0 { (0x80, s) } else { (0x00, -s - 1) };
    let mag = mag.min(0xfff);
    let (exp, mantissa) = if mag < 32 {
        (0, mag >> 1)
    } else {
        let exp = (31 - (mag as u32).leading_zeros()) as i32 - 4;
        (exp, (mag >> exp) & 0x0f)
    };
    ((sign | (exp << 4) | mantissa) as u8) ^ 0x55
}

/// Samples per 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;

/// The "secure" tone: three short rising beeps (1200, 1600, 2000 Hz, 80 ms
/// each, 40 ms apart), 400 ms in all: short, distinctive, not a dial tone.
#[derive(Clone, Copy, Debug)]
pub struct SecureTone {
    law: G711,
}

/// Frames (20 ms) in the secure tone.
pub const SECURE_TONE_FRAMES: usize = 20;

impl SecureTone {
    /// A tone for a leg using `law`.
    pub fn new(law: G711) -> SecureTone {
        SecureTone { law }
    }

    /// Frame `n` (0-based) of the tone, or `None` after the end.
    pub fn frame(&self, n: usize) -> Option<[u8; FRAME_SAMPLES]> {
        if n >= SECURE_TONE_FRAMES {
            return None;
        }
        let mut out = [0u8; FRAME_SAMPLES];
        for (i, b) in out.iter_mut().enumerate() {
            let t_samples = n * FRAME_SAMPLES + i; // at 8 kHz
            let ms = t_samples / 8;
            // Beeps at 0-80, 120-200, 240-320 ms; silence otherwise.
            let (beep, start) = (ms / 120, (ms / 120) * 120);
            let in_beep = beep < 3 && ms - start < 80;
            let freq = [1200.0, 1600.0, 2000.0][beep.min(2)];
            let v = if in_beep {
                let t = t_samples as f64 / 8000.0;
                (6000.0 * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16
            } else {
                0
            };
            *b = self.law.encode(v);
        }
        Some(out)
    }
}

/// The RFC 4733 §3.2 event code of a DTMF key, if it is one.
pub fn dtmf_event(key: char) -> Option<u8> {
    match key {
        '0'..='9' => Some(key as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(key as u8 - b'A' + 12),
        _ => None,
    }
}

/// One RFC 4733 telephone-event packet payload (4 octets) and whether it
/// starts a new event (the RTP marker bit, RFC 4733 §2.5.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventPacket {
    /// The 4-octet payload: event, E|R|volume, duration.
    pub payload: [u8; 4],
    /// Set the RTP marker bit.
    pub marker: bool,
    /// RTP timestamp offset of the event's start, in samples from the
    /// start of the sequence.
    pub timestamp: u32,
}

/// Sends a digit string as RFC 4733 events: each key 100 ms (updates every
/// 20 ms), its end packet sent three times (§2.5.1.4), then 60 ms of pause.
/// Volume -10 dBm0.
#[derive(Clone, Debug)]
pub struct DtmfSender {
    keys: Vec<u8>,
}

const KEY_FRAMES: usize = 5; // 100 ms
const END_REPEATS: usize = 3;
const GAP_FRAMES: usize = 3; // 60 ms
const VOLUME: u8 = 10;

impl DtmfSender {
    /// A sender for `digits`; `None` if any character is not a DTMF key.
    pub fn new(digits: &str) -> Option<DtmfSender> {
        let keys = digits
            .chars()
            .map(dtmf_event)
            .collect::<Option<Vec<u8>>>()?;
        Some(DtmfSender { keys })
    }

    /// Packets per key, including the pause after it.
    fn per_key() -> usize {
        KEY_FRAMES + END_REPEATS - 1 + GAP_FRAMES
    }

    /// Number of 20 ms packet slots the whole sequence takes.
    pub fn slots(&self) -> usize {
        self.keys.len() * Self::per_key()
    }

    /// The packet for slot `n` (one slot per 20 ms), or `None` for a slot
    /// in a pause or past the end.
    pub fn packet(&self, n: usize) -> Option<EventPacket> {
        let key_index = n / Self::per_key();
        let event = *self.keys.get(key_index)?;
        let k = n % Self::per_key();
        let start_ts = (key_index * Self::per_key() * FRAME_SAMPLES) as u32;
        let (end, duration) = if k < KEY_FRAMES - 1 {
            (false, (k + 1) * FRAME_SAMPLES)
        } else if k < KEY_FRAMES + END_REPEATS - 1 {
            (true, KEY_FRAMES * FRAME_SAMPLES)
        } else {
            return None;
        };
        let d = duration as u16;
        Some(EventPacket {
            payload: [
                event,
                (u8::from(end) << 7) | VOLUME,
                (d >> 8) as u8,
                d as u8,
            ],
            marker: k == 0,
            timestamp: start_ts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes mu-law (for checking the encoder).
    fn mulaw_decode(u: u8) -> i32 {
        let u = !u;
        let sign = u & 0x80;
        let exp = i32::from((u >> 4) & 7);
        let mant = i32::from(u & 0x0f);
        let mag = (((mant << 3) + 0x84) << exp) - 0x84;
        if sign != 0 {
            -mag
        } else {
            mag
        }
    }

    fn alaw_decode(a: u8) -> i32 {
        let a = a ^ 0x55;
        let sign = a & 0x80;
        let exp = i32::from((a >> 4) & 7);
        let mant = i32::from(a & 0x0f);
        let mag = if exp == 0 {
            (mant << 4) + 8
        } else {
            ((mant << 4) + 0x108) << (exp - 1)
        };
        if sign != 0 {
            mag
        } else {
            -mag
        }
    }

    #[test]
    fn g711_encoders_round_trip_within_quantisation() {
        for s in (-32000i32..32000).step_by(97) {
            let s16 = s as i16;
            let mu = mulaw_decode(G711::MuLaw.encode(s16));
            let a = alaw_decode(G711::ALaw.encode(s16));
            // Logarithmic quantisation: error grows with magnitude.
            let tol = (s.abs() / 16).max(40);
            assert!((mu - s).abs() <= tol, "mu-law {s} -> {mu}");
            assert!((a - s).abs() <= tol, "A-law {s} -> {a}");
        }
        // Known code points: silence.
        assert_eq!(G711::MuLaw.encode(0), 0xff);
        assert_eq!(G711::ALaw.encode(0), 0xd5);
    }

    #[test]
    fn secure_tone_has_three_beeps_and_ends() {
        let tone = SecureTone::new(G711::MuLaw);
        let frames: Vec<[u8; 160]> = (0..).map_while(|n| tone.frame(n)).collect();
        assert_eq!(frames.len(), SECURE_TONE_FRAMES);
        // Energy per 20 ms frame: loud in beeps, silent between them.
        let energy: Vec<i64> = frames
            .iter()
            .map(|f| {
                f.iter()
                    .map(|&b| i64::from(mulaw_decode(b)).pow(2))
                    .sum::<i64>()
                    / 160
            })
            .collect();
        let loud: Vec<bool> = energy.iter().map(|&e| e > 1_000_000).collect();
        // 0-80 ms loud (frames 0-3), 80-120 silent (4-5), 120-200 loud (6-9)...
        assert_eq!(
            loud,
            vec![
                true, true, true, true, false, false, true, true, true, true, false, false, true,
                true, true, true, false, false, false, false
            ]
        );
    }

    #[test]
    fn dtmf_pin_follows_rfc4733() {
        assert_eq!(dtmf_event('0'), Some(0));
        assert_eq!(dtmf_event('#'), Some(11));
        assert_eq!(dtmf_event('D'), Some(15));
        assert!(DtmfSender::new("12x").is_none());
        let s = DtmfSender::new("1#").unwrap();
        let pkts: Vec<Option<EventPacket>> = (0..s.slots()).map(|n| s.packet(n)).collect();
        assert_eq!(pkts.len(), 2 * 10);
        let first = pkts[0].unwrap();
        assert!(first.marker);
        assert_eq!(first.payload, [1, VOLUME, 0, 160]);
        // Updates grow the duration; the end packet repeats three times.
        assert_eq!(pkts[2].unwrap().payload[2..], [0x01, 0xe0]); // 480
        assert_eq!(pkts[3].unwrap().payload[2..], [0x02, 0x80]); // 640
        for p in &pkts[4..7] {
            let p = p.unwrap();
            assert_eq!(p.payload[1] & 0x80, 0x80, "E bit");
            assert_eq!(u16::from_be_bytes([p.payload[2], p.payload[3]]), 800);
            assert!(!p.marker);
        }
        assert!(pkts[7..10].iter().all(Option::is_none), "pause");
        let second = pkts[10].unwrap();
        assert!(second.marker);
        assert_eq!(second.payload[0], 11);
        assert_eq!(second.timestamp, 10 * 160);
        assert!(s.packet(20).is_none());
    }
}
