/// The start of `text` for an error message about it (a key over a limit may be megabytes long):
/// its first `scalars` Unicode scalars, then "…" when cut. Cut by scalars, not characters: one
/// character may hold any number of combining scalars.
public func messageExcerpt(_ text: String, scalars count: Int = 32) -> String {
    let head = text.unicodeScalars.prefix(count)
    return head.endIndex == text.unicodeScalars.endIndex ? text : String(head) + "…"
}
