/*
 * faxpeer: a fax terminal on SpanDSP's t38_terminal (Debian libspandsp-dev), speaking UDPTL over a real
 * UDP socket. faxhub's interop tests run it as the independent implementation our T.30/T.38 engine must
 * agree with. Built at test time by crates/testkit/src/spandsp.rs.
 *
 *   faxpeer send|receive --local IP:PORT --remote IP:PORT --file F.tif
 *       [--ecm|--no-ecm] [--max-rate 14400|9600|...] [--compressions mh,mr,mmr] [--t38-version N]
 *       [--redundancy N] [--loss P --seed S] [--burst N] [--drop-frame F:K] [--inject AT:DELTA]
 *       [--ident STR] [--timeout SECS] [--unpaced] [--trace]
 *
 * The UDPTL framing (T.38 clause 9.1, redundancy error recovery) is our own and small: each datagram
 * carries the new IFP and up to N earlier ones; the receiving side delivers IFPs in sequence order,
 * recovering lost ones from later datagrams' redundancy and dropping duplicates and stale packets.
 * --loss drops each outgoing datagram with probability P (seeded), to test recovery; with --burst N each
 * loss takes N consecutive datagrams (a burst the redundancy cannot bridge when N > redundancy).
 * --drop-frame F:K drops, once, the datagram carrying the K-th IFP (1 = the first) of the first
 * transmission of ECM frame F, and leaves that IFP out of the redundancy of later datagrams too, so the
 * receiver cannot recover it: a frame whose data a paced sender split over several IFPs loses one piece.
 * --inject AT:DELTA sends, right after the datagram with sequence number AT, one extra datagram from the
 * same address with sequence number AT + DELTA (mod 65536) carrying a copy of that IFP: a spoofed or
 * stray datagram far ahead of (or, with DELTA > 32768, far behind) the stream.
 *
 * At the end it prints one line:
 *   RESULT code=N text="..." pages=N bit_rate=N ecm=0|1 compression=N bad_rows=N longest_bad_run=N
 *          cpu_ms=N wall_ms=N tx_datagrams=N tx_octets=N
 * and exits 0 when the fax succeeded, 1 when T.30 failed, 2 on usage or I/O errors.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <spandsp.h>

#define MAX_IFP 1500
#define HISTORY 8

static int sock = -1;
static struct sockaddr_in remote_addr;
static int redundancy = 3;
static double loss = 0.0;
static int burst = 1;
static int burst_left = 0;
static int drop_frame = -1;
static int drop_part = 0;
static int drop_state = 0;       /* 0 watching, then the part of frame drop_frame being sent, -1 done */
static int cut_seq = -1;         /* an IFP left out of every later datagram's redundancy */
static int inject_at = -1;
static int inject_delta = 0;
static long tx_datagrams = 0;     /* datagrams built (sent or dropped by --loss) and their octets */
static long tx_octets = 0;
static uint64_t rng = 88172645463325252ULL;
static int trace = 0;
static uint16_t tx_seq = 0;
static uint8_t history[HISTORY][MAX_IFP];
static int history_len[HISTORY];
static int done = 0;
static int result_code = -1;
static struct timespec start;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (t.tv_sec - start.tv_sec) + (t.tv_nsec - start.tv_nsec) / 1e9;
}

static double rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (double) ((rng * 2685821657736338717ULL) >> 11) / 9007199254740992.0;
}

static int put_len(uint8_t *p, int n)
{
    if (n < 0x80)
    {
        p[0] = (uint8_t) n;
        return 1;
    }
    p[0] = (uint8_t) (0x80 | (n >> 8));
    p[1] = (uint8_t) n;
    return 2;
}

static void hex(FILE *f, const uint8_t *b, int n)
{
    int i;
    for (i = 0; i < n && i < 24; i++)
        fprintf(f, "%02x", b[i]);
    if (n > 24)
        fprintf(f, "..(%d)", n);
}

