import Crypto
import Foundation
import HVCSystem

/// Guest memory images: copied page by page with zero pages left as holes, and identified by a
/// digest over each non-zero page and its index, so that the digest does not depend on which
/// holes a file happens to have.
enum MemoryImage {
    static let pageSize = 4096
    static let chunkSize = 1 << 20

    /// Copies the first `size` bytes of `source` to `destination` (when given), writing only
    /// non-zero pages. Returns the digest and how many bytes were non-zero.
    static func copy(from source: Int32, to destination: Int32?, size: Int) throws(HVCError) -> (digest: String, dataBytes: Int) {
        var hasher = SHA256()
        var dataBytes = 0
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkSize, alignment: pageSize)
        let zero = UnsafeMutableRawBufferPointer.allocate(byteCount: pageSize, alignment: pageSize)
        defer { buffer.deallocate(); zero.deallocate() }
        zero.initializeMemory(as: UInt8.self, repeating: 0)
        var offset = 0
        while offset < size {
            // Skip holes: the next data at or after `offset`, from the start of its chunk.
            let data = lseek(source, off_t(offset), 3 /* SEEK_DATA */)
            if data < 0 {
                if Errno.current == .noDeviceOrAddress { break }
                throw HVCError("memory image: seek: \(Errno.current)")
            }
            offset = Int(data) / chunkSize * chunkSize
            guard offset < size else { break }
            let wanted = min(chunkSize, size - offset)
            var filled = 0
            while filled < wanted {
                let n = pread(source, buffer.baseAddress! + filled, wanted - filled, off_t(offset + filled))
                if n < 0 && Errno.current == .interrupted { continue }
                guard n >= 0 else { throw HVCError("memory image: read: \(Errno.current)") }
                if n == 0 { break }
                filled += n
            }
            guard filled > 0 else { break }
            var page = 0
            while page + pageSize <= filled {
                let bytes = UnsafeRawBufferPointer(rebasing: buffer[page..<(page + pageSize)])
                if memcmp(bytes.baseAddress!, zero.baseAddress!, pageSize) != 0 {
                    var index = UInt64((offset + page) / pageSize).littleEndian
                    withUnsafeBytes(of: &index) { hasher.update(bufferPointer: $0) }
                    hasher.update(bufferPointer: bytes)
                    dataBytes += pageSize
                    if let destination {
                        var written = 0
                        while written < pageSize {
                            let n = pwrite(destination, bytes.baseAddress! + written, pageSize - written, off_t(offset + page + written))
                            if n < 0 && Errno.current == .interrupted { continue }
                            guard n > 0 else { throw HVCError("memory image: write: \(Errno.current)") }
                            written += n
                        }
                    }
                }
                page += pageSize
            }
            offset += filled
        }
        if let destination, ftruncate(destination, off_t(size)) != 0 {
            throw HVCError("memory image: resize: \(Errno.current)")
        }
        let digest = "sha256:" + hasher.finalize().map { String(format: "%02x", $0) }.joined()
        return (digest, dataBytes)
    }
}
