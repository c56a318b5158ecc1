/*
 * Gives a program a file as its standard input, for unikernels that have none.
 *
 * Nanos runs one program with no shell, so `prover < witness.json` cannot be written, and its
 * fd 0 reads end-of-file at once (src/unix/unix.c: stdin's read is dummy_read). zk_evm's
 * `leader stdio` reads its witness only from stdin. Loaded with LD_PRELOAD=/stdin-from-file.so
 * and UNIPROVE_STDIN=/path/in/the/guest, this opens that file before main() and puts it on fd 0.
 *
 * Build: gcc -shared -fPIC -O2 -o stdin-from-file.so stdin-from-file.c
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

__attribute__((constructor)) static void uniprove_stdin_from_file(void) {
  const char *path = getenv("UNIPROVE_STDIN");
  if (path == NULL || path[0] == '\0') return;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    /* Say so and stop: a prover reading an empty stdin fails much later, and less clearly. */
    dprintf(2, "stdin-from-file: cannot open UNIPROVE_STDIN=%s\n", path);
    _exit(66);
  }
  if (fd != 0) {
    if (dup2(fd, 0) != 0) {
      dprintf(2, "stdin-from-file: dup2 onto fd 0 failed for %s\n", path);
      _exit(71);
    }
    close(fd);
  }
}
