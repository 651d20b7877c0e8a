/*
 * A tiny peer on SpanDSP's t38_core for the faxhub t38 interop test.
 * Built at test time by tests/spandsp.rs; reads commands on stdin:
 *
 *   V <version>                          set the T.38 version
 *   E ind <n>                            encode an indicator
 *   E data <dt> <ft> <hex|-> [<ft> <hex|->]...   encode a data packet
 *   D <hex>                              decode an IFP
 *
 * Encoding prints the IFP in hex (or "ERR"). Decoding prints one line per
 * callback ("ind <n>" or "field <dt> <ft> <hex|->") then "rc <result>".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <spandsp.h>

static int rx_seq = 0;

static void print_hex(const uint8_t *buf, int len)
{
    int i;

    if (len <= 0 || buf == NULL)
    {
        printf("-");
        return;
    }
    for (i = 0; i < len; i++)
        printf("%02x", buf[i]);
}

static int tx_packet(t38_core_state_t *s, void *user_data, const uint8_t *buf, int len, int count)
{
    print_hex(buf, len);
    printf("\n");
    return 0;
}

static int rx_indicator(t38_core_state_t *s, void *user_data, int indicator)
{
    printf("ind %d\n", indicator);
    return 0;
}

static int rx_data(t38_core_state_t *s, void *user_data, int data_type, int field_type, const uint8_t *buf, int len)
{
    printf("field %d %d ", data_type, field_type);
    print_hex(buf, len);
    printf("\n");
    return 0;
}

static int rx_missing(t38_core_state_t *s, void *user_data, int rx_seq_no, int expected_seq_no)
{
    return 0;
}

static int unhex(const char *s, uint8_t *out, int max)
{
    int n = 0;
    unsigned int v;

    if (strcmp(s, "-") == 0)
        return 0;
    while (s[0] && s[1] && n < max)
    {
        if (sscanf(s, "%2x", &v) != 1)
            return -1;
        out[n++] = (uint8_t) v;
        s += 2;
    }
    return n;
}

int main(void)
{
    t38_core_state_t *t;
    char line[70000];
    static uint8_t bufs[8][4096];
    t38_data_field_t fields[8];
    static uint8_t ifp[70000];
    char *tok;
    int nfields;
    int dt;
    int len;

    t = t38_core_init(NULL, rx_indicator, rx_data, rx_missing, NULL, tx_packet, NULL);
    if (t == NULL)
        return 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    while (fgets(line, sizeof(line), stdin))
    {
        line[strcspn(line, "\r\n")] = '\0';
        tok = strtok(line, " ");
        if (tok == NULL)
            continue;
        if (strcmp(tok, "V") == 0)
        {
            t38_set_t38_version(t, atoi(strtok(NULL, " ")));
        }
        else if (strcmp(tok, "E") == 0)
        {
            tok = strtok(NULL, " ");
            if (strcmp(tok, "ind") == 0)
            {
                /* 0x100 forces a send even when the indicator is unchanged. */
                if (t38_core_send_indicator(t, atoi(strtok(NULL, " ")) | 0x100) < 0)
                    printf("ERR\n");
            }
            else
            {
                dt = atoi(strtok(NULL, " "));
                nfields = 0;
                while ((tok = strtok(NULL, " ")) != NULL && nfields < 8)
                {
                    fields[nfields].field_type = atoi(tok);
                    len = unhex(strtok(NULL, " "), bufs[nfields], sizeof(bufs[nfields]));
                    fields[nfields].field = bufs[nfields];
                    fields[nfields].field_len = len;
                    nfields++;
                }
                if (t38_core_send_data_multi_field(t, dt, fields, nfields, T38_PACKET_CATEGORY_CONTROL_DATA) < 0)
                    printf("ERR\n");
            }
        }
        else if (strcmp(tok, "D") == 0)
        {
            len = unhex(strtok(NULL, " "), ifp, sizeof(ifp));
            printf("rc %d\n", t38_core_rx_ifp_packet(t, ifp, len, (uint16_t) rx_seq++));
        }
        fflush(stdout);
    }
    t38_core_free(t);
    return 0;
}
