import Glibc

/// The numeric address a worker advertises for its ring endpoint (`vae-worker join --advertise`):
/// a numeric IPv4 or IPv6 address as given, or a host name resolved once, at start, to the first
/// of its addresses (IPv4 first). ZeroMQ binds and connects to numeric addresses only, and the
/// other workers must get the same address the socket is bound on.
public enum HostAddress {
    /// `host` as a numeric address: itself if it is one, else the first address it resolves to.
    public static func numeric(_ host: String) throws(ClusterError) -> String {
        if isNumeric(host) { return host }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, nil, &hints, &list)
        guard status == 0, let list else {
            let reason = status == 0 ? "no address" : String(cString: gai_strerror(status))
            throw ClusterError("--advertise \(host) does not resolve to an address (\(reason)): give a numeric address of this host that the other workers reach, such as 10.0.0.7, or a name that resolves to one")
        }
        defer { freeaddrinfo(list) }
        var candidates: [String] = []
        var entry: UnsafeMutablePointer<addrinfo>? = list
        while let current = entry {
            if let address = numericName(current.pointee), !candidates.contains(address) {
                if current.pointee.ai_family == AF_INET {
                    candidates.insert(address, at: candidates.firstIndex { $0.contains(":") } ?? candidates.endIndex)
                } else {
                    candidates.append(address)
                }
            }
            entry = current.pointee.ai_next
        }
        guard let first = candidates.first else {
            throw ClusterError("--advertise \(host) resolves to no IPv4 or IPv6 address: give a numeric address of this host that the other workers reach, such as 10.0.0.7")
        }
        return first
    }

    /// Whether `address` is a loopback address (127.0.0.0/8 or ::1), which no other host reaches.
    public static func isLoopback(_ address: String) -> Bool {
        var v4 = in_addr()
        if inet_pton(AF_INET, address, &v4) == 1 { return UInt32(bigEndian: v4.s_addr) >> 24 == 127 }
        return address == "::1"
    }

    private static func isNumeric(_ host: String) -> Bool {
        var v4 = in_addr(), v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    private static func numericName(_ info: addrinfo) -> String? {
        guard let address = info.ai_addr, info.ai_family == AF_INET || info.ai_family == AF_INET6 else { return nil }
        var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        guard getnameinfo(address, info.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0 else { return nil }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