static int reverse8(uint8_t b)
{
    int r = 0;
    int i;
    for (i = 0; i < 8; i++)
        if (b & (1 << i))
            r |= 0x80 >> i;
    return r;
}

/* SpanDSP hands us each IFP; we frame it with redundancy and send it once. */
static int tx_packet(t38_core_state_t *s, void *user_data, const uint8_t *buf, int len, int count)
{
    uint8_t d[4 * MAX_IFP];
    int n = 0;
    int i;
    int k;

    if (len <= 0 || len > MAX_IFP)
        return -1;
    /* An hdlc-data field at the start of a data IFP: [type][count][0x80 field][len 2 octets][data]. */
    int dropped = 0;
    if (drop_frame >= 0 && drop_state >= 0 && len >= 9 && (buf[0] & 0x80) && buf[2] == 0x80)
    {
        int fcd = (buf[5] == 0xff && buf[7] == 0x60);
        if (drop_state == 0 && fcd && reverse8(buf[8]) == drop_frame)
            drop_state = 1;
        else if (drop_state > 0)
            drop_state++;
        if (drop_state == drop_part)
        {
            dropped = 1;
            cut_seq = tx_seq;
            drop_state = -1;
            if (trace)
                fprintf(stderr, "%9.3f DROP seq=%u (frame %d, IFP %d)\n", now_s(), tx_seq, drop_frame, drop_part);
        }
    }
    d[n++] = (uint8_t) (tx_seq >> 8);
    d[n++] = (uint8_t) tx_seq;
    n += put_len(d + n, len);
    memcpy(d + n, buf, len);
    n += len;
    d[n++] = 0x00; /* error-recovery: secondary-ifp-packets */
    k = 0;
    for (i = 0; i < redundancy && i < HISTORY && i < tx_seq; i++)
    {
        if ((uint16_t) (tx_seq - 1 - i) == cut_seq)
            break;
        k++;
    }
    d[n++] = (uint8_t) k;
    for (i = 0; i < k; i++)
    {
        int slot = (tx_seq - 1 - i) % HISTORY;
        n += put_len(d + n, history_len[slot]);
        memcpy(d + n, history[slot], history_len[slot]);
        n += history_len[slot];
    }
    tx_datagrams++;
    tx_octets += n;
    memcpy(history[tx_seq % HISTORY], buf, len);
    history_len[tx_seq % HISTORY] = len;
    if (trace)
    {
        fprintf(stderr, "%9.3f TX seq=%u ", now_s(), tx_seq);
        hex(stderr, buf, len);
        fprintf(stderr, "\n");
    }
    if (inject_at >= 0 && tx_seq == inject_at)
    {
        uint8_t x[4 + MAX_IFP];
        int m = 0;
        uint16_t s2 = (uint16_t) (tx_seq + inject_delta);
        x[m++] = (uint8_t) (s2 >> 8);
        x[m++] = (uint8_t) s2;
        m += put_len(x + m, len);
        memcpy(x + m, buf, len);
        m += len;
        x[m++] = 0x00;
        x[m++] = 0x00;
        sendto(sock, d, n, 0, (struct sockaddr *) &remote_addr, sizeof(remote_addr));
        sendto(sock, x, m, 0, (struct sockaddr *) &remote_addr, sizeof(remote_addr));
        if (trace)
            fprintf(stderr, "%9.3f INJECT seq=%u after seq=%u\n", now_s(), s2, tx_seq);
        tx_seq++;
        return 0;
    }
    tx_seq++;
    if (dropped)
        return 0;
    if (burst_left > 0)
    {
        burst_left--;
        return 0;
    }
    if (loss > 0.0 && rnd() < loss)
    {
        burst_left = burst - 1;
        return 0;
    }
    sendto(sock, d, n, 0, (struct sockaddr *) &remote_addr, sizeof(remote_addr));
    return 0;
}

