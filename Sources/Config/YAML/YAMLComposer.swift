import CYAML

/// Reads YAML (and so JSON) text into `YAMLNode` documents with libyaml's event parser: every document of a
/// stream, aliases replaced by their anchored node, plain scalars typed by `YAMLScalarValues.resolve`, quoted
/// ones strings. Composition is iterative with a depth limit, so hostile nesting is an error, not a crash.
enum YAMLComposer {
    /// Deeper nesting is refused (no config molt reads comes near it).
    static let maximumDepth = 256

    static func documents(_ text: String) throws(YAMLError) -> [YAMLNode] {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { throw YAMLError(message: "libyaml could not allocate a parser") }
        defer { yaml_parser_delete(&parser) }
        let bytes = Array(text.utf8)
        var composer = Composition(text: text)
        try bytes.withUnsafeBufferPointer { (buffer) throws(YAMLError) in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
            var finished = false
            while !finished {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) == 1 else { throw YAMLError(parser, text: text) }
                defer { yaml_event_delete(&event) }
                finished = event.type == YAML_STREAM_END_EVENT
                try composer.take(event)
            }
        }
        return composer.documents
    }
}

/// The nodes being built while events arrive: a stack of open collections; a finished node goes into the
/// collection on top (or becomes the document).
private struct Composition {
    let text: String
    var documents: [YAMLNode] = []
    var anchors: [String: YAMLNode] = [:]
    private var open: [OpenCollection] = []

    init(text: String) { self.text = text }

    /// A collection whose end event has not come yet (a class, so appending to it never copies its elements).
    private final class OpenCollection {
        let isMapping: Bool
        let tag: YAMLTag
        let mark: YAMLMark
        let anchor: String?
        var items: [YAMLNode] = []
        var pairs: [(key: YAMLNode, value: YAMLNode)] = []
        var keys: Set<String> = []
        var pendingKey: YAMLNode?

        init(isMapping: Bool, tag: YAMLTag, mark: YAMLMark, anchor: String?) {
            (self.isMapping, self.tag, self.mark, self.anchor) = (isMapping, tag, mark, anchor)
        }

        var node: YAMLNode {
            isMapping ? .mapping(YAMLMapping(pairs: pairs, tag: tag, mark: mark)) : .sequence(YAMLSequence(items: items, tag: tag, mark: mark))
        }
    }

    mutating func take(_ event: yaml_event_t) throws(YAMLError) {
        let mark = YAMLMark(line: event.start_mark.line + 1, column: event.start_mark.column + 1)
        switch event.type {
        case YAML_DOCUMENT_START_EVENT:
            anchors = [:]
        case YAML_SCALAR_EVENT:
            let scalar = event.data.scalar
            let value = string(scalar.value, length: scalar.length)
            let tag: YAMLTag
            if scalar.quoted_implicit == 1 {
                tag = .str
            } else if let given = optionalString(scalar.tag) {
                tag = YAMLTag(rawValue: given)
            } else {
                tag = YAMLScalarValues.resolve(value)
            }
            let node = YAMLNode.scalar(YAMLScalar(string: value, tag: tag, isPlain: scalar.style == YAML_PLAIN_SCALAR_STYLE, mark: mark))
            if let anchor = optionalString(scalar.anchor) { anchors[anchor] = node }
            try add(node)
        case YAML_ALIAS_EVENT:
            let name = optionalString(event.data.alias.anchor) ?? ""
            guard let node = anchors[name] else {
                throw YAMLError(message: "\(mark): error: composer: found undefined alias '\(name)'")
            }
            try add(node)
        case YAML_SEQUENCE_START_EVENT:
            let start = event.data.sequence_start
            try push(OpenCollection(isMapping: false, tag: optionalString(start.tag).map(YAMLTag.init(rawValue:)) ?? .seq, mark: mark,
                                    anchor: optionalString(start.anchor)))
        case YAML_MAPPING_START_EVENT:
            let start = event.data.mapping_start
            try push(OpenCollection(isMapping: true, tag: optionalString(start.tag).map(YAMLTag.init(rawValue:)) ?? .map, mark: mark,
                                    anchor: optionalString(start.anchor)))
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
            guard let collection = open.popLast() else { return }
            let node = collection.node
            if let anchor = collection.anchor { anchors[anchor] = node }
            try add(node)
        default:
            break  // stream start/end, document end
        }
    }

    private mutating func push(_ collection: OpenCollection) throws(YAMLError) {
        guard open.count < YAMLComposer.maximumDepth else {
            throw YAMLError(message: "\(collection.mark): error: composer: nested deeper than \(YAMLComposer.maximumDepth) levels")
        }
        open.append(collection)
    }

    /// Puts a finished node into the open collection, or makes it the document.
    private mutating func add(_ node: YAMLNode) throws(YAMLError) {
        guard let top = open.last else {
            documents.append(node)
            return
        }
        guard top.isMapping else {
            top.items.append(node)
            return
        }
        guard let key = top.pendingKey else {
            top.pendingKey = node
            return
        }
        top.pendingKey = nil
        if let text = key.string, key.tag != .merge {
            guard top.keys.insert(text).inserted else {
                let at = key.mark.map { "\($0): " } ?? ""
                throw YAMLError(message: "\(at)error: composer: duplicate key '\(text)' in the mapping at line \(top.mark.line), column \(top.mark.column)")
            }
        }
        top.pairs.append((key, node))
    }

    private func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?, length: Int) -> String {
        guard let pointer, length > 0 else { return "" }
        return String(decoding: UnsafeBufferPointer(start: pointer, count: length), as: UTF8.self)
    }

    private func optionalString(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        guard let pointer else { return nil }
        return String(cString: pointer)
    }
}

/// Malformed YAML: libyaml's problem with its position and context, as `LINE:COLUMN: error: parser: while parsing
/// … in line L, column C` followed by the problem and the offending line.
struct YAMLError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }

    init(message: String) { self.message = message }

    init(_ parser: yaml_parser_t, text: String) {
        let stage: String
        switch parser.error {
        case YAML_READER_ERROR: stage = "reader"
        case YAML_SCANNER_ERROR: stage = "scanner"
        case YAML_MEMORY_ERROR: stage = "memory"
        default: stage = "parser"
        }
        let problem = parser.problem.map { String(cString: $0) } ?? "unknown problem"
        if parser.error == YAML_READER_ERROR {
            message = "error: reader: \(problem) at byte offset \(parser.problem_offset)"
            return
        }
        let mark = YAMLMark(line: parser.problem_mark.line + 1, column: parser.problem_mark.column + 1)
        var context = ""
        if let text = parser.context.map({ String(cString: $0) }) {
            context = "\(text) in line \(parser.context_mark.line + 1), column \(parser.context_mark.column + 1)\n"
        }
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        var snippet = ""
        if mark.line - 1 < lines.count {
            let line = lines[mark.line - 1]
            snippet = "\n" + line + "\n" + String(repeating: " ", count: max(0, min(mark.column - 1, line.unicodeScalars.count))) + "^"
        }
        message = "\(mark): error: \(stage): \(context)\(problem):\(snippet)"
    }
}
