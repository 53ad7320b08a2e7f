// CTCPInfo: what Linux counts about a TCP connection that glibc's headers do not expose. Not API:
// the ZeroMQ module's ZMQConnection wraps it.
#ifndef CTCPINFO_H
#define CTCPINFO_H

/// The bytes TCP connection `fd` has received so far (Linux's tcpi_bytes_received, 4.1 and
/// later), or -1 when `fd` is not a TCP socket (an ipc connection) or the kernel does not say.
long long vae_tcp_bytes_received(int fd);

#endif
