/*
 * The page stream's data plane, natively, on a thread of its own per stream:
 * the source's sender (scan, zero-page detection, hash, pace, send) and the
 * destination's receiver (read, validate, store, hash, acknowledge). This is
 * where a hypervisor's migration agent spends its time, and doing it in the
 * event loop cost ~0.65 s per 512 MiB (a 64 KiB read per event, a batch copy
 * per write, GC) where the socket alone moves it in ~0.23 s.
 *
 * The wire format is src/protocol/pageStream.ts's. Each thread works on a
 * dup() of the socket's descriptor (so a close in JavaScript can never leave
 * it reading a reused descriptor number) and waits with poll(), never spins;
 * cancel() shuts the socket down, which wakes it at once.
 *
 * Memory: guest RAM and the digest arrays are the caller's (kept alive by
 * references until the thread has finished); no allocation per page, no
 * user-space copy of a page on either side. Pages go in BATCH frames (a
 * header and the batch's page indices, then its non-zero pages back to back),
 * so that the sender's sendmsg gathers the pages straight from guest RAM and
 * the receiver's recvmsg scatters them straight into guest RAM, after every
 * index of the batch has been checked. The kernel copies at the call; a page
 * the guest changes meanwhile on the source is dirty and goes again next
 * round, as with any copy.
 */
#define _GNU_SOURCE
#include <node_api.h>
#include "../hypervisor/core/xxh64.h"
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "napiArgs.h"
#include "pageStreamIo.h"

#define PAGE 4096u
#define HDR 8u
#define FRAME_RAW 1
#define FRAME_ZERO 2
#define FRAME_END 3
#define FRAME_ACK 4
#define FRAME_NAK 5
#define FRAME_BATCH 6
/* A BATCH entry's flag: the page is all zero (no bytes follow for it). */
#define BATCH_ZERO 0x80000000u
#define NAK_BAD_PAGE 1
#define NAK_BAD_FRAME 2
#define OPENING_BYTES 40u
#define STREAM_MAGIC 0x53504d42u /* 'BMPS' */
#define STREAM_VERSION 2 /* src/protocol/pageStream.ts STREAM_VERSION */
/* Pages per BATCH frame (and per sendmsg/recvmsg, below IOV_MAX): up to 1 MiB. */
#define BATCH_PAGES 256
#define POLL_MS 200

enum job_kind { JOB_SEND, JOB_RECV };

/* Outcome codes, as src/protocol/nativeStream.ts reads them. */
enum {
  ST_OK = 0,        /* send: round sent; recv: the peer closed the stream */
  ST_CANCELLED = 1, /* cancel() */
  ST_BAD_PAGE = 2,  /* recv: a page outside guest RAM (NAK sent) */
  ST_BAD_FRAME = 3, /* recv: bad opening, token, type or END count (NAK sent) */
  ST_IO = 4,        /* socket error (errno in detail) */
};

typedef struct {
  enum job_kind kind;
  int fd; /* our dup */
  pthread_mutex_t fd_mu;  /* guards closing fd against cancel()'s shutdown */
  pthread_mutex_t ram_mu; /* held while the thread writes guest RAM */
  int finished;           /* under fd_mu: fd is closed */
  atomic_int cancelled; /* set by cancel() */
  int owners;           /* main thread only: the thread's completion + the JS handle */

  uint8_t *ram;
  size_t pages;
  const uint8_t *bitmap; /* send: null = every page */
  uint8_t *page_hash, *stale_page, *stale_group;
  /* Pages known to be zero since their last write (fresh or scrubbed RAM the guest never wrote).
   * The receiver keeps it; the sender only reads it (a guest write clears it on the main thread
   * and dirties the page, so a stale 1 read here costs a resend, never a lost page). */
  uint8_t *known_zero;
  uint8_t token[32];
  double rate; /* send: bytes/s, 0 = uncapped */
  double *live; /* [pages, zeroPages, wireBytes, rounds] */

  napi_ref refs[8];
  int nrefs;
  napi_threadsafe_function tsfn;

  int status;
  int64_t detail;
  char reason[200];
} job_t;

