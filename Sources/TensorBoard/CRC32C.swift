/// CRC-32C (Castagnoli), the checksum of TFRecord files such as TensorBoard's event files.
///
/// The reflected polynomial 0x82F63B78, initial value 0xFFFFFFFF, final XOR 0xFFFFFFFF (as in
/// RFC 3720, iSCSI). Computed slicing-by-8: eight 256-entry tables, eight bytes a step, so that a
/// record holding a PNG of several megabytes costs milliseconds.
enum CRC32C {
    /// The CRC-32C of `bytes`.
    static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        let done: Void? = bytes.withContiguousStorageIfAvailable { buffer in
            crc = update(crc, UnsafeRawBufferPointer(buffer))
        }
        if done == nil {
            let array = Array(bytes)
            array.withUnsafeBytes { crc = update(crc, $0) }
        }
        return ~crc
    }

    /// TFRecord's masked CRC of `bytes`: the CRC-32C rotated right by 15 bits plus 0xA282EAD8,
    /// so that a CRC stored next to the data it covers is not itself a valid CRC of nearby bytes.
    static func masked(_ bytes: some Sequence<UInt8>) -> UInt32 {
        mask(checksum(bytes))
    }

    /// TFRecord's mask of a CRC: `((crc >> 15) | (crc << 17)) &+ 0xA282EAD8`.
    static func mask(_ crc: UInt32) -> UInt32 {
        ((crc >> 15) | (crc << 17)) &+ 0xA282_EAD8
    }

    /// The inverse of `mask`.
    static func unmask(_ masked: UInt32) -> UInt32 {
        let rotated = masked &- 0xA282_EAD8
        return (rotated >> 17) | (rotated << 15)
    }

    /// Runs the unfinalised register `crc` over `buffer`.
    static func update(_ crc: UInt32, _ buffer: UnsafeRawBufferPointer) -> UInt32 {
        var crc = crc
        var index = 0
        let count = buffer.count
        tables.withUnsafeBufferPointer { table in
            while count - index >= 8 {
                let low = crc ^ buffer.loadUnaligned(fromByteOffset: index, as: UInt32.self).littleEndian
                let high = buffer.loadUnaligned(fromByteOffset: index + 4, as: UInt32.self).littleEndian
                crc =
                    table[7 * 256 + Int(low & 0xFF)]
                    ^ table[6 * 256 + Int((low >> 8) & 0xFF)]
                    ^ table[5 * 256 + Int((low >> 16) & 0xFF)]
                    ^ table[4 * 256 + Int(low >> 24)]
                    ^ table[3 * 256 + Int(high & 0xFF)]
                    ^ table[2 * 256 + Int((high >> 8) & 0xFF)]
                    ^ table[1 * 256 + Int((high >> 16) & 0xFF)]
                    ^ table[Int(high >> 24)]
                index += 8
            }
            while index < count {
                crc = table[Int((crc ^ UInt32(buffer[index])) & 0xFF)] ^ (crc >> 8)
                index += 1
            }
        }
        return crc
    }

    /// Eight 256-entry tables, one after the other: table 0 is the byte-at-a-time table; table
    /// k maps a byte to its contribution k bytes further on.
    private static let tables: [UInt32] = {
        var tables = [UInt32](repeating: 0, count: 8 * 256)
        for byte in 0..<256 {
            var crc = UInt32(byte)
            for _ in 0..<8 {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1
            }
            tables[byte] = crc
        }
        for byte in 0..<256 {
            var crc = tables[byte]
            for slice in 1..<8 {
                crc = tables[Int(crc & 0xFF)] ^ (crc >> 8)
                tables[slice * 256 + byte] = crc
            }
        }
        return tables
    }()
}
