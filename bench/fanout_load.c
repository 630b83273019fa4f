/* One load-generator process for bench/fanout.py, in C (same job and the same
 * stdin/stdout lines as bench/fanout_load.py, at a fraction of its CPU per message).
 *
 * Opens `count` connections from the given source addresses in 127.0.0.0/8, sends
 * the HTTP request, walks the handshake steps (wait for a marker, then optionally
 * send bytes), and then records for every poke version the monotonic time each
 * connection got it (a poke is found by its "version":N field, whatever the framing).
 *
 *     fanout_load <spec-file>
 *
 * Spec file, one item per line, strings hex-encoded ("-" for none):
 *     host port count first_version last_version eio_pong concurrency [lifetime connect_phase]
 *     source1 source2 ...
 *     request
 *     n_steps
 *     marker reply          (n_steps lines)
 *     ping pong             (the Engine.IO ping frame and its masked answer)
 *
 * Lines out: "progress R F", "ready R F SECONDS", "got VERSION COUNT", "reported".
 * Lines in: "report PATH", "quit" (or EOF).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define BUF_MAX 16384
#define TAIL 32
#define HANDSHAKE_S 30.0
/* Defaults; the spec's first line may override both (bench/scale.py holds 100,000
 * connections for a long soak). */
static double CONNECT_PHASE_S = 180.0;
static double LIFETIME_S = 1800.0;

typedef struct { unsigned char *p; int n; } bytes_t;

enum { CONNECTING, HEADERS, STEPS, READY, DEAD };

typedef struct {
    int fd;
    int state;
    int step;
    int len;          /* bytes in buf */
    double started;
    unsigned char *buf; /* handshake bytes, then the tail after the last poke */
} conn_t;

static bytes_t request, *markers, *replies, ping, pong;
static int n_steps;
static conn_t *conns;
static int count, first_v, last_v, eio_pong, concurrency;
static int ready_n, failed_n, lost_n, unexpected_n, in_flight;
static double **arrivals;
static int *got_n;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static bytes_t unhex(const char *s) {
    bytes_t b = {NULL, 0};
    if (!s || strcmp(s, "-") == 0) return b;
    size_t n = strlen(s) / 2;
    b.p = malloc(n + 1);
    for (size_t i = 0; i < n; i++) b.p[i] = (unsigned char)(hexval(s[2 * i]) * 16 + hexval(s[2 * i + 1]));
    b.p[n] = 0;
    b.n = (int)n;
    return b;
}

static char *next_line(FILE *f) {
    static char *line = NULL;
    static size_t cap = 0;
    ssize_t got = getline(&line, &cap, f);
    if (got < 0) { fprintf(stderr, "spec: truncated\n"); exit(2); }
    while (got > 0 && (line[got - 1] == '\n' || line[got - 1] == '\r')) line[--got] = 0;
    return line;
}

__attribute__((format(printf, 1, 2)))
static void say(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
}

static void finish(int ep, conn_t *c, int ok) {
    if (c->state == READY && !ok) lost_n++;
    if (c->state != READY && c->state != DEAD) {
        if (ok) { ready_n++; } else { failed_n++; }
        in_flight--;
    }
    if (!ok) {
        if (c->fd >= 0) {
            epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
            close(c->fd);
        }
        c->fd = -1;
        c->state = DEAD;
        free(c->buf);
        c->buf = NULL;
    }
}

static void send_all(conn_t *c, const bytes_t *b) {
    if (b->n > 0) (void)send(c->fd, b->p, (size_t)b->n, MSG_NOSIGNAL);
}

static void record(int version, double t) {
    if (version < first_v || version > last_v) { unexpected_n++; return; }
    int i = version - first_v;
    arrivals[i][got_n[i]++] = t;
    if (got_n[i] == ready_n) say("got %d %d\n", version, got_n[i]);
}

/* Find complete "version":N<non-digit> in buf[0..len); keep what follows the last. */
static void scan(conn_t *c, double t) {
    static const char key[] = "\"version\":";
    int end = 0;
    unsigned char *p = c->buf;
    int len = c->len;
    for (;;) {
        unsigned char *at = memmem(p + end, (size_t)(len - end), key, sizeof key - 1);
        if (!at) break;
        int i = (int)(at - p) + (int)sizeof key - 1, v = 0, digits = 0;
        while (i < len && p[i] >= '0' && p[i] <= '9') { v = v * 10 + (p[i] - '0'); i++; digits++; }
        if (i >= len) break; /* number may continue in the next read */
        if (digits) record(v, t);
        end = i;
    }
    int keep = len - end;
    if (keep > TAIL) { end = len - TAIL; keep = TAIL; }
    memmove(p, p + end, (size_t)keep);
    c->len = keep;
}