static uint64_t zero_hash;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int is_zero(const uint8_t *p) {
  uint64_t acc = 0;
  for (size_t i = 0; i < PAGE; i += 64) {
    uint64_t w[8];
    memcpy(w, p + i, 64);
    acc |= w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7];
    if (acc) return 0;
  }
  return 1;
}

static void put_hdr(uint8_t *h, uint8_t type, uint32_t arg) {
  h[0] = type;
  h[1] = h[2] = h[3] = 0;
  h[4] = (uint8_t)arg;
  h[5] = (uint8_t)(arg >> 8);
  h[6] = (uint8_t)(arg >> 16);
  h[7] = (uint8_t)(arg >> 24);
}

static void put_u32(uint8_t *p, uint32_t v) {
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
  p[2] = (uint8_t)(v >> 16);
  p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32(const uint8_t *p) { return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24); }

/* Waits until fd is ready for `events`; 0 ready, -1 cancelled. poll() sleeps: no spinning. */
static int wait_fd(job_t *j, short events) {
  for (;;) {
    if (atomic_load(&j->cancelled)) return -1;
    struct pollfd p = {.fd = j->fd, .events = events};
    int r = poll(&p, 1, POLL_MS);
    if (r > 0 || (r < 0 && errno != EINTR)) return 0; /* errors surface in the next send/recv */
  }
}

/*
 * Sends (or receives) every byte of iov[0..n), advancing it; poll() while the
 * socket is not ready. 0, or -errno, -ECANCELED, or (receiving) -EPIPE when
 * the sender closed. Receiving checks the cancelled flag before every read:
 * with ram_mu held by the caller, once cancel() has the lock no read into
 * guest RAM follows.
 */
static int xfer_all(job_t *j, struct iovec *iov, int n, int receive) {
  while (n > 0) {
    if (receive && atomic_load(&j->cancelled)) return -ECANCELED;
    struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
    ssize_t r = receive ? recvmsg(j->fd, &m, 0) : sendmsg(j->fd, &m, MSG_NOSIGNAL);
    if (r == 0 && receive) return -EPIPE;
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (wait_fd(j, receive ? POLLIN : POLLOUT) < 0) return -ECANCELED;
        continue;
      }
      return -errno;
    }
    size_t left = (size_t)r;
    while (n > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      iov++;
      n--;
    }
    if (n > 0) {
      iov->iov_base = (uint8_t *)iov->iov_base + left;
      iov->iov_len -= left;
    }
  }
  return 0;
}

static int send_all(job_t *j, struct iovec *iov, int n) { return xfer_all(j, iov, n, 0); }

static int send_bytes(job_t *j, const void *b, size_t len) {
  struct iovec v = {.iov_base = (void *)b, .iov_len = len};
  return send_all(j, &v, 1);
}

static void set_io_error(job_t *j, int neg_errno, const char *what) {
  if (neg_errno == -ECANCELED) {
    j->status = ST_CANCELLED;
    snprintf(j->reason, sizeof j->reason, "cancelled");
    return;
  }
  j->status = ST_IO;
  j->detail = -neg_errno;
  snprintf(j->reason, sizeof j->reason, "%s: %s", what, strerror(-neg_errno));
}

/* The thread's last act: close its descriptor and hand the outcome to the main thread. */
static void finish(job_t *j) {
  pthread_mutex_lock(&j->fd_mu);
  j->finished = 1;
  close(j->fd);
  pthread_mutex_unlock(&j->fd_mu);
  napi_call_threadsafe_function(j->tsfn, j, napi_tsfn_blocking);
  napi_release_threadsafe_function(j->tsfn, napi_tsfn_release);
}

/*
 * Token bucket for the optional cap: `rate` bytes/s, a burst of 10 ms worth
 * (at least one batch). Waiting is a sleep.
 */
typedef struct {
  double rate, burst, tokens, last;
} pacer_t;

