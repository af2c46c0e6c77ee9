//! Offers and answers as real peers write them (keys replaced by test
//! keys of the right lengths: bytes counting up from a start value).

/// 30 octets 0x01.. (AES_CM_128 key and salt).
pub const CM128_A: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e";
/// 30 octets 0x65..
pub const CM128_B: &str = "ZWZnaGlqa2xtbm9wcXJzdHV2d3h5ent8fX5/gIGC";
/// 30 octets 0x97..
pub const CM128_C: &str = "l5iZmpucnZ6foKGio6SlpqeoqaqrrK2ur7CxsrO0";
/// 30 octets 0xc9..
pub const CM128_D: &str = "ycrLzM3Oz9DR0tPU1dbX2Nna29zd3t/g4eLj5OXm";
/// 46 octets 0x0b.. (AES_256_CM key and salt).
pub const CM256: &str = "CwwNDg8QERITFBUWFxgZGhscHR4fICEiIyQlJicoKSorLC0uLzAxMjM0NTY3OA==";
/// 28 octets 0x15.. (AEAD_AES_128_GCM key and salt).
pub const GCM128: &str = "FRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMA==";
/// 44 octets 0x1f.. (AEAD_AES_256_GCM key and salt).
pub const GCM256: &str = "HyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4/QEFCQ0RFRkdISUo=";
/// 44 octets 0x83..
pub const GCM256_B: &str = "g4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp+goaKjpKWmp6ipqqusra4=";

/// baresip 3.x with `mediaenc srtp-mand`: its own suite order (32-bit tag
/// first), a separate RTCP port and rtcp-mux, opus first.
pub const BARESIP: &str = "\
v=0
o=- 1481066347 1203938455 IN IP4 192.0.2.10
s=-
c=IN IP4 192.0.2.10
t=0 0
m=audio 10004 RTP/SAVP 96 0 8 101
b=AS:128
a=rtpmap:96 opus/48000/2
a=fmtp:96 stereo=1;sprop-stereo=1
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=rtcp:10005
a=sendrecv
a=label:1
a=ssrc:1414249384 cname:8e3ec1b1-92e0-4c3b-9e44-5c6b8b8f1d3a
a=rtcp-mux
a=ptime:20
a=crypto:1 AES_CM_128_HMAC_SHA1_32 inline:l5iZmpucnZ6foKGio6SlpqeoqaqrrK2ur7CxsrO0
a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e
a=crypto:3 AES_256_CM_HMAC_SHA1_32 inline:CwwNDg8QERITFBUWFxgZGhscHR4fICEiIyQlJicoKSorLC0uLzAxMjM0NTY3OA==
a=crypto:4 AEAD_AES_128_GCM inline:FRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMA==
a=crypto:5 AEAD_AES_256_GCM inline:HyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4/QEFCQ0RFRkdISUo=
";

/// Linphone 5.x: session-level attributes, codecs dialgate does not relay
/// (speex, G.729 via a lone fmtp), three telephone-event rates, AEAD first.
pub const LINPHONE: &str = "\
v=0
o=alice 2406 1637 IN IP4 198.51.100.23
s=Talk
c=IN IP4 198.51.100.23
t=0 0
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
a=record:off
m=audio 7078 RTP/SAVP 96 97 98 0 8 18 101 99 100
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:97 speex/16000
a=fmtp:97 vbr=on
a=rtpmap:98 speex/8000
a=fmtp:98 vbr=on
a=fmtp:18 annexb=yes
a=rtpmap:101 telephone-event/48000
a=rtpmap:99 telephone-event/16000
a=rtpmap:100 telephone-event/8000
a=rtcp-mux
a=crypto:1 AEAD_AES_256_GCM inline:HyAhIiMkJSYnKCkqKywtLi8wMTIzNDU2Nzg5Ojs8PT4/QEFCQ0RFRkdISUo=
a=crypto:2 AEAD_AES_128_GCM inline:FRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMA==
a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e|2^31
a=crypto:4 AES_256_CM_HMAC_SHA1_80 inline:CwwNDg8QERITFBUWFxgZGhscHR4fICEiIyQlJicoKSorLC0uLzAxMjM0NTY3OA==
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
";