static void advance(int ep, conn_t *c) {
    while (c->step < n_steps) {
        bytes_t *m = &markers[c->step];
        if (m->n > 0) {
            unsigned char *at = memmem(c->buf, (size_t)c->len, m->p, (size_t)m->n);
            if (!at) return;
            int cut = (int)(at - c->buf) + m->n;
            memmove(c->buf, c->buf + cut, (size_t)(c->len - cut));
            c->len -= cut;
        }
        send_all(c, &replies[c->step]);
        c->step++;
    }
    finish(ep, c, 1);
    c->state = READY;
    if (c->len > TAIL) {
        memmove(c->buf, c->buf + c->len - TAIL, TAIL);
        c->len = TAIL;
    }
}

static void on_readable(int ep, conn_t *c) {
    unsigned char rbuf[16384];
    for (;;) {
        ssize_t got = recv(c->fd, rbuf, sizeof rbuf, 0);
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) { finish(ep, c, 0); return; }
        if (got < 0) return;
        double t = now_s();
        if (c->state == READY) {
            if (ping.n && got == ping.n && memcmp(rbuf, ping.p, (size_t)ping.n) == 0) {
                send_all(c, &pong);
                continue;
            }
            size_t off = 0;
            while (off < (size_t)got) { /* tail + data, in slices that fit the buffer */
                size_t take = (size_t)got - off;
                if (take > (size_t)(BUF_MAX - TAIL)) take = BUF_MAX - TAIL;
                memcpy(c->buf + c->len, rbuf + off, take);
                c->len += (int)take;
                off += take;
                scan(c, t);
            }
            continue;
        }
        if (c->len + got > BUF_MAX) { finish(ep, c, 0); return; }
        memcpy(c->buf + c->len, rbuf, (size_t)got);
        c->len += (int)got;
        if (c->state == HEADERS) {
            unsigned char *end = memmem(c->buf, (size_t)c->len, "\r\n\r\n", 4);
            if (!end) continue;
            if (c->len < 13 || (memcmp(c->buf, "HTTP/1.1 101 ", 13) && memcmp(c->buf, "HTTP/1.1 200 ", 13) &&
                                memcmp(c->buf, "HTTP/1.0 200 ", 13))) {
                finish(ep, c, 0);
                return;
            }
            int cut = (int)(end - c->buf) + 4;
            memmove(c->buf, c->buf + cut, (size_t)(c->len - cut));
            c->len -= cut;
            c->state = STEPS;
        }
        advance(ep, c);
        if (c->state == DEAD) return;
    }
}

static int start_one(int ep, conn_t *c, const char *source, struct sockaddr_in *dst) {
    c->started = now_s();
    c->buf = malloc(BUF_MAX);
    c->len = 0;
    c->step = 0;
    in_flight++;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    c->fd = fd;
    if (fd < 0) { finish(ep, c, 0); return -1; }
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    struct sockaddr_in src = {.sin_family = AF_INET};
    inet_pton(AF_INET, source, &src.sin_addr);
    if (bind(fd, (struct sockaddr *)&src, sizeof src)) { finish(ep, c, 0); return -1; }
    c->state = CONNECTING;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    if (connect(fd, (struct sockaddr *)dst, sizeof *dst) && errno != EINPROGRESS) { finish(ep, c, 0); return -1; }
    return 0;
}