static void pace(job_t *j, pacer_t *p, size_t bytes) {
  double t = now_s();
  p->tokens += (t - p->last) * p->rate;
  if (p->tokens > p->burst) p->tokens = p->burst;
  p->last = t;
  while (p->tokens < (double)bytes && !atomic_load(&j->cancelled)) {
    double wait = ((double)bytes - p->tokens) / p->rate;
    struct timespec ts = {.tv_sec = (time_t)wait, .tv_nsec = (long)((wait - (double)(time_t)wait) * 1e9)};
    nanosleep(&ts, NULL);
    t = now_s();
    p->tokens += (t - p->last) * p->rate;
    p->last = t;
  }
  p->tokens -= (double)bytes;
}

static void *send_thread(void *arg) {
  job_t *j = arg;
  /* One BATCH frame per sendmsg: header, entries, then the non-zero pages straight from guest RAM. */
  uint8_t head[HDR + 4 * BATCH_PAGES];
  struct iovec iov[1 + BATCH_PAGES];
  int batch_pages = BATCH_PAGES;
  pacer_t pacer = {0};
  if (j->rate > 0) {
    /* Smaller batches under a cap keep the stream smooth: ~2 ms of link time each. */
    double per = j->rate * 0.002 / (PAGE + 4);
    batch_pages = per < 16 ? 16 : per > BATCH_PAGES ? BATCH_PAGES : (int)per;
    pacer.rate = j->rate;
    pacer.burst = j->rate * 0.01;
    if (pacer.burst < (double)batch_pages * (PAGE + 4) + HDR) pacer.burst = (double)batch_pages * (PAGE + 4) + HDR;
    pacer.tokens = pacer.burst;
    pacer.last = now_s();
  }
  size_t next = 0;
  uint32_t count = 0;
  double zeros = 0, wire = 0;
  j->status = ST_OK;
  while (next < j->pages) {
    if (atomic_load(&j->cancelled)) {
      set_io_error(j, -ECANCELED, "");
      goto done;
    }
    int nb = 0, niov = 1;
    size_t bytes = 0;
    for (; next < j->pages && nb < batch_pages; next++) {
      if (j->bitmap && !j->bitmap[next]) {
        /* Skip clean stretches eight pages at a time (a 4 GiB guest's final round scans a million marks). */
        uint64_t w;
        while (next + 8 < j->pages && (memcpy(&w, j->bitmap + next + 1, 8), w == 0)) next += 8;
        continue;
      }
      uint8_t *src = j->ram + next * PAGE;
      const int zero = j->known_zero[next] || is_zero(src);
      uint64_t hash = zero_hash;
      uint32_t entry = (uint32_t)next;
      if (zero) {
        entry |= BATCH_ZERO;
        zeros++;
      } else {
        iov[niov].iov_base = src;
        iov[niov++].iov_len = PAGE;
        hash = bm_xxh64(src, PAGE, 0);
        bytes += PAGE;
      }
      put_u32(head + HDR + 4 * (size_t)nb, entry);
      /* The page's digest entry now describes what was sent; a later guest write marks it stale. */
      memcpy(j->page_hash + next * 8, &hash, 8);
      j->stale_page[next] = 0;
      nb++;
    }
    if (nb == 0) break;
    put_hdr(head, FRAME_BATCH, 0);
    head[2] = (uint8_t)nb;
    head[3] = (uint8_t)(nb >> 8);
    iov[0].iov_base = head;
    iov[0].iov_len = HDR + 4 * (size_t)nb;
    bytes += iov[0].iov_len;
    if (j->rate > 0) pace(j, &pacer, bytes);
    int r = send_all(j, iov, niov);
    if (r < 0) {
      set_io_error(j, r, "sending pages");
      goto done;
    }
    count += (uint32_t)nb;
    wire += (double)bytes;
    j->live[0] = count;
    j->live[1] = zeros;
    j->live[2] = wire;
  }
  {
    uint8_t end[HDR];
    put_hdr(end, FRAME_END, count);
    int r = send_bytes(j, end, HDR);
    if (r < 0) {
      set_io_error(j, r, "sending the end of the round");
      goto done;
    }
    j->live[2] = wire + HDR;
  }
done:
  finish(j);
  return NULL;
}

