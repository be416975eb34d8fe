import OCI

extension ImageReference {
    /// Parses a name a user gave: an invalid one is the request's fault.
    public init(name text: String) throws(HVCError) {
        do {
            try self.init(parsing: text)
        } catch {
            throw HVCError(.invalid, error.description)
        }
    }
}
