/*
 * uniprove proof-out: preloaded into a prover (LD_PRELOAD) inside Nanos, where
 * the only way out of the instance is its console. When the prover calls exit
 * (returning from main does), this library writes the prover's exit status and
 * the file named by UNIPROVE_PROOF_FILE to the console, base64-encoded, between
 * two marker lines:
 *
 *   UNIPROVE-PROVER-EXIT status=<exit status, 0-255>
 *   UNIPROVE-FILE-PROOF-BEGIN bytes=<size> path=<path>
 *   UPF:<base64 of up to 768 bytes>        (as many lines as needed)
 *   UNIPROVE-FILE-PROOF-END bytes=<sent> sha256=<hex of what was sent>
 *
 * or one line `UNIPROVE-FILE-PROOF-ERROR errno=<n> path=<path> <why>` when the
 * file cannot be read. The data lines carry a prefix so that a line printed by
 * someone else (the kernel, another thread) is skipped, not decoded.
 *
 * The exit status: Compute Engine does not carry it, and a destructor is not
 * given it, so the constructor registers an on_exit(3) handler (glibc; the
 * console route serves glibc provers only), which exit() calls with the status.
 * Registered before ld.so's own exit handler, it runs after every other exit
 * handler and every ELF destructor: the last moment, when whatever the prover
 * flushes at exit is in its file. Where on_exit is missing (weak, not glibc),
 * the destructor sends the file without the status line.
 *
 * No libc stdio (the prover's buffers may be mid-flush); only open, read, write.
 * SHA-256 below is written from FIPS 180-4 for this file (public domain).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct sha256 {
  uint32_t h[8];
  uint64_t bytes;
  unsigned char block[64];
  size_t used;
};

static const uint32_t K[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

#define ROTR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void sha256_block(struct sha256 *s, const unsigned char *p) {
  uint32_t w[64];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  for (int i = 16; i < 64; i++) {
    uint32_t s0 = ROTR(w[i - 15], 7) ^ ROTR(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = ROTR(w[i - 2], 17) ^ ROTR(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3];
  uint32_t e = s->h[4], f = s->h[5], g = s->h[6], h = s->h[7];
  for (int i = 0; i < 64; i++) {
    uint32_t t1 = h + (ROTR(e, 6) ^ ROTR(e, 11) ^ ROTR(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i];
    uint32_t t2 = (ROTR(a, 2) ^ ROTR(a, 13) ^ ROTR(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    h = g;
    g = f;
    f = e;
    e = d + t1;
    d = c;
    c = b;
    b = a;
    a = t1 + t2;
  }
  s->h[0] += a;
  s->h[1] += b;
  s->h[2] += c;
  s->h[3] += d;
  s->h[4] += e;
  s->h[5] += f;
  s->h[6] += g;
  s->h[7] += h;
}

static void sha256_init(struct sha256 *s) {
  static const uint32_t iv[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(s->h, iv, sizeof iv);
  s->bytes = 0;
  s->used = 0;
}

static void sha256_update(struct sha256 *s, const unsigned char *p, size_t n) {
  s->bytes += n;
  while (n > 0) {
    size_t take = 64 - s->used < n ? 64 - s->used : n;
    memcpy(s->block + s->used, p, take);
    s->used += take;
    p += take;
    n -= take;
    if (s->used == 64) {
      sha256_block(s, s->block);
      s->used = 0;
    }
  }
}

static void sha256_hex(struct sha256 *s, char out[65]) {
  uint64_t bits = s->bytes * 8;
  unsigned char pad = 0x80;
  sha256_update(s, &pad, 1);
  pad = 0;
  while (s->used != 56) sha256_update(s, &pad, 1);
  unsigned char len[8];
  for (int i = 0; i < 8; i++) len[i] = (unsigned char)(bits >> (56 - 8 * i));
  sha256_update(s, len, 8);
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < 8; i++)
    for (int j = 0; j < 4; j++) {
      unsigned char byte = (unsigned char)(s->h[i] >> (24 - 8 * j));
      out[8 * i + 2 * j] = hex[byte >> 4];
      out[8 * i + 2 * j + 1] = hex[byte & 15];
    }
  out[64] = 0;
}

/* The console: stderr, which Nanos sends to the serial port as it does stdout. */
static int out_fd = 2;

static void write_all(const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(out_fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (out_fd == 2 && errno == EBADF) {
        out_fd = 1;
        continue;
      }
      return;
    }
    p += w;
    n -= (size_t)w;
  }
}

static size_t put_u64(char *p, unsigned long long v) {
  char tmp[24];
  size_t n = 0;
  do {
    tmp[n++] = (char)('0' + v % 10);
    v /= 10;
  } while (v > 0);
  for (size_t i = 0; i < n; i++) p[i] = tmp[n - 1 - i];
  return n;
}

static size_t put_str(char *p, const char *s) {
  size_t n = strlen(s);
  memcpy(p, s, n);
  return n;
}

#define LINE_BYTES 768 /* 1024 base64 characters a line */
#define OUT_SIZE 65536