/* After refusing a stream: tell the sender why, then let its bytes drain (bounded) so the close is not a reset that eats the NAK. */
static void refuse(job_t *j, int nak, int status, int64_t detail) {
  uint8_t f[HDR];
  put_hdr(f, FRAME_NAK, (uint32_t)nak);
  (void)send_bytes(j, f, HDR);
  shutdown(j->fd, SHUT_WR);
  j->status = status;
  j->detail = detail;
  uint8_t sink[4096];
  double until = now_s() + 0.2;
  while (now_s() < until && !atomic_load(&j->cancelled)) {
    struct pollfd p = {.fd = j->fd, .events = POLLIN};
    if (poll(&p, 1, 20) <= 0) continue;
    if (recv(j->fd, sink, sizeof sink, 0) <= 0) break;
  }
}

static int recv_all(job_t *j, struct iovec *iov, int n) { return xfer_all(j, iov, n, 1); }

static int recv_bytes(job_t *j, void *b, size_t len) {
  struct iovec v = {.iov_base = b, .iov_len = len};
  return recv_all(j, &v, 1);
}

/* A stored page: its digest entry and marks (caller holds ram_mu). */
static void stored(job_t *j, uint32_t page, uint64_t hash) {
  memcpy(j->page_hash + (size_t)page * 8, &hash, 8);
  j->stale_page[page] = 0;
  j->stale_group[page / 256] = 1;
}

/* A zero page: RAM known to be zero since its last write is not touched (no read, no fault). */
static void store_zero(job_t *j, uint32_t page) {
  if (!j->known_zero[page]) {
    uint8_t *dst = j->ram + (size_t)page * PAGE;
    if (!is_zero(dst)) memset(dst, 0, PAGE);
    j->known_zero[page] = 1;
  }
  stored(j, page, zero_hash);
}

/* A read ended early: the sender closed (between frames: a normal end) or the socket failed. */
static void recv_failed(job_t *j, int r, int inside_frame) {
  if (r == -EPIPE) {
    j->status = ST_OK;
    snprintf(j->reason, sizeof j->reason, "closed%s", inside_frame ? " inside a frame" : "");
  } else {
    set_io_error(j, r, "reading pages");
  }
}