static void report(const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) { say("reported\n"); return; }
    fprintf(f, "{\"ready\": %d, \"failed\": %d, \"lost\": %d, \"unexpected\": %d, \"arrivals\": {",
            ready_n, failed_n, lost_n, unexpected_n);
    for (int v = first_v; v <= last_v; v++) {
        int i = v - first_v;
        fprintf(f, "%s\"%d\": [", v == first_v ? "" : ", ", v);
        for (int k = 0; k < got_n[i]; k++) fprintf(f, "%s%.9f", k ? "," : "", arrivals[i][k]);
        fprintf(f, "]");
    }
    fprintf(f, "}}\n");
    fclose(f);
    say("reported\n");
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: %s <spec-file>\n", argv[0]); return 2; }
    FILE *spec = fopen(argv[1], "r");
    if (!spec) { perror("spec"); return 2; }
    char host[64];
    int port;
    if (sscanf(next_line(spec), "%63s %d %d %d %d %d %d %lf %lf", host, &port, &count, &first_v, &last_v,
               &eio_pong, &concurrency, &LIFETIME_S, &CONNECT_PHASE_S) < 7) {
        fprintf(stderr, "spec: bad first line\n");
        return 2;
    }
    char *sources_line = strdup(next_line(spec));
    char *sources[4096];
    int n_sources = 0;
    for (char *s = strtok(sources_line, " "); s && n_sources < 4096; s = strtok(NULL, " ")) sources[n_sources++] = s;
    request = unhex(next_line(spec));
    n_steps = atoi(next_line(spec));
    markers = calloc((size_t)n_steps + 1, sizeof *markers);
    replies = calloc((size_t)n_steps + 1, sizeof *replies);
    for (int i = 0; i < n_steps; i++) {
        char *line = next_line(spec), *sp = strchr(line, ' ');
        if (!sp) { fprintf(stderr, "spec: bad step\n"); return 2; }
        *sp = 0;
        markers[i] = unhex(line);
        replies[i] = unhex(sp + 1);
    }
    {
        char *line = next_line(spec), *sp = strchr(line, ' ');
        if (sp) { *sp = 0; ping = unhex(line); pong = unhex(sp + 1); }
        if (!eio_pong) ping.n = 0;
    }
    fclose(spec);
    if (n_sources == 0 || count <= 0) { fprintf(stderr, "spec: no sources or count\n"); return 2; }

    int versions = last_v - first_v + 1;
    arrivals = calloc((size_t)versions, sizeof *arrivals);
    got_n = calloc((size_t)versions, sizeof *got_n);
    int *seen_n = calloc((size_t)versions, sizeof *seen_n);
    for (int i = 0; i < versions; i++) arrivals[i] = calloc((size_t)count, sizeof **arrivals);
    conns = calloc((size_t)count, sizeof *conns);
    for (int i = 0; i < count; i++) { conns[i].fd = -1; conns[i].state = DEAD; }

    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &dst.sin_addr);
    int ep = epoll_create1(0);
    int per_source = (count + n_sources - 1) / n_sources;
    fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
    struct epoll_event sev = {.events = EPOLLIN, .data.ptr = NULL};
    int stdin_open = 0;

    double started = now_s(), last_progress = started, connected_at = 0;
    int next = 0, phase_done = 0;
    char line[4096];
    int line_len = 0;
    struct epoll_event events[512];
    while (now_s() - started < LIFETIME_S) {
        double t = now_s();
        if (!phase_done) {
            while (next < count && in_flight < concurrency && t - started < CONNECT_PHASE_S) {
                start_one(ep, &conns[next], sources[next / per_source], &dst);
                next++;
            }
            for (int i = 0; i < next; i++) { /* handshake deadlines */
                conn_t *c = &conns[i];
                if (c->state != READY && c->state != DEAD && t - c->started > HANDSHAKE_S) finish(ep, c, 0);
            }
            if (t - started >= CONNECT_PHASE_S) {
                for (; next < count; next++) failed_n++;
                for (int i = 0; i < count; i++)
                    if (conns[i].state != READY && conns[i].state != DEAD) finish(ep, &conns[i], 0);
            }
            if (t - last_progress >= 0.5) {
                say("progress %d %d\n", ready_n, failed_n);
                last_progress = t;
            }
            if (next >= count && in_flight == 0) {
                phase_done = 1;
                connected_at = now_s();
                say("ready %d %d %.3f\n", ready_n, failed_n, connected_at - started);
                epoll_ctl(ep, EPOLL_CTL_ADD, 0, &sev);
                stdin_open = 1;
            }
        }
        if (phase_done && t - last_progress >= 0.5) { /* partial counts, so a stall shows */
            for (int i = 0; i < versions; i++)
                if (got_n[i] != seen_n[i]) {
                    seen_n[i] = got_n[i];
                    say("seen %d %d\n", first_v + i, got_n[i]);
                }
            last_progress = t;
        }
        int n = epoll_wait(ep, events, 512, phase_done ? 200 : 50);
        for (int i = 0; i < n; i++) {
            conn_t *c = events[i].data.ptr;
            if (c == NULL) { /* stdin */
                ssize_t got = read(0, line + line_len, sizeof line - 1 - (size_t)line_len);
                if (got <= 0) { if (got == 0 || errno != EAGAIN) goto out; continue; }
                line_len += (int)got;
                line[line_len] = 0;
                char *nl;
                while ((nl = strchr(line, '\n'))) {
                    *nl = 0;
                    if (strncmp(line, "report ", 7) == 0) report(line + 7);
                    else if (strncmp(line, "quit", 4) == 0) goto out;
                    int rest = line_len - (int)(nl + 1 - line);
                    memmove(line, nl + 1, (size_t)rest + 1);
                    line_len = rest;
                }
                if (line_len >= (int)sizeof line - 1) line_len = 0;
                continue;
            }
            if (c->state == DEAD) continue;
            if (c->state == CONNECTING) {
                int err = 0;
                socklen_t len = sizeof err;
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err) { finish(ep, c, 0); continue; }
                if (!(events[i].events & (EPOLLOUT | EPOLLIN))) continue;
                struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                c->state = HEADERS;
                send_all(c, &request);
                continue;
            }
            if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) on_readable(ep, c);
        }
    }
out:
    (void)stdin_open;
    for (int i = 0; i < count; i++)
        if (conns[i].fd >= 0) close(conns[i].fd);
    return 0;
}
