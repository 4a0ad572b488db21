import ExampleLock
import PluginKit

public enum V1: ExampleLockVersion {
    public static let version = "1.0.0"
}

@_cdecl("molt_pluginkit_component")
public func moltComponent() -> UnsafeRawPointer { PluginKit.export(ExampleLock<V1>.self) }
