/*
 * srtp_tool: a thin CLI around the system libsrtp2, used by dialgate's Rust
 * tests as an independent reference implementation of SRTP/SRTCP.
 *
 * Usage:
 *   srtp_tool MODE SUITE KEYSALT_HEX
 *       MODE: protect | unprotect | protect-rtcp | unprotect-rtcp
 *       Reads one packet per line (hex) from stdin and writes one line per
 *       packet to stdout: the resulting packet as lowercase hex, or
 *       "ERR <n>" where n is the numeric srtp_err_status_t. Processing
 *       continues after an error. One SRTP session is used for the whole
 *       run (ssrc_any_outbound for protect modes, ssrc_any_inbound for
 *       unprotect modes, replay window 1024, allow_repeat_tx = 0), so
 *       replay protection and ROC tracking span all input lines.
 *       Malformed input (bad hex, oversize packet) yields "ERR 2"
 *       (srtp_err_status_bad_param).
 *
 *   srtp_tool bench SUITE ITERATIONS
 *       Prints "libsrtp2 SUITE protect NS" and "libsrtp2 SUITE unprotect NS"
 *       (nanoseconds per 172-byte RTP packet, one decimal).
 *
 * SUITE is an SDES crypto-suite name (RFC 4568 / RFC 6188 / RFC 7714):
 *   AES_CM_128_HMAC_SHA1_80, AES_CM_128_HMAC_SHA1_32, AES_256_CM_HMAC_SHA1_80,
 *   AEAD_AES_128_GCM, AEAD_AES_256_GCM.
 * KEYSALT_HEX is master key || master salt (16+14, 16+14, 32+14, 16+12, 32+12
 * bytes respectively).
 *
 * RTP header extensions are authenticated (and, for GCM, part of the AAD)
 * but never encrypted: RFC 6904 header encryption is not enabled.
 */
#define _POSIX_C_SOURCE 200809L

#include <srtp2/srtp.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Packet buffer. srtp_protect_rtcp may append up to SRTP_MAX_TRAILER_LEN + 4
 * bytes (tag, MKI, E-flag/index word), so input packets are limited to
 * BUF_LEN - MAX_GROWTH bytes. */
#define BUF_LEN 2048
#define MAX_GROWTH (SRTP_MAX_TRAILER_LEN + 4)
#define MAX_IN_LEN (BUF_LEN - MAX_GROWTH)

struct suite {
    const char *name;
    void (*rtp)(srtp_crypto_policy_t *);
    void (*rtcp)(srtp_crypto_policy_t *);
    size_t keysalt_len;
};

/* srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80 is a function-like macro
 * for srtp_crypto_policy_set_rtp_default, so the latter is used here.
 * For the SHA1_32 suite, RFC 4568 (suite definition) requires an
 * 80-bit tag for SRTCP, so its RTCP policy is the plain _80 default. */
static const struct suite SUITES[] = {
    {"AES_CM_128_HMAC_SHA1_80", srtp_crypto_policy_set_rtp_default,
     srtp_crypto_policy_set_rtp_default, 16 + 14},
    {"AES_CM_128_HMAC_SHA1_32", srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32,
     srtp_crypto_policy_set_rtp_default, 16 + 14},
    {"AES_256_CM_HMAC_SHA1_80", srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80,
     srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80, 32 + 14},
    {"AEAD_AES_128_GCM", srtp_crypto_policy_set_aes_gcm_128_16_auth,
     srtp_crypto_policy_set_aes_gcm_128_16_auth, 16 + 12},
    {"AEAD_AES_256_GCM", srtp_crypto_policy_set_aes_gcm_256_16_auth,
     srtp_crypto_policy_set_aes_gcm_256_16_auth, 32 + 12},
};