static void *recv_thread(void *arg) {
  job_t *j = arg;
  uint8_t open[OPENING_BYTES];
  uint8_t head[HDR + 4 * BATCH_PAGES];
  struct iovec iov[BATCH_PAGES];
  uint32_t since_end = 0;
  double pages_in = 0, wire = 0, rounds = 0;
  int r;
  j->status = ST_OK;
  if ((r = recv_bytes(j, open, OPENING_BYTES)) < 0) {
    recv_failed(j, r, 0);
    goto done;
  }
  {
    uint8_t diff = 0;
    for (int i = 0; i < 32; i++) diff |= (uint8_t)(open[8 + i] ^ j->token[i]);
    if (get_u32(open) != STREAM_MAGIC || open[4] != STREAM_VERSION) {
      snprintf(j->reason, sizeof j->reason, "bad stream opening (not a baremig page stream, or another version)");
      refuse(j, NAK_BAD_FRAME, ST_BAD_FRAME, 0);
      goto done;
    }
    if (diff) {
      snprintf(j->reason, sizeof j->reason, "page stream token mismatch");
      refuse(j, NAK_BAD_FRAME, ST_BAD_FRAME, 0);
      goto done;
    }
  }
  wire = OPENING_BYTES;
  for (;;) {
    if ((r = recv_bytes(j, head, HDR)) < 0) {
      recv_failed(j, r, 0);
      goto done;
    }
    const uint32_t a = get_u32(head + 4);
    wire += HDR;
    if (head[0] == FRAME_BATCH) {
      const uint32_t n = (uint32_t)head[2] | ((uint32_t)head[3] << 8);
      if (n == 0 || n > BATCH_PAGES || a != 0) {
        snprintf(j->reason, sizeof j->reason, "bad page batch (%u pages, reserved %u)", n, a);
        refuse(j, NAK_BAD_FRAME, ST_BAD_FRAME, n);
        goto done;
      }
      if ((r = recv_bytes(j, head + HDR, 4 * n)) < 0) {
        recv_failed(j, r, 1);
        goto done;
      }
      /* Every index is checked before a byte of RAM changes: inside RAM, and ascending (so no page twice). */
      int niov = 0;
      int64_t prev = -1;
      for (uint32_t i = 0; i < n; i++) {
        const uint32_t e = get_u32(head + HDR + 4 * i);
        const uint32_t page = e & ~BATCH_ZERO;
        if (page >= j->pages) {
          snprintf(j->reason, sizeof j->reason, "page %u outside guest RAM", page);
          refuse(j, NAK_BAD_PAGE, ST_BAD_PAGE, page);
          goto done;
        }
        if ((int64_t)page <= prev) {
          snprintf(j->reason, sizeof j->reason, "page batch not in ascending page order (%u after %lld)", page, (long long)prev);
          refuse(j, NAK_BAD_FRAME, ST_BAD_FRAME, page);
          goto done;
        }
        prev = page;
        if (!(e & BATCH_ZERO)) {
          iov[niov].iov_base = j->ram + (size_t)page * PAGE;
          iov[niov++].iov_len = PAGE;
        }
      }
      pthread_mutex_lock(&j->ram_mu);
      /* The kernel copies the pages straight into guest RAM; then each is hashed while still in cache. */
      r = niov ? recv_all(j, iov, niov) : (atomic_load(&j->cancelled) ? -ECANCELED : 0);
      if (r == 0) {
        for (uint32_t i = 0; i < n; i++) {
          const uint32_t e = get_u32(head + HDR + 4 * i);
          const uint32_t page = e & ~BATCH_ZERO;
          if (e & BATCH_ZERO) {
            store_zero(j, page);
          } else {
            j->known_zero[page] = 0;
            stored(j, page, bm_xxh64(j->ram + (size_t)page * PAGE, PAGE, 0));
          }
        }
      }
      pthread_mutex_unlock(&j->ram_mu);
      if (r < 0) {
        recv_failed(j, r, 1);
        goto done;
      }
      since_end += n;
      pages_in += n;
      wire += 4.0 * n + (double)niov * PAGE;
    } else if (head[0] == FRAME_RAW || head[0] == FRAME_ZERO) {
      /* Single-page frames (as the native agent's link streams use). */
      if (a >= j->pages) {
        snprintf(j->reason, sizeof j->reason, "page %u outside guest RAM", a);
        refuse(j, NAK_BAD_PAGE, ST_BAD_PAGE, a);
        goto done;
      }
      pthread_mutex_lock(&j->ram_mu);
      if (head[0] == FRAME_RAW) {
        uint8_t *dst = j->ram + (size_t)a * PAGE;
        r = recv_bytes(j, dst, PAGE);
        if (r == 0) {
          j->known_zero[a] = 0;
          stored(j, a, bm_xxh64(dst, PAGE, 0));
          wire += PAGE;
        }
      } else {
        r = atomic_load(&j->cancelled) ? -ECANCELED : 0;
        if (r == 0) store_zero(j, a);
      }
      pthread_mutex_unlock(&j->ram_mu);
      if (r < 0) {
        recv_failed(j, r, 1);
        goto done;
      }
      since_end++;
      pages_in++;
    } else if (head[0] == FRAME_END) {
      if (a != since_end) {
        snprintf(j->reason, sizeof j->reason, "round ended with %u frames announced, %u received", a, since_end);
        refuse(j, NAK_BAD_FRAME, ST_BAD_FRAME, a);
        goto done;
      }
      uint8_t ack[HDR];
      put_hdr(ack, FRAME_ACK, since_end);
      since_end = 0;
      j->live[3] = ++rounds;
      if ((r = send_bytes(j, ack, HDR)) < 0) {
        set_io_error(j, r, "acknowledging a round");
        goto done;
      }
    } else {
      snprintf(j->reason, sizeof j->reason, "unknown page stream frame type %u", (unsigned)head[0]);
      refuse(j, NAK_BAD_FRAME, ST_BAD_FRAME, head[0]);
      goto done;
    }
    j->live[0] = pages_in;
    j->live[2] = wire;
  }
done:
  j->live[0] = pages_in;
  finish(j);
  return NULL;
}

