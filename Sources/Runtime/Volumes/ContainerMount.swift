import Foundation

/// One of a container's mounts: a host folder (bind), a named volume, or a tmpfs, as Docker's
/// `-v`, `--mount` and `--tmpfs` give them.
public struct ContainerMount: Codable, Equatable, Sendable {
    public enum Kind: String, Codable, Sendable { case bind, volume, tmpfs }

    public var type: Kind
    /// bind: the host path (absolute); volume: the volume's name; tmpfs: empty.
    public var source: String
    /// Where the container sees it: an absolute, normalized path.
    public var target: String
    public var readOnly: Bool
    /// tmpfs: its size in bytes (nil: the kernel's default, half the guest's memory).
    public var tmpfsSize: Int?
    /// tmpfs: its mode (nil: 1777).
    public var tmpfsMode: UInt32?
    /// volume: made for this container alone (an image's VOLUME, `-v /path`), removed with it.
    public var anonymous: Bool?
    /// bind through hvcd: the tenant's bind root the source must stay beneath, checked again
    /// (race-free) when the folder is shared.
    public var within: String?

    public init(type: Kind, source: String, target: String, readOnly: Bool = false) {
        self.type = type
        self.source = source
        self.target = target
        self.readOnly = readOnly
    }

    /// An API client may leave out an empty source and a false readOnly.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        type = try c.decode(Kind.self, forKey: .type)
        source = try c.decodeIfPresent(String.self, forKey: .source) ?? ""
        target = try c.decode(String.self, forKey: .target)
        readOnly = try c.decodeIfPresent(Bool.self, forKey: .readOnly) ?? false
        tmpfsSize = try c.decodeIfPresent(Int.self, forKey: .tmpfsSize)
        tmpfsMode = try c.decodeIfPresent(UInt32.self, forKey: .tmpfsMode)
        anonymous = try c.decodeIfPresent(Bool.self, forKey: .anonymous)
        within = try c.decodeIfPresent(String.self, forKey: .within)
    }

    /// Paths a mount may not cover: the container's /proc and /sys, its /dev and terminals,
    /// which the agent makes.
    static let reservedTargets = ["/proc", "/sys"]
    static let reservedExactTargets = ["/", "/dev", "/dev/pts"]

    /// Makes `path` absolute and normalized (`//` and a trailing `/` dropped); refuses `.`, `..`
    /// and the paths the guest reserves.
    public static func checkTarget(_ path: String) throws(HVCError) -> String {
        guard path.hasPrefix("/") else {
            throw HVCError(.invalid, "mount target \"\(path)\" is not absolute: give a path inside the container starting with /")
        }
        guard path.utf8.count <= 4096, !path.contains("\0"), !path.contains("\n") else {
            throw HVCError(.invalid, "mount target is too long or has a NUL or newline: give a plain path")
        }
        let components = path.split(separator: "/")
        guard !components.contains(where: { $0 == "." || $0 == ".." }) else {
            throw HVCError(.invalid, "mount target \"\(path)\" has . or .. in it: give a plain absolute path")
        }
        let normalized = "/" + components.joined(separator: "/")
        guard !reservedExactTargets.contains(normalized),
              !reservedTargets.contains(where: { normalized == $0 || normalized.hasPrefix($0 + "/") }) else {
            throw HVCError(.invalid, "cannot mount on \(normalized): the guest keeps it for the container's own /proc, /sys and /dev")
        }
        return normalized
    }

    /// A volume's name: Docker's rule, which leaves no `/` and no `..`.
    public static func checkVolumeName(_ name: String) throws(HVCError) {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
        guard let first = name.first, first.isLetter || first.isNumber, name.count <= 128, name.allSatisfy({ allowed.contains($0) }) else {
            throw HVCError(.invalid, "invalid volume name \"\(name)\": use letters, digits, _ . - (starting with a letter or digit); a host folder needs an absolute path")
        }
    }

    /// `-v SOURCE:TARGET[:ro|rw]` or `-v TARGET` (an anonymous volume). A source starting with
    /// `/` is a host folder; anything else names a volume.
    public static func parseVolumeFlag(_ text: String) throws(HVCError) -> ContainerMount {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        var mount: ContainerMount
        switch parts.count {
        case 1:
            mount = ContainerMount(type: .volume, source: "", target: try checkTarget(parts[0]))
            mount.anonymous = true
            return mount
        case 2, 3:
            let source = parts[0]
            guard !source.isEmpty else { throw HVCError(.invalid, "-v \(text): the source is empty: give HOSTDIR:TARGET or NAME:TARGET") }
            if source.hasPrefix("/") {
                mount = ContainerMount(type: .bind, source: try checkHostPath(source), target: try checkTarget(parts[1]))
            } else {
                try checkVolumeName(source)
                mount = ContainerMount(type: .volume, source: source, target: try checkTarget(parts[1]))
            }
            if parts.count == 3 {
                for option in parts[2].split(separator: ",") {
                    switch option {
                    case "ro", "readonly": mount.readOnly = true
                    case "rw": mount.readOnly = false
                    default: throw HVCError(.invalid, "-v \(text): unknown option \"\(option)\": use ro or rw")
                    }
                }
            }
            return mount
        default:
            throw HVCError(.invalid, "-v \(text): use HOSTDIR:TARGET[:ro], NAME:TARGET[:ro] or TARGET")
        }
    }

    /// `--mount type=bind|volume|tmpfs,source=…,target=…[,readonly][,tmpfs-size=…][,tmpfs-mode=…]`.
    public static func parseMountFlag(_ text: String) throws(HVCError) -> ContainerMount {
        var type = Kind.volume
        var source = ""
        var target: String?
        var readOnly = false
        var size: Int?
        var mode: UInt32?
        for field in text.split(separator: ",") {
            let pair = field.split(separator: "=", maxSplits: 1).map(String.init)
            let key = pair[0]
            let value = pair.count == 2 ? pair[1] : nil
            switch (key, value) {
            case ("type", let value?):
                guard let kind = Kind(rawValue: value) else {
                    throw HVCError(.invalid, "--mount \(text): unknown type \"\(value)\": use bind, volume or tmpfs")
                }
                type = kind
            case ("source", let value?), ("src", let value?): source = value
            case ("target", let value?), ("destination", let value?), ("dst", let value?): target = value
            case ("readonly", nil), ("ro", nil): readOnly = true
            case ("readonly", let value?), ("ro", let value?):
                switch value {
                case "true", "1": readOnly = true
                case "false", "0": readOnly = false
                default: throw HVCError(.invalid, "--mount \(text): readonly=\(value): use true or false")
                }
            case ("tmpfs-size", let value?): size = try RunOptions.parseSize(value, minimum: 4096, what: "tmpfs size")
            case ("tmpfs-mode", let value?):
                guard let parsed = UInt32(value, radix: 8), parsed <= 0o7777 else {
                    throw HVCError(.invalid, "--mount \(text): tmpfs-mode=\(value): give an octal mode such as 1777")
                }
                mode = parsed
            default:
                throw HVCError(.invalid, "--mount \(text): unknown or incomplete field \"\(field)\": use type, source, target, readonly, tmpfs-size, tmpfs-mode")
            }
        }
        guard let target else { throw HVCError(.invalid, "--mount \(text): no target: add target=/path") }
        var mount = ContainerMount(type: type, source: source, target: try checkTarget(target), readOnly: readOnly)
        switch type {
        case .bind:
            guard !source.isEmpty else { throw HVCError(.invalid, "--mount \(text): a bind mount needs source=/host/path") }
            mount.source = try checkHostPath(source)
        case .volume:
            if source.isEmpty { mount.anonymous = true } else { try checkVolumeName(source) }
        case .tmpfs:
            guard source.isEmpty else { throw HVCError(.invalid, "--mount \(text): a tmpfs has no source: drop source=") }
        }
        if type != .tmpfs, size != nil || mode != nil {
            throw HVCError(.invalid, "--mount \(text): tmpfs-size and tmpfs-mode are for type=tmpfs")
        }
        mount.tmpfsSize = size
        mount.tmpfsMode = mode
        return mount
    }

    /// `--tmpfs TARGET[:size=…,mode=…,ro,rw]`.
    public static func parseTmpfsFlag(_ text: String) throws(HVCError) -> ContainerMount {
        let parts = text.split(separator: ":", maxSplits: 1).map(String.init)
        guard let first = parts.first else { throw HVCError(.invalid, "--tmpfs: give a target path") }
        var mount = ContainerMount(type: .tmpfs, source: "", target: try checkTarget(first))
        for option in parts.count == 2 ? parts[1].split(separator: ",").map(String.init) : [] {
            let pair = option.split(separator: "=", maxSplits: 1).map(String.init)
            switch (pair[0], pair.count == 2 ? pair[1] : nil) {
            case ("size", let value?): mount.tmpfsSize = try RunOptions.parseSize(value, minimum: 4096, what: "tmpfs size")
            case ("mode", let value?):
                guard let parsed = UInt32(value, radix: 8), parsed <= 0o7777 else {
                    throw HVCError(.invalid, "--tmpfs \(text): mode=\(value): give an octal mode such as 1777")
                }
                mount.tmpfsMode = parsed
            case ("ro", nil): mount.readOnly = true
            case ("rw", nil): mount.readOnly = false
            default: throw HVCError(.invalid, "--tmpfs \(text): unknown option \"\(option)\": use size=, mode=, ro or rw")
            }
        }
        return mount
    }

    /// A host path as given: absolute, without `..` (which would make the checks against a
    /// tenant's bind roots meaningless).
    static func checkHostPath(_ path: String) throws(HVCError) -> String {
        guard path.hasPrefix("/"), !path.contains("\0") else {
            throw HVCError(.invalid, "host path \"\(path)\" is not absolute: give it starting with /")
        }
        guard !path.split(separator: "/").contains("..") else {
            throw HVCError(.invalid, "host path \"\(path)\" has .. in it: give the folder's real path")
        }
        return path
    }

    /// Checks a container's mounts together: no two on one target. Returns them in the order
    /// they must be made (parents before what is mounted inside them).
    static func ordered(_ mounts: [ContainerMount]) throws(HVCError) -> [ContainerMount] {
        var seen = Set<String>()
        for mount in mounts {
            guard seen.insert(mount.target).inserted else {
                throw HVCError(.invalid, "two mounts on \(mount.target): give each target once")
            }
        }
        return mounts.enumerated().sorted { a, b in
            let (da, db) = (a.element.target.split(separator: "/").count, b.element.target.split(separator: "/").count)
            return da != db ? da < db : a.offset < b.offset
        }.map(\.element)
    }

    /// A mount as an API client sent it, checked as the flags are; `within` is the server's to set.
    public func checked() throws(HVCError) -> ContainerMount {
        var mount = self
        mount.target = try ContainerMount.checkTarget(target)
        mount.within = nil
        switch type {
        case .bind:
            mount.source = try ContainerMount.checkHostPath(source)
            mount.anonymous = nil
        case .volume:
            if source.isEmpty { mount.anonymous = true } else { try ContainerMount.checkVolumeName(source) }
        case .tmpfs:
            guard source.isEmpty else { throw HVCError(.invalid, "tmpfs mount on \(target) has a source: leave it empty") }
            mount.anonymous = nil
            if let size = tmpfsSize, size < 4096 { throw HVCError(.invalid, "tmpfs size \(size) is too small: give at least 4096 bytes") }
            if let mode = tmpfsMode, mode > 0o7777 { throw HVCError(.invalid, "tmpfs mode \(mode) is not a mode: give at most 07777") }
        }
        if type != .tmpfs, tmpfsSize != nil || tmpfsMode != nil {
            throw HVCError(.invalid, "mount on \(target): tmpfsSize and tmpfsMode are for tmpfs mounts")
        }
        return mount
    }

    /// The tmpfs mount options the guest kernel gets.
    var tmpfsOptions: String {
        var options = ["mode=" + String(tmpfsMode ?? 0o1777, radix: 8)]
        if let tmpfsSize { options.append("size=\(tmpfsSize)") }
        return options.joined(separator: ",")
    }
}
