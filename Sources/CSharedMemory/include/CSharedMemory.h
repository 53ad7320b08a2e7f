// CSharedMemory: what Swift cannot say itself about memory shared between processes on one
// Linux host. Not API: the SharedMemory module wraps it.
//
// - Sealed memfd regions (a crash leaves no file behind; seals keep a peer from shrinking the
//   region under the other's mapping, which would end in SIGBUS).
// - Unix SOCK_SEQPACKET sockets in the abstract namespace (one per network namespace, no file)
//   that pass a region's descriptor with SCM_RIGHTS, and the peer's user id.
// - Acquire and release accesses to a 64-bit word in shared memory, for sequence tags.
#ifndef CSHAREDMEMORY_H
#define CSHAREDMEMORY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/// A new memfd of `size` bytes, close-on-exec, sealed against shrinking, growing and further
/// seals; -1 with errno set on failure.
int vae_shm_create_sealed(const char *name, size_t size);

/// Whether `fd` carries the seals of `vae_shm_create_sealed` (shrink and grow): 1 yes, 0 no,
/// -1 with errno when `fd` cannot say (not a memfd).
int vae_shm_is_sealed(int fd);

/// A listening SOCK_SEQPACKET socket bound to the abstract name `name` (`length` bytes, no
/// leading NUL: it is added), non-blocking, close-on-exec; -1 with errno.
int vae_shm_listen(const char *name, size_t length);

/// The next connection waiting on `listener`, non-blocking and close-on-exec; -1 with errno
/// (EAGAIN when none waits).
int vae_shm_accept(int listener);

/// A non-blocking SOCK_SEQPACKET socket connected to the abstract name `name`; -1 with errno
/// (ECONNREFUSED when nobody listens on it in this network namespace).
int vae_shm_connect(const char *name, size_t length);

/// Sends one packet of `length` bytes, with `fd` attached when it is >= 0; bytes sent or -1.
ssize_t vae_shm_send(int socket, const void *bytes, size_t length, int fd);

/// Receives one packet into `bytes` (at most `capacity`; a longer packet is cut, reported by
/// `*truncated`), and the descriptor attached to it in `*fd` (-1 if none; any others are closed).
/// Never waits: -1 with errno EAGAIN when nothing is there; 0 when the peer closed.
ssize_t vae_shm_receive(int socket, void *bytes, size_t capacity, int *fd, int *truncated);

/// The user id of the process at the other end of a connected Unix socket; -1 with errno.
int vae_shm_peer_uid(int socket, uid_t *uid);

/// A load that later loads cannot move before.
uint64_t vae_shm_load_acquire(const uint64_t *word);

/// A fence after which loads see no older values than those before it (ends a seqlock read).
void vae_shm_fence_acquire(void);

/// A store that earlier stores cannot move after.
void vae_shm_store_release(uint64_t *word, uint64_t value);

/// A store, then a fence that keeps later stores after it (starts a seqlock write).
void vae_shm_store_then_fence(uint64_t *word, uint64_t value);

#endif