/* ---- Node-API glue ---------------------------------------------------- */

static void job_drop(napi_env env, job_t *j) {
  if (--j->owners > 0) return;
  for (int i = 0; i < j->nrefs; i++) napi_delete_reference(env, j->refs[i]);
  pthread_mutex_destroy(&j->fd_mu);
  pthread_mutex_destroy(&j->ram_mu);
  free(j);
}

static void handle_finalize(napi_env env, void *data, void *hint) {
  (void)hint;
  job_drop(env, data);
}

/* On the main thread when the stream thread ends: callback(status, detail, reason). */
static void call_js(napi_env env, napi_value cb, void *context, void *data) {
  (void)context;
  job_t *j = data;
  if (env && cb) {
    napi_value args[3], undef;
    napi_create_int32(env, j->status, &args[0]);
    napi_create_double(env, (double)j->detail, &args[1]);
    napi_create_string_utf8(env, j->reason, NAPI_AUTO_LENGTH, &args[2]);
    napi_get_undefined(env, &undef);
    napi_call_function(env, undef, cb, 3, args, NULL);
  }
  if (env) job_drop(env, j);
}

static int keep(napi_env env, job_t *j, napi_value v) {
  if (j->nrefs >= 8) return 0;
  return napi_create_reference(env, v, 1, &j->refs[j->nrefs++]) == napi_ok;
}

static napi_value start(napi_env env, job_t *j, int fd, napi_value cb, void *(*fn)(void *)) {
  j->fd = dup(fd);
  if (j->fd < 0) {
    napi_throw_error(env, "BAREMIG_NATIVE", "page stream: cannot duplicate the socket descriptor");
    return NULL;
  }
  pthread_mutex_init(&j->fd_mu, NULL);
  pthread_mutex_init(&j->ram_mu, NULL);
  atomic_init(&j->cancelled, 0);
  napi_value name;
  CHECK(napi_create_string_utf8(env, "baremig page stream", NAPI_AUTO_LENGTH, &name));
  CHECK(napi_create_threadsafe_function(env, cb, NULL, name, 0, 1, NULL, NULL, NULL, call_js, &j->tsfn));
  j->owners = 2;
  napi_value handle;
  CHECK(napi_create_external(env, j, handle_finalize, NULL, &handle));
  pthread_t t;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&t, &attr, fn, j) != 0) {
    pthread_attr_destroy(&attr);
    close(j->fd);
    j->finished = 1;
    napi_release_threadsafe_function(j->tsfn, napi_tsfn_abort);
    j->owners = 1;
    napi_throw_error(env, "BAREMIG_NATIVE", "page stream: cannot start a thread");
    return NULL;
  }
  pthread_attr_destroy(&attr);
  return handle;
}

static void init_zero_hash(void) {
  static const uint8_t z[PAGE];
  if (!zero_hash) zero_hash = bm_xxh64(z, PAGE, 0);
}

/*
 * sendPages(fd, ram, bitmap|null, pageHash, stalePage, knownZero, rate, live: Float64Array(4), callback) → handle
 * Sends one round (every page, or those marked in bitmap) and END on a thread; live ← [pages, zeroPages,
 * wireBytes, -] as it goes; callback(status, detail, reason) on the main thread when done.
 */
