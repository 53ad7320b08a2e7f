import Foundation

/// A TCP port on 127.0.0.1 held by a listening socket until this is released (deinit).
public final class HeldPort {
    public let port: Int
    private let descriptor: Int32

    public init() throws {
        descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let fd = descriptor
        let ok = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && listen(fd, 1) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard descriptor >= 0, ok else {
            if descriptor >= 0 { close(descriptor) }
            throw ChildProcessError("cannot bind a port on 127.0.0.1: errno \(errno)")
        }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(descriptor) }

    /// A port that was free a moment ago (for a child process to bind).
    public static func free() throws -> Int { try HeldPort().port }
}
