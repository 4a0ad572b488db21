import PluginKit
import SwiftTestLockCore

public enum V1: TestLockVersion {
    public static let version = "1.0.0"
    public static let stateFormats: ClosedRange<UInt32> = 1...1
}

@_cdecl("molt_pluginkit_component")
public func moltComponent() -> UnsafeRawPointer { PluginKit.export(TestLock<V1>.self) }