/* Receiving: in-order delivery with recovery from redundancy. */
static int rx_next = -1;          /* next sequence number to deliver */
static uint8_t pend[HISTORY * 4][MAX_IFP];
static int pend_len[HISTORY * 4];
static int pend_seq[HISTORY * 4];

static void deliver(t38_core_state_t *t38, int seq, const uint8_t *ifp, int len)
{
    if (trace)
    {
        fprintf(stderr, "%9.3f RX seq=%d ", now_s(), seq);
        hex(stderr, ifp, len);
        fprintf(stderr, "\n");
    }
    t38_core_rx_ifp_packet(t38, ifp, len, (uint16_t) seq);
}

/* Delivers held IFPs in order while the next one is there. */
static void drain_in_order(t38_core_state_t *t38)
{
    for (;;)
    {
        int slot = rx_next % (HISTORY * 4);
        if (pend_seq[slot] != rx_next || pend_len[slot] <= 0)
            break;
        deliver(t38, rx_next, pend[slot], pend_len[slot]);
        pend_len[slot] = 0;
        rx_next = (uint16_t) (rx_next + 1);
    }
}

static int get_len(const uint8_t *d, int n, int *pos, int *len)
{
    if (*pos >= n)
        return -1;
    if (d[*pos] & 0x80)
    {
        if (*pos + 1 >= n)
            return -1;
        *len = ((d[*pos] & 0x3f) << 8) | d[*pos + 1];
        *pos += 2;
    }
    else
    {
        *len = d[*pos];
        *pos += 1;
    }
    return (*pos + *len <= n) ? 0 : -1;
}

static void stash(int seq, const uint8_t *ifp, int len)
{
    int slot = seq % (HISTORY * 4);
    if (len > MAX_IFP)
        return;
    memcpy(pend[slot], ifp, len);
    pend_len[slot] = len;
    pend_seq[slot] = seq;
}

static void rx_datagram(t38_core_state_t *t38, const uint8_t *d, int n)
{
    int pos = 2;
    int seq;
    int plen;
    int ppos;
    int count;
    int i;
    int gap;

    if (n < 4)
        return;
    seq = (d[0] << 8) | d[1];
    if (get_len(d, n, &pos, &plen))
        return;
    ppos = pos;
    pos += plen;
    if (rx_next < 0)
        rx_next = seq;
    gap = (uint16_t) (seq - rx_next);
    if (gap >= 0x8000)
        return; /* old or duplicate */
    if (gap > HISTORY * 2)
    {
        /* Too far ahead: give up what is missing. */
        rx_next = seq;
        gap = 0;
    }
    stash(seq, d + ppos, plen);
    if (pos < n && d[pos] == 0x00 && pos + 1 < n)
    {
        pos++;
        count = d[pos++];
        for (i = 0; i < count; i++)
        {
            int l;
            int s2 = (uint16_t) (seq - 1 - i);
            if (get_len(d, n, &pos, &l))
                break;
            if ((uint16_t) (s2 - rx_next) < 0x8000)
                stash(s2, d + pos, l);
            pos += l;
        }
    }
    drain_in_order(t38);
    /* A gap that redundancy cannot fill any more: skip it. */
    if ((uint16_t) (seq - rx_next) < 0x8000 && (uint16_t) (seq - rx_next) > (unsigned) redundancy + 1)
    {
        while (rx_next != seq)
        {
            int slot = rx_next % (HISTORY * 4);
            if (pend_seq[slot] == rx_next && pend_len[slot] > 0)
            {
                deliver(t38, rx_next, pend[slot], pend_len[slot]);
                pend_len[slot] = 0;
            }
            rx_next = (uint16_t) (rx_next + 1);
        }
        drain_in_order(t38);
    }
}

static void phase_e(t30_state_t *s, void *user_data, int completion_code)
{
    result_code = completion_code;
    done = 1;
}