/// A Cisco CUBE in front of Webex offering on the trunk (a re-INVITE from
/// the bridge side): media-level `c=`, crypto before rtpmap, no rtcp-mux.
pub const CISCO_TRUNK: &str = "\
v=0
o=CiscoSystemsSIP-GW-UserAgent 4424 2431 IN IP4 203.0.113.5
s=SIP Call
c=IN IP4 203.0.113.5
t=0 0
m=audio 16384 RTP/SAVP 0 8 101
c=IN IP4 203.0.113.5
a=crypto:1 AEAD_AES_256_GCM inline:g4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp+goaKjpKWmp6ipqqusra4=
a=crypto:2 AEAD_AES_128_GCM inline:FRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMA==
a=crypto:3 AES_CM_128_HMAC_SHA1_80 inline:ZWZnaGlqa2xtbm9wcXJzdHV2d3h5ent8fX5/gIGC
a=crypto:4 AES_CM_128_HMAC_SHA1_32 inline:ycrLzM3Oz9DR0tPU1dbX2Nna29zd3t/g4eLj5OXm
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
";

/// The same CUBE answering dialgate's trunk offer (`{tag}` is our tag):
/// PCMU and telephone-event/8000 under our payload type 100.
pub const CISCO_ANSWER: &str = "\
v=0
o=CiscoSystemsSIP-GW-UserAgent 8290 3345 IN IP4 203.0.113.5
s=SIP Call
c=IN IP4 203.0.113.5
t=0 0
m=audio 24580 RTP/SAVP 0 100
c=IN IP4 203.0.113.5
a=rtpmap:0 PCMU/8000
a=rtpmap:100 telephone-event/8000
a=fmtp:100 0-15
a=ptime:20
a=crypto:{tag} AES_CM_128_HMAC_SHA1_80 inline:ZWZnaGlqa2xtbm9wcXJzdHV2d3h5ent8fX5/gIGC
";

/// A WebRTC-era softphone over IPv6: RTP/SAVPF, opus and telephone-event
/// at 48 kHz, maxptime, mid, rtcp-fb.
pub const OPUS_IPV6: &str = "\
v=0
o=- 3925471 3925471 IN IP6 2001:db8::10
s=-
c=IN IP6 2001:db8::10
t=0 0
m=audio 40000 RTP/SAVPF 111 126
a=rtpmap:111 opus/48000/2
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:126 telephone-event/48000
a=fmtp:126 0-15
a=ptime:20
a=maxptime:120
a=rtcp-mux
a=rtcp-fb:111 transport-cc
a=mid:0
a=crypto:1 AEAD_AES_128_GCM inline:FRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMA==
";

/// A secure-voice terminal (RFC 9607): audio/scip next to PCMU, and a
/// video/scip stream that dialgate refuses (port 0 in the answer).
pub const SCIP: &str = "\
v=0
o=scip-terminal 20518 0 IN IP4 192.0.2.77
s=SCIP call
c=IN IP4 192.0.2.77
t=0 0
m=audio 30000 RTP/SAVP 118 0 101
a=rtpmap:118 scip/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=rtcp:30001 IN IP4 192.0.2.78
a=crypto:7 AES_256_CM_HMAC_SHA1_80 inline:CwwNDg8QERITFBUWFxgZGhscHR4fICEiIyQlJicoKSorLC0uLzAxMjM0NTY3OA==
a=crypto:9 AES_CM_128_HMAC_SHA1_80 inline:AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e
m=video 30002 RTP/SAVP 119
a=rtpmap:119 scip/90000
a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:ZWZnaGlqa2xtbm9wcXJzdHV2d3h5ent8fX5/gIGC
";

/// A browser's DTLS-SRTP offer (abridged).
pub const WEBRTC_DTLS: &str = "\
v=0
o=- 4611731400430051336 2 IN IP4 127.0.0.1
s=-
t=0 0
a=group:BUNDLE 0
a=msid-semantic: WMS
m=audio 9 UDP/TLS/RTP/SAVPF 111 0
c=IN IP4 0.0.0.0
a=rtcp:9 IN IP4 0.0.0.0
a=ice-ufrag:EsAw
a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1
a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F
a=setup:actpass
a=mid:0
a=sendrecv
a=rtcp-mux
a=rtpmap:111 opus/48000/2
a=fmtp:111 minptime=10;useinbandfec=1
a=rtpmap:0 PCMU/8000
";

/// An old PBX offering plain RTP.
pub const PLAIN_RTP: &str = "\
v=0
o=root 1821 1821 IN IP4 192.0.2.50
s=Asterisk PBX 16.2.1
c=IN IP4 192.0.2.50
t=0 0
m=audio 12000 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
a=ptime:20
a=maxptime:150
a=sendrecv
";

/// Every fixture that is a complete offer.
pub const OFFERS: [&str; 7] = [
    BARESIP,
    LINPHONE,
    CISCO_TRUNK,
    OPUS_IPV6,
    SCIP,
    WEBRTC_DTLS,
    PLAIN_RTP,
];
