/// Key-value metadata on containers, networks and volumes (`--label`), bounded.
public enum Labels {
    public static let most = 256

    /// `labels` when within bounds: at most 256, each key 1 to 256 bytes, each value at most 4096.
    public static func checked(_ labels: [String: String]?) throws(HVCError) -> [String: String]? {
        guard let labels, !labels.isEmpty else { return nil }
        guard labels.count <= most, labels.allSatisfy({ !$0.key.isEmpty && $0.key.utf8.count <= 256 && $0.value.utf8.count <= 4096 }) else {
            throw HVCError(.invalid, "labels: at most \(most), each a key of 1 to 256 bytes and a value of at most 4096")
        }
        return labels
    }

    /// `KEY=VALUE` (or `KEY`, an empty value) texts, as `--label` takes them.
    public static func parse(_ texts: [String]) throws(HVCError) -> [String: String]? {
        var labels: [String: String] = [:]
        for text in texts {
            let parts = text.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard !parts[0].isEmpty else { throw HVCError(.invalid, "label \"\(text.prefix(64))\" has no key: give KEY=VALUE") }
            labels[String(parts[0])] = parts.count == 2 ? String(parts[1]) : ""
        }
        return try checked(labels)
    }
}