static int parse_addr(const char *s, struct sockaddr_in *a)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (!colon || colon - s >= (int) sizeof(host))
        return -1;
    memcpy(host, s, colon - s);
    host[colon - s] = 0;
    memset(a, 0, sizeof(*a));
    a->sin_family = AF_INET;
    a->sin_port = htons((uint16_t) atoi(colon + 1));
    return inet_pton(AF_INET, host, &a->sin_addr) == 1 ? 0 : -1;
}

static void usage(const char *why)
{
    fprintf(stderr, "faxpeer: %s\n", why);
    exit(2);
}

int main(int argc, char *argv[])
{
    const char *mode;
    const char *local = NULL;
    const char *remote = NULL;
    const char *file = NULL;
    const char *ident = "SPANDSP PEER";
    const char *comps = "mh,mr,mmr";
    int ecm = 1;
    int max_rate = 14400;
    int version = 0;
    int timeout_s = 120;
    int unpaced = 0;
    int i;
    int calling;
    struct sockaddr_in la;
    t38_terminal_state_t *t38;
    t30_state_t *t30;
    t38_core_state_t *core;
    int modems;
    int compressions = 0;
    double last;
    t30_stats_t st;
    struct rusage ru;

    if (argc < 2)
        usage("mode send or receive needed");
    mode = argv[1];
    for (i = 2; i < argc; i++)
    {
        const char *a = argv[i];
        const char *v = (i + 1 < argc) ? argv[i + 1] : NULL;
        if (!strcmp(a, "--ecm")) ecm = 1;
        else if (!strcmp(a, "--no-ecm")) ecm = 0;
        else if (!strcmp(a, "--unpaced")) unpaced = 1;
        else if (!strcmp(a, "--trace")) trace = 1;
        else if (v == NULL) usage("option without a value");
        else if (!strcmp(a, "--local")) { local = v; i++; }
        else if (!strcmp(a, "--remote")) { remote = v; i++; }
        else if (!strcmp(a, "--file")) { file = v; i++; }
        else if (!strcmp(a, "--ident")) { ident = v; i++; }
        else if (!strcmp(a, "--compressions")) { comps = v; i++; }
        else if (!strcmp(a, "--max-rate")) { max_rate = atoi(v); i++; }
        else if (!strcmp(a, "--t38-version")) { version = atoi(v); i++; }
        else if (!strcmp(a, "--redundancy")) { redundancy = atoi(v); i++; }
        else if (!strcmp(a, "--loss")) { loss = atof(v); i++; }
        else if (!strcmp(a, "--seed")) { rng = 88172645463325252ULL ^ (uint64_t) atoll(v) * 0x9E3779B97F4A7C15ULL; i++; }
        else if (!strcmp(a, "--timeout")) { timeout_s = atoi(v); i++; }
        else if (!strcmp(a, "--burst")) { burst = atoi(v); i++; }
        else if (!strcmp(a, "--drop-frame")) { if (sscanf(v, "%d:%d", &drop_frame, &drop_part) != 2 || drop_part < 1) usage("--drop-frame takes F:K"); i++; }
        else if (!strcmp(a, "--inject")) { if (sscanf(v, "%d:%d", &inject_at, &inject_delta) != 2) usage("--inject takes AT:DELTA"); i++; }
        else usage("unknown option");
    }
    if (strcmp(mode, "send") && strcmp(mode, "receive"))
        usage("mode must be send or receive");
    if (!local || !remote || !file)
        usage("--local, --remote and --file are required");
    if (burst < 1)
        usage("--burst must be 1 or more");
    if (redundancy < 0 || redundancy >= HISTORY)
        usage("--redundancy must be 0 to 7");
    calling = !strcmp(mode, "send");
    if (parse_addr(local, &la) || parse_addr(remote, &remote_addr))
        usage("addresses are IPv4 IP:PORT");
    sock = socket(AF_INET, SOCK_DGRAM, 0);
    if (sock < 0 || bind(sock, (struct sockaddr *) &la, sizeof(la)))
    {
        fprintf(stderr, "faxpeer: binding %s: %s\n", local, strerror(errno));
        return 2;
    }
    clock_gettime(CLOCK_MONOTONIC, &start);

    t38 = t38_terminal_init(NULL, calling, tx_packet, NULL);
    if (!t38)
        usage("t38_terminal_init failed");
    t30 = t38_terminal_get_t30_state(t38);
    core = t38_terminal_get_t38_core_state(t38);
    t38_set_t38_version(core, version);
    t38_set_max_datagram_size(core, 400);
    if (unpaced)
        t38_terminal_set_config(t38, T38_TERMINAL_OPTION_NO_PACING);
    t30_set_tx_ident(t30, ident);
    if (calling)
        t30_set_tx_file(t30, file, -1, -1);
    else
        t30_set_rx_file(t30, file, -1);
    t30_set_ecm_capability(t30, ecm);
    modems = T30_SUPPORT_V27TER;
    if (max_rate >= 7200)
        modems |= T30_SUPPORT_V29;
    if (max_rate >= 12000)
        modems |= T30_SUPPORT_V17;
    t30_set_supported_modems(t30, modems);
    {
        char list[64];
        char *tok;
        snprintf(list, sizeof(list), "%s", comps);
        for (tok = strtok(list, ","); tok; tok = strtok(NULL, ","))
        {
            if (!strcmp(tok, "mh")) compressions |= T30_SUPPORT_T4_1D_COMPRESSION;
            else if (!strcmp(tok, "mr")) compressions |= T30_SUPPORT_T4_2D_COMPRESSION;
            else if (!strcmp(tok, "mmr")) compressions |= T30_SUPPORT_T6_COMPRESSION;
            else usage("--compressions takes mh, mr, mmr");
        }
    }
    t30_set_supported_compressions(t30, compressions);
    t30_set_phase_e_handler(t30, phase_e, NULL);

    last = now_s();
    while (!done)
    {
        struct pollfd p = { sock, POLLIN, 0 };
        double t;
        int r = poll(&p, 1, 20);
        if (r > 0 && (p.revents & POLLIN))
        {
            uint8_t buf[8192];
            ssize_t n = recv(sock, buf, sizeof(buf), 0);
            if (n > 0)
                rx_datagram(t38_terminal_get_t38_core_state(t38), buf, (int) n);
        }
        t = now_s();
        if (t - last >= 0.02)
        {
            int samples = (int) ((t - last) * 8000.0);
            last += samples / 8000.0;
            if (t38_terminal_send_timeout(t38, samples))
                break;
        }
        if (t > timeout_s)
        {
            fprintf(stderr, "faxpeer: timed out after %d s\n", timeout_s);
            break;
        }
    }
    t30_get_transfer_statistics(t30, &st);
    getrusage(RUSAGE_SELF, &ru);
    printf("RESULT code=%d text=\"%s\" pages=%d bit_rate=%d ecm=%d compression=%d bad_rows=%d longest_bad_run=%d cpu_ms=%ld wall_ms=%ld tx_datagrams=%ld tx_octets=%ld\n",
           result_code, result_code >= 0 ? t30_completion_code_to_str(result_code) : "no result",
           calling ? st.pages_tx : st.pages_rx, st.bit_rate, st.error_correcting_mode, st.encoding, st.bad_rows,
           st.longest_bad_row_run,
           ru.ru_utime.tv_sec * 1000L + ru.ru_utime.tv_usec / 1000 + ru.ru_stime.tv_sec * 1000L + ru.ru_stime.tv_usec / 1000,
           (long) (now_s() * 1000.0), tx_datagrams, tx_octets);
    fflush(stdout);
    t38_terminal_release(t38);
    t38_terminal_free(t38);
    return (result_code == T30_ERR_OK) ? 0 : 1;
}