static const struct suite *find_suite(const char *name)
{
    for (size_t i = 0; i < sizeof(SUITES) / sizeof(SUITES[0]); i++)
        if (strcmp(SUITES[i].name, name) == 0)
            return &SUITES[i];
    return NULL;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode `len` hex chars into out (capacity `cap`). Returns byte count or -1. */
static long hex_decode(const char *hex, size_t len, uint8_t *out, size_t cap)
{
    if (len % 2 != 0 || len / 2 > cap)
        return -1;
    for (size_t i = 0; i < len / 2; i++) {
        int hi = hexval((unsigned char)hex[2 * i]);
        int lo = hexval((unsigned char)hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return (long)(len / 2);
}

static void print_hex(const uint8_t *p, int len)
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < len; i++) {
        putchar(digits[p[i] >> 4]);
        putchar(digits[p[i] & 15]);
    }
    putchar('\n');
}

/* Create a single-policy session for `suite` with the given key||salt. */
static srtp_err_status_t make_session(srtp_t *session, const struct suite *s,
                                      uint8_t *keysalt, srtp_ssrc_type_t type)
{
    srtp_policy_t policy;
    memset(&policy, 0, sizeof(policy));
    s->rtp(&policy.rtp);
    s->rtcp(&policy.rtcp);
    policy.ssrc.type = type;
    policy.ssrc.value = 0;
    policy.key = keysalt;
    policy.window_size = 1024;
    policy.allow_repeat_tx = 0;
    policy.next = NULL;
    return srtp_create(session, &policy);
}

static int usage(void)
{
    fprintf(stderr,
            "usage: srtp_tool protect|unprotect|protect-rtcp|unprotect-rtcp "
            "SUITE KEYSALT_HEX\n"
            "       srtp_tool bench SUITE ITERATIONS\n"
            "suites:");
    for (size_t i = 0; i < sizeof(SUITES) / sizeof(SUITES[0]); i++)
        fprintf(stderr, " %s", SUITES[i].name);
    fputc('\n', stderr);
    return 2;
}

/* ---- filter mode ------------------------------------------------------- */

enum mode { M_PROTECT, M_UNPROTECT, M_PROTECT_RTCP, M_UNPROTECT_RTCP };

static int run_filter(enum mode mode, const struct suite *s, const char *keyhex)
{
    uint8_t keysalt[64];
    long klen = hex_decode(keyhex, strlen(keyhex), keysalt, sizeof(keysalt));
    if (klen < 0 || (size_t)klen != s->keysalt_len) {
        fprintf(stderr, "srtp_tool: %s needs %zu bytes of key||salt hex\n",
                s->name, s->keysalt_len);
        return 2;
    }

    int outbound = (mode == M_PROTECT || mode == M_PROTECT_RTCP);
    srtp_t session;
    srtp_err_status_t st = make_session(
        &session, s, keysalt, outbound ? ssrc_any_outbound : ssrc_any_inbound);
    if (st != srtp_err_status_ok) {
        fprintf(stderr, "srtp_tool: srtp_create failed: %d\n", (int)st);
        return 1;
    }

    /* Aligned because libsrtp casts the buffer to header structs. */
    static uint32_t buf32[BUF_LEN / 4];
    uint8_t *buf = (uint8_t *)buf32;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;

    while ((n = getline(&line, &cap, stdin)) != -1) {
        /* Strip trailing newline / CR / spaces. */
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' ||
                         line[n - 1] == ' ' || line[n - 1] == '\t'))
            n--;
        long len = hex_decode(line, (size_t)n, buf, MAX_IN_LEN);
        if (len < 0) {
            printf("ERR %d\n", (int)srtp_err_status_bad_param);
            fflush(stdout);
            continue;
        }
        int plen = (int)len;
        switch (mode) {
        case M_PROTECT:
            st = srtp_protect(session, buf, &plen);
            break;
        case M_UNPROTECT:
            st = srtp_unprotect(session, buf, &plen);
            break;
        case M_PROTECT_RTCP:
            st = srtp_protect_rtcp(session, buf, &plen);
            break;
        case M_UNPROTECT_RTCP:
            st = srtp_unprotect_rtcp(session, buf, &plen);
            break;
        }
        if (st == srtp_err_status_ok)
            print_hex(buf, plen);
        else
            printf("ERR %d\n", (int)st);
        fflush(stdout);
    }
    free(line);
    srtp_dealloc(session);
    return 0;
}

/* ---- bench mode -------------------------------------------------------- */

#define PKT_LEN 172   /* 12-byte RTP header + 160-byte payload (20 ms PCMU) */
#define BATCH 256     /* packets per timed batch */
#define SLOT 256      /* per-packet slot: PKT_LEN + trailer room, aligned */

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/*
 * Method: the sender and receiver sessions run in lock step, BATCH packets
 * at a time. For each batch we time (1) filling BATCH slots from a template
 * and protecting them, then (2) unprotecting those same BATCH slots, with a
 * CLOCK_MONOTONIC read around each phase. Each phase's per-packet figure is
 * its accumulated time divided by the packet count, so unprotect is measured
 * directly (no subtraction of two noisy totals) and the working set stays
 * small (BATCH * SLOT = 64 KiB, L2-resident), with clock overhead amortised
 * over BATCH packets. The protect figure INCLUDES the 172-byte memcpy of the
 * template and the sequence-number store (a few ns), since libsrtp encrypts
 * in place and every packet needs a fresh plaintext; unprotect includes no
 * copy. Sequence numbers increase by one per packet (wrapping through the
 * ROC), so neither side ever hits a replay failure.
 */
