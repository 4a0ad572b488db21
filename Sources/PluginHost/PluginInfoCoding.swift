/// PluginInfo as JSON: how a plugin's identity travels from the process that inspected it
/// (`PluginInspector`) to the catalog. Versions are their text, the ABI version `[major, minor]`,
/// capabilities their bits.
extension PluginInfo: Codable {
    private enum CodingKeys: String, CodingKey {
        case name, version, kind, description, abiVersion, stateFormats, configKeys, capabilities, openConfig, holdsState, operations
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        let abi = try container.decode([UInt32].self, forKey: .abiVersion)
        guard abi.count == 2 else {
            throw DecodingError.dataCorruptedError(forKey: .abiVersion, in: container, debugDescription: "expected [major, minor]")
        }
        self.init(name: try container.decode(String.self, forKey: .name),
                  version: try container.decode(SemanticVersion.self, forKey: .version),
                  kind: try container.decode(ComponentKind.self, forKey: .kind),
                  description: try container.decode(String.self, forKey: .description),
                  abiVersion: (abi[0], abi[1]),
                  stateFormats: try container.decodeIfPresent(ClosedRange<UInt32>.self, forKey: .stateFormats),
                  configKeys: try container.decode([ConfigKeySpec].self, forKey: .configKeys),
                  capabilities: Capabilities(rawValue: try container.decode(UInt32.self, forKey: .capabilities)),
                  openConfig: try container.decodeIfPresent(ConfigKeySpec.self, forKey: .openConfig),
                  holdsState: try container.decode(Bool.self, forKey: .holdsState),
                  operations: try container.decode([OperationDeclaration].self, forKey: .operations))
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(name, forKey: .name)
        try container.encode(version, forKey: .version)
        try container.encode(kind, forKey: .kind)
        try container.encode(description, forKey: .description)
        try container.encode([abiVersion.major, abiVersion.minor], forKey: .abiVersion)
        try container.encodeIfPresent(stateFormats, forKey: .stateFormats)
        try container.encode(configKeys, forKey: .configKeys)
        try container.encode(capabilities.rawValue, forKey: .capabilities)
        try container.encodeIfPresent(openConfig, forKey: .openConfig)
        try container.encode(holdsState, forKey: .holdsState)
        try container.encode(operations, forKey: .operations)
    }
}

extension SemanticVersion: Codable {
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let version = SemanticVersion(text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "not a semantic version: \(text)")
        }
        self = version
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
