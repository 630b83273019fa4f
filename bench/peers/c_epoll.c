/* The C floor for bench/fanout.py: a single-threaded epoll WebSocket fan-out server.
 *
 * Accepts WebSocket upgrades (RFC 6455 handshake, nothing else), then ignores
 * what clients send. A UDP datagram on the control port carries a poke's JSON;
 * it is framed once and written with one send() per client.
 *
 *     c_epoll <port> <control-udp-port>          (listens on 127.0.0.1)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FD 65536
#define HEAD_MAX 4096

/* ---- SHA-1 (FIPS 180-1), enough for Sec-WebSocket-Accept ---- */
static uint32_t rol(uint32_t v, int n) { return (v << n) | (v >> (32 - n)); }

static void sha1(const unsigned char *msg, size_t len, unsigned char out[20]) {
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t total = ((len + 8) / 64 + 1) * 64;
    unsigned char *buf = calloc(total, 1);
    memcpy(buf, msg, len);
    buf[len] = 0x80;
    uint64_t bits = (uint64_t)len * 8;
    for (int i = 0; i < 8; i++) buf[total - 1 - i] = (unsigned char)(bits >> (8 * i));
    for (size_t off = 0; off < total; off += 64) {
        uint32_t w[80];
        for (int i = 0; i < 16; i++)
            w[i] = (uint32_t)buf[off + 4 * i] << 24 | (uint32_t)buf[off + 4 * i + 1] << 16 |
                   (uint32_t)buf[off + 4 * i + 2] << 8 | buf[off + 4 * i + 3];
        for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (int i = 0; i < 80; i++) {
            uint32_t f, k;
            if (i < 20) { f = (b & c) | (~b & d); k = 0x5A827999; }
            else if (i < 40) { f = b ^ c ^ d; k = 0x6ED9EBA1; }
            else if (i < 60) { f = (b & c) | (b & d) | (c & d); k = 0x8F1BBCDC; }
            else { f = b ^ c ^ d; k = 0xCA62C1D6; }
            uint32_t t = rol(a, 5) + f + e + k + w[i];
            e = d; d = c; c = rol(b, 30); b = a; a = t;
        }
        h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e;
    }
    free(buf);
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < 4; j++) out[4 * i + j] = (unsigned char)(h[i] >> (24 - 8 * j));
}

static void base64(const unsigned char *in, size_t len, char *out) {
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len) v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len) v |= in[i + 2];
        out[o++] = t[(v >> 18) & 63];
        out[o++] = t[(v >> 12) & 63];
        out[o++] = i + 1 < len ? t[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? t[v & 63] : '=';
    }
    out[o] = 0;
}

/* ---- connections ---- */
static char *heads[MAX_FD];  /* request bytes while handshaking, NULL once open */
static int head_len[MAX_FD];
static int slot_of[MAX_FD];  /* index in `open_fds`, -1 if not open */
static int open_fds[MAX_FD];
static int n_open;

static void drop(int ep, int fd) {
    epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    if (slot_of[fd] >= 0) {
        int last = open_fds[--n_open];
        open_fds[slot_of[fd]] = last;
        slot_of[last] = slot_of[fd];
        slot_of[fd] = -1;
    }
    free(heads[fd]);
    heads[fd] = NULL;
    close(fd);
}

static int handshake(int fd) {
    char *head = heads[fd];
    const char *key = strcasestr(head, "\r\nSec-WebSocket-Key:");
    if (!key) return -1;
    key += 20;
    while (*key == ' ') key++;
    const char *end = strstr(key, "\r\n");
    if (!end || end - key > 64) return -1;
    char joined[128];
    int n = snprintf(joined, sizeof joined, "%.*s258EAFA5-E914-47DA-95CA-C5AB0DC85B11",
                     (int)(end - key), key);
    unsigned char digest[20];
    sha1((unsigned char *)joined, (size_t)n, digest);
    char accept[32];
    base64(digest, 20, accept);
    char answer[256];
    int len = snprintf(answer, sizeof answer,
                       "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                       "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                       accept);
    if (send(fd, answer, (size_t)len, MSG_NOSIGNAL) != len) return -1;
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s <port> <control-udp-port>\n", argv[0]);
        return 2;
    }
    for (int i = 0; i < MAX_FD; i++) slot_of[i] = -1;
    struct sockaddr_in addr = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr);

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    addr.sin_port = htons((uint16_t)atoi(argv[1]));
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) || listen(lfd, 4096)) {
        perror("listen");
        return 1;
    }
    int ufd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    addr.sin_port = htons((uint16_t)atoi(argv[2]));
    if (bind(ufd, (struct sockaddr *)&addr, sizeof addr)) {
        perror("bind udp");
        return 1;
    }
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.fd = lfd;
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    ev.data.fd = ufd;
    epoll_ctl(ep, EPOLL_CTL_ADD, ufd, &ev);
    printf("c_epoll listening on 127.0.0.1:%s\n", argv[1]);
    fflush(stdout);

    struct epoll_event events[256];
    char rbuf[HEAD_MAX];
    unsigned char frame[70000];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        if (n < 0 && errno == EINTR) continue;
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == lfd) {
                for (;;) {
                    int c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK);
                    if (c < 0) break;
                    if (c >= MAX_FD) { close(c); continue; }
                    heads[c] = malloc(HEAD_MAX + 1);
                    head_len[c] = 0;
                    ev.data.fd = c;
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev);
                }
            } else if (fd == ufd) {
                ssize_t len = recv(ufd, frame + 4, sizeof frame - 4, 0);
                if (len <= 0) continue;
                unsigned char *start;
                size_t total;
                if (len < 126) {
                    start = frame + 2;
                    start[0] = 0x81;
                    start[1] = (unsigned char)len;
                    total = (size_t)len + 2;
                } else {
                    start = frame;
                    start[0] = 0x81;
                    start[1] = 126;
                    start[2] = (unsigned char)(len >> 8);
                    start[3] = (unsigned char)len;
                    total = (size_t)len + 4;
                }
                for (int k = 0; k < n_open; k++)
                    send(open_fds[k], start, total, MSG_NOSIGNAL | MSG_DONTWAIT);
            } else if (heads[fd]) {
                ssize_t got = recv(fd, heads[fd] + head_len[fd], HEAD_MAX - head_len[fd], 0);
                if (got <= 0) { drop(ep, fd); continue; }
                head_len[fd] += (int)got;
                heads[fd][head_len[fd]] = 0;
                if (strstr(heads[fd], "\r\n\r\n")) {
                    if (handshake(fd)) { drop(ep, fd); continue; }
                    free(heads[fd]);
                    heads[fd] = NULL;
                    slot_of[fd] = n_open;
                    open_fds[n_open++] = fd;
                } else if (head_len[fd] >= HEAD_MAX) {
                    drop(ep, fd);
                }
            } else {
                ssize_t got = recv(fd, rbuf, sizeof rbuf, 0);
                if (got == 0 || (got < 0 && errno != EAGAIN)) drop(ep, fd);
            }
        }
    }
}