napi_value bm_send_pages(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 9) {
    napi_throw_type_error(env, "BAREMIG_NATIVE", "sendPages takes 9 arguments");
    return NULL;
  }
  init_zero_hash();
  job_t *j = calloc(1, sizeof *j);
  if (!j) return NULL;
  j->kind = JOB_SEND;
  int32_t fd;
  size_t ram_len, bm_len = 0, ph_len, sp_len, kz_len;
  uint8_t *bitmap = NULL;
  napi_valuetype bt;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || napi_typeof(env, argv[2], &bt) != napi_ok || !get_bytes(env, argv[1], &j->ram, &ram_len) ||
      (bt != napi_null && !get_bytes(env, argv[2], &bitmap, &bm_len)) || !get_bytes(env, argv[3], &j->page_hash, &ph_len) || !get_bytes(env, argv[4], &j->stale_page, &sp_len) ||
      !get_bytes(env, argv[5], &j->known_zero, &kz_len) || napi_get_value_double(env, argv[6], &j->rate) != napi_ok || !(j->live = get_f64(env, argv[7], 4))) {
    free(j);
    napi_throw_type_error(env, "BAREMIG_NATIVE", "sendPages: bad argument types");
    return NULL;
  }
  j->pages = ram_len / PAGE;
  j->bitmap = bitmap;
  if (fd < 0 || (bitmap && bm_len != j->pages) || ph_len != j->pages * 8 || sp_len != j->pages || kz_len != j->pages || !(j->rate >= 0)) {
    free(j);
    napi_throw_range_error(env, "BAREMIG_NATIVE", "sendPages: arguments do not match the RAM");
    return NULL;
  }
  for (int i = 1; i <= 7; i++)
    if (i != 6 && !(i == 2 && bitmap == NULL)) keep(env, j, argv[i]);
  return start(env, j, fd, argv[8], send_thread);
}

/*
 * receivePages(fd, token, ram, pageHash, stalePage, staleGroup, knownZero, live: Float64Array(4), callback) → handle
 * Checks the opening, then stores pages and acknowledges each END until the sender closes, a frame is
 * refused (NAK sent) or cancel(); live ← [pages, -, wireBytes, rounds].
 */
napi_value bm_receive_pages(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc != 9) {
    napi_throw_type_error(env, "BAREMIG_NATIVE", "receivePages takes 9 arguments");
    return NULL;
  }
  init_zero_hash();
  job_t *j = calloc(1, sizeof *j);
  if (!j) return NULL;
  j->kind = JOB_RECV;
  int32_t fd;
  uint8_t *token;
  size_t tok_len, ram_len, ph_len, sp_len, sg_len, kz_len;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || !get_bytes(env, argv[1], &token, &tok_len) || !get_bytes(env, argv[2], &j->ram, &ram_len) ||
      !get_bytes(env, argv[3], &j->page_hash, &ph_len) || !get_bytes(env, argv[4], &j->stale_page, &sp_len) || !get_bytes(env, argv[5], &j->stale_group, &sg_len) ||
      !get_bytes(env, argv[6], &j->known_zero, &kz_len) || !(j->live = get_f64(env, argv[7], 4))) {
    free(j);
    napi_throw_type_error(env, "BAREMIG_NATIVE", "receivePages: bad argument types");
    return NULL;
  }
  j->pages = ram_len / PAGE;
  if (fd < 0 || tok_len != 32 || ph_len != j->pages * 8 || sp_len != j->pages || sg_len != j->pages / 256 || kz_len != j->pages) {
    free(j);
    napi_throw_range_error(env, "BAREMIG_NATIVE", "receivePages: arguments do not match the RAM");
    return NULL;
  }
  memcpy(j->token, token, 32);
  for (int i = 2; i <= 7; i++) keep(env, j, argv[i]);
  return start(env, j, fd, argv[8], recv_thread);
}

/*
 * cancelStream(handle): stop the stream now. When it returns, the thread writes no more guest RAM
 * (it takes the lock the thread holds while storing pages); its callback still follows.
 */
napi_value bm_cancel_stream(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *data = NULL;
  if (argc != 1 || napi_get_value_external(env, argv[0], &data) != napi_ok || !data) {
    napi_throw_type_error(env, "BAREMIG_NATIVE", "cancelStream takes a stream handle");
    return NULL;
  }
  job_t *j = data;
  atomic_store(&j->cancelled, 1);
  pthread_mutex_lock(&j->fd_mu);
  if (!j->finished) shutdown(j->fd, SHUT_RDWR); /* wakes a thread waiting in poll() */
  pthread_mutex_unlock(&j->fd_mu);
  /* A thread storing pages holds ram_mu and checks the flag before each read: once we have it, no more writes. */
  pthread_mutex_lock(&j->ram_mu);
  pthread_mutex_unlock(&j->ram_mu);
  return NULL;
}