/* The exit line, before the proof: an end marker that ends the run never hides it. */
static void report_exit(int status) {
  char line[64];
  size_t n = put_str(line, "\nUNIPROVE-PROVER-EXIT status=");
  n += put_u64(line + n, (unsigned long long)(status & 0xff));
  line[n++] = '\n';
  write_all(line, n);
}

static void report_error(const char *path, int err, const char *why) {
  char line[4352];
  size_t n = put_str(line, "\nUNIPROVE-FILE-PROOF-ERROR errno=");
  n += put_u64(line + n, (unsigned long long)err);
  n += put_str(line + n, " path=");
  size_t room = sizeof line - n - 256;
  size_t plen = strlen(path) < room ? strlen(path) : room;
  memcpy(line + n, path, plen);
  n += plen;
  line[n++] = ' ';
  n += put_str(line + n, why);
  line[n++] = '\n';
  write_all(line, n);
}

/* have_status: the status exit() was given is known (the on_exit handler). */
static void send_proof(int have_status, int status) {
  static int sent;
  if (sent) return;
  sent = 1;
  const char *path = getenv("UNIPROVE_PROOF_FILE");
  if (path == NULL || *path == 0) return;
  if (have_status) report_exit(status);
  /* A proof the prover wrote through stdio and never closed is still in its buffers. */
  fflush(NULL);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    report_error(path, err, strerror(err));
    return;
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    int err = errno;
    report_error(path, S_ISDIR(st.st_mode) ? EISDIR : err, "is not a regular file");
    close(fd);
    return;
  }
  static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  static char out[OUT_SIZE + 4096];
  static unsigned char in[LINE_BYTES * 64];
  size_t o = put_str(out, "\nUNIPROVE-FILE-PROOF-BEGIN bytes=");
  o += put_u64(out + o, (unsigned long long)st.st_size);
  o += put_str(out + o, " path=");
  size_t plen = strlen(path) < 4000 ? strlen(path) : 4000;
  memcpy(out + o, path, plen);
  o += plen;
  out[o++] = '\n';
  struct sha256 sha;
  sha256_init(&sha);
  unsigned long long total = 0;
  size_t have = 0;
  int eof = 0, err = 0;
  while (!eof || have > 0) {
    while (!eof && have < sizeof in) {
      ssize_t r = read(fd, in + have, sizeof in - have);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) err = errno;
      if (r <= 0) {
        eof = 1;
        break;
      }
      have += (size_t)r;
    }
    /* Whole lines of LINE_BYTES, and the short last one at the end of the file. */
    size_t done = 0;
    while (have - done >= LINE_BYTES || (eof && done < have)) {
      size_t take = have - done < LINE_BYTES ? have - done : LINE_BYTES;
      const unsigned char *p = in + done;
      sha256_update(&sha, p, take);
      total += take;
      o += put_str(out + o, "UPF:");
      size_t i = 0;
      for (; i + 3 <= take; i += 3) {
        out[o++] = b64[p[i] >> 2];
        out[o++] = b64[(p[i] & 3) << 4 | p[i + 1] >> 4];
        out[o++] = b64[(p[i + 1] & 15) << 2 | p[i + 2] >> 6];
        out[o++] = b64[p[i + 2] & 63];
      }
      if (take - i == 1) {
        out[o++] = b64[p[i] >> 2];
        out[o++] = b64[(p[i] & 3) << 4];
        out[o++] = '=';
        out[o++] = '=';
      } else if (take - i == 2) {
        out[o++] = b64[p[i] >> 2];
        out[o++] = b64[(p[i] & 3) << 4 | p[i + 1] >> 4];
        out[o++] = b64[(p[i + 1] & 15) << 2];
        out[o++] = '=';
      }
      out[o++] = '\n';
      done += take;
      if (o >= OUT_SIZE) {
        write_all(out, o);
        o = 0;
      }
    }
    memmove(in, in + done, have - done);
    have -= done;
  }
  close(fd);
  if (err != 0) {
    write_all(out, o);
    report_error(path, err, "read failed");
    return;
  }
  char hex[65];
  sha256_hex(&sha, hex);
  o += put_str(out + o, "UNIPROVE-FILE-PROOF-END bytes=");
  o += put_u64(out + o, total);
  o += put_str(out + o, " sha256=");
  o += put_str(out + o, hex);
  out[o++] = '\n';
  write_all(out, o);
}

#pragma weak on_exit
/* The on_exit handler is registered: it sends the proof, with the status; the destructor leaves it to it. */
static int exit_hooked;

static void uniprove_proof_out_exit(int status, void *arg) {
  (void)arg;
  send_proof(1, status);
}

__attribute__((constructor)) static void uniprove_proof_out_init(void) {
  if (on_exit != NULL && on_exit(uniprove_proof_out_exit, NULL) == 0) exit_hooked = 1;
}

__attribute__((destructor)) static void uniprove_proof_out(void) {
  if (!exit_hooked) send_proof(0, 0);
}