static int run_bench(const struct suite *s, long iterations)
{
    uint8_t keysalt[64];
    for (size_t i = 0; i < sizeof(keysalt); i++)
        keysalt[i] = (uint8_t)(0x11 * (i % 15) + i);

    srtp_t tx, rx;
    if (make_session(&tx, s, keysalt, ssrc_any_outbound) != srtp_err_status_ok ||
        make_session(&rx, s, keysalt, ssrc_any_inbound) != srtp_err_status_ok) {
        fprintf(stderr, "srtp_tool: srtp_create failed for %s\n", s->name);
        return 1;
    }

    /* Template: V=2, PT=0, seq patched per packet, ts=0, SSRC=0xdeadbeef. */
    uint8_t tmpl[PKT_LEN];
    memset(tmpl, 0, sizeof(tmpl));
    tmpl[0] = 0x80;
    tmpl[1] = 0x00;
    tmpl[8] = 0xde; tmpl[9] = 0xad; tmpl[10] = 0xbe; tmpl[11] = 0xef;
    for (int i = 12; i < PKT_LEN; i++)
        tmpl[i] = (uint8_t)i;

    static uint32_t slots32[BATCH * SLOT / 4];
    uint8_t *slots = (uint8_t *)slots32;
    int lens[BATCH];
    uint16_t seq = 0;
    double t_prot = 0, t_unprot = 0;
    long warmup = iterations / 10 < 10000 ? 10000 : iterations / 10;
    long total = warmup + iterations, done = 0, measured = 0;

    while (done < total) {
        int nb = (total - done) < BATCH ? (int)(total - done) : BATCH;

        double t0 = now_ns();
        for (int i = 0; i < nb; i++) {
            uint8_t *p = slots + (size_t)i * SLOT;
            memcpy(p, tmpl, PKT_LEN);
            p[2] = (uint8_t)(seq >> 8);
            p[3] = (uint8_t)seq;
            seq++;
            lens[i] = PKT_LEN;
            srtp_err_status_t st = srtp_protect(tx, p, &lens[i]);
            if (st != srtp_err_status_ok) {
                fprintf(stderr, "srtp_tool: protect failed: %d\n", (int)st);
                return 1;
            }
        }
        double t1 = now_ns();
        for (int i = 0; i < nb; i++) {
            srtp_err_status_t st =
                srtp_unprotect(rx, slots + (size_t)i * SLOT, &lens[i]);
            if (st != srtp_err_status_ok || lens[i] != PKT_LEN) {
                fprintf(stderr, "srtp_tool: unprotect failed: %d\n", (int)st);
                return 1;
            }
        }
        double t2 = now_ns();

        /* Only batches that start after the warm-up count are timed. */
        if (done >= warmup) {
            t_prot += t1 - t0;
            t_unprot += t2 - t1;
            measured += nb;
        }
        done += nb;
    }

    if (measured > 0) {
        printf("libsrtp2 %s protect %.1f\n", s->name, t_prot / (double)measured);
        printf("libsrtp2 %s unprotect %.1f\n", s->name,
               t_unprot / (double)measured);
    }
    srtp_dealloc(tx);
    srtp_dealloc(rx);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 4)
        return usage();
    const struct suite *s = find_suite(argv[2]);
    if (!s) {
        fprintf(stderr, "srtp_tool: unknown suite %s\n", argv[2]);
        return usage();
    }

    /* libsrtp2 requires srtp_init() once before any session is created. */
    srtp_err_status_t st = srtp_init();
    if (st != srtp_err_status_ok) {
        fprintf(stderr, "srtp_tool: srtp_init failed: %d\n", (int)st);
        return 1;
    }

    int rc;
    const char *m = argv[1];
    if (strcmp(m, "bench") == 0) {
        char *end;
        errno = 0;
        long iters = strtol(argv[3], &end, 10);
        if (errno || *end || iters <= 0) {
            fprintf(stderr, "srtp_tool: bad ITERATIONS %s\n", argv[3]);
            return 2;
        }
        rc = run_bench(s, iters);
    } else if (strcmp(m, "protect") == 0) {
        rc = run_filter(M_PROTECT, s, argv[3]);
    } else if (strcmp(m, "unprotect") == 0) {
        rc = run_filter(M_UNPROTECT, s, argv[3]);
    } else if (strcmp(m, "protect-rtcp") == 0) {
        rc = run_filter(M_PROTECT_RTCP, s, argv[3]);
    } else if (strcmp(m, "unprotect-rtcp") == 0) {
        rc = run_filter(M_UNPROTECT_RTCP, s, argv[3]);
    } else {
        return usage();
    }
    srtp_shutdown();
    return rc;
}
