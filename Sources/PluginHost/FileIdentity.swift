import Glibc

/// Which file a path named, and which write of it: device, inode, size and modification time. Equal
/// identities mean the file was (almost certainly) not replaced or rewritten in between; a rebuild, a
/// copy over it or an atomic rename changes at least one of them.
public struct FileIdentity: Sendable, Hashable {
    let device: UInt64
    let inode: UInt64
    let size: Int64
    let modifiedSeconds: Int64
    let modifiedNanoseconds: Int64

    init(_ status: stat) {
        device = UInt64(status.st_dev)
        inode = UInt64(status.st_ino)
        size = Int64(status.st_size)
        modifiedSeconds = Int64(status.st_mtim.tv_sec)
        modifiedNanoseconds = Int64(status.st_mtim.tv_nsec)
    }

    /// The identity of the file at `path` (a symlink: of its target), nil when there is none.
    public static func of(path: String) -> FileIdentity? {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        return FileIdentity(status)
    }
}
