// linux/tcp.h has the full struct tcp_info; it cannot be included beside glibc's netinet/tcp.h
// in one Clang module, so it lives in this C file alone.
#include "CTCPInfo.h"

#include <linux/tcp.h>
#include <stddef.h>
#include <sys/socket.h>

long long vae_tcp_bytes_received(int fd) {
    struct tcp_info info;
    socklen_t length = sizeof(info);
    if (getsockopt(fd, 6 /* IPPROTO_TCP */, TCP_INFO, &info, &length) != 0) return -1;
    if (length < (socklen_t)(offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(info.tcpi_bytes_received))) return -1;
    return (long long)info.tcpi_bytes_received;
}
