/// molt's own version, reported by the metadata APIs and `molt --version`.
public enum MoltVersion {
    public static let current = "0.5.0"
}
