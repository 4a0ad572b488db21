import ExampleLock
import PluginKit

public enum V2: ExampleLockVersion {
    public static let version = "2.0.0"
}

@_cdecl("molt_pluginkit_component")
public func moltComponent() -> UnsafeRawPointer { PluginKit.export(ExampleLock<V2>.self) }
